// Command controller runs the loaxa controller: HTTP API, scheduler, store
// and, unless --broker names an external one, the embedded MQTT broker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"loaxa.vn/controller/app"
)

// version is set at build time with -ldflags "-X main.version=…"
// (scripts/build-boards.sh).
var version = "dev"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "export-mosquitto-acl":
			os.Exit(exportMosquitto(os.Args[2:]))
		case "--version", "-version":
			fmt.Println("loaxa controller", version)
			return
		}
	}
	cfg := app.DefaultConfig()
	if err := cfg.Parse(os.Args[1:], os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a := app.New(cfg, logger)
	if err := a.Open(); err != nil {
		logger.Error("controller failed to start", "err", err)
		os.Exit(1)
	}
	<-ctx.Done()
	logger.Info("controller shutting down")
	if err := a.Close(); err != nil {
		logger.Error("controller shutdown", "err", err)
		os.Exit(1)
	}
}

// exportMosquitto runs "controller export-mosquitto-acl --out DIR [flags]":
// it writes an external Mosquitto's password file, ACL file and
// configuration snippet from the store in --data.
func exportMosquitto(args []string) int {
	var out string
	var rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--out" || a == "-out":
			if i+1 < len(args) {
				out = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--out=") || strings.HasPrefix(a, "-out="):
			_, out, _ = strings.Cut(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	cfg := app.DefaultConfig()
	if err := cfg.Parse(rest, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "usage: controller export-mosquitto-acl --out DIR --data DIR --broker tcp://user:password@host:1883")
			return 0
		}
		fmt.Fprintln(os.Stderr, "controller export-mosquitto-acl:", err)
		return 2
	}
	missing, err := app.ExportMosquitto(cfg, out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller export-mosquitto-acl:", err)
		return 1
	}
	fmt.Printf("Wrote %s, %s and %s into %s. Install them in /etc/mosquitto and reload Mosquitto (systemctl reload mosquitto).\n",
		app.MosquittoPasswdFile, app.MosquittoACLFile, app.MosquittoConfFile, out)
	if len(missing) > 0 {
		fmt.Printf("Left out (enrolled before broker hashes were kept; rotate their credentials): %s\n", strings.Join(missing, ", "))
	}
	return 0
}
