// Command controller runs the loaxa controller: HTTP API, scheduler, store
// and, unless --broker names an external one, the embedded MQTT broker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"loaxa.vn/controller/app"
	"loaxa.vn/controller/backup"
	"loaxa.vn/controller/loaxa"
	"loaxa.vn/internal/gcpause"
	"loaxa.vn/internal/sdnotify"
)

// version is set at build time with -ldflags "-X main.version=…"
// (scripts/build-boards.sh).
var version = "dev"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "export-mosquitto-acl":
			os.Exit(exportMosquitto(os.Args[2:], os.Stdout, os.Stderr))
		case "backup":
			os.Exit(runBackup(os.Args[2:], os.Stdout, os.Stderr))
		case "live":
			os.Exit(runLive(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "restore":
			os.Exit(runRestore(os.Args[2:], os.Stdout, os.Stderr))
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
	// The collector's percentage: fewer cycles for an alert to meet
	// (internal/gcpause, docs/deploy.md).
	logger.Info("controller: garbage collector", "gogc", gcpause.SetDefault(os.Getenv))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a := app.New(cfg, logger)
	a.Version = version
	if err := serve(ctx, a, sdnotify.New(os.Getenv), logger); err != nil {
		logger.Error("controller", "err", err)
		os.Exit(1)
	}
}

// serve opens a, tells systemd (Type=notify, through sd) when it serves,
// and closes it once ctx ends. While a long part of the start goes on (a
// schema upgrade of a year's store can outlast the unit's
// TimeoutStartSec=60s), it asks systemd for more time, as long as the
// work makes progress.
func serve(ctx context.Context, a *app.App, sd *sdnotify.Notifier, logger *slog.Logger) error {
	a.Starting = sd.Starting(logger).Progress
	if err := a.Open(); err != nil {
		return fmt.Errorf("failed to start: %w", err)
	}
	// STATUS= replaces what the start last showed in systemctl status.
	if err := sd.Notify(sdnotify.Ready + "\nSTATUS=serving"); err != nil {
		logger.Warn("systemd notify", "err", err)
	}
	<-ctx.Done()
	logger.Info("controller shutting down")
	if err := sd.Notify(sdnotify.Stopping); err != nil {
		logger.Warn("systemd notify", "err", err)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// exportMosquitto runs "controller export-mosquitto-acl --out DIR [flags]":
// it writes an external Mosquitto's password file, ACL file and
// configuration snippet from the store in --data, and says how to install
// them: a first install moves loaxa.conf into conf.d and restarts
// Mosquitto, a later export only reloads it (docs/deploy.md).
func exportMosquitto(args []string, stdout, stderr io.Writer) int {
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
			fmt.Fprintln(stderr, "usage: controller export-mosquitto-acl --out DIR --data DIR --broker tcp://user:password@host:1883")
			return 0
		}
		fmt.Fprintln(stderr, "controller export-mosquitto-acl:", err)
		return 2
	}
	missing, err := app.ExportMosquitto(cfg, out)
	if err != nil {
		fmt.Fprintln(stderr, "controller export-mosquitto-acl:", err)
		return 1
	}
	fmt.Fprintf(stdout, `Wrote %[1]s, %[2]s and %[3]s into %[4]s.
First install: keep %[1]s and %[2]s in /etc/mosquitto (root:mosquitto, 0640), move %[3]s into /etc/mosquitto/conf.d/ (include_dir /etc/mosquitto/conf.d in mosquitto.conf; a listener of your own goes at its top) and restart Mosquitto (systemctl restart mosquitto).
Later exports (after enrolling, rotating or revoking nodes): put %[1]s and %[2]s in /etc/mosquitto and reload Mosquitto (systemctl reload mosquitto).
With TLS (a certfile and keyfile at the top of %[3]s): Mosquitto reads them only at start and on a reload, so reload it after every renewal of the certificate (systemctl reload mosquitto, from the renewal's deploy hook), or every board's handshake fails once the old one expires. Both files must be readable by user mosquitto: a reload that cannot read the new key serves no certificate at all (its log says "Error when reloading certificate").
See docs/deploy.md, "External broker".
`, app.MosquittoPasswdFile, app.MosquittoACLFile, app.MosquittoConfFile, out)
	if len(missing) > 0 {
		fmt.Fprintf(stdout, "Left out (enrolled before broker hashes were kept; rotate their credentials): %s\n", strings.Join(missing, ", "))
	}
	return 0
}

// splitFile takes the one FILE argument out of args, wherever it stands
// among the flags.
func splitFile(args []string, valued map[string]bool) (file string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			rest = append(rest, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && valued[name] && i+1 < len(args) {
				rest = append(rest, args[i+1])
				i++
			}
			continue
		}
		if file != "" {
			return "", nil, fmt.Errorf("unexpected argument %q: give one FILE", a)
		}
		file = a
	}
	if file == "" {
		return "", nil, errors.New("give the backup FILE")
	}
	return file, rest, nil
}

// askedForHelp says whether args ask for the usage, which splitFile would
// otherwise answer with "give the backup FILE".
func askedForHelp(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
}

// runBackup runs "controller backup FILE": online from a running
// controller with --url, or from a stopped one's --data.
func runBackup(args []string, stdout, stderr io.Writer) int {
	const usage = `usage: controller backup FILE --url http://localhost:8080 [--user admin] [--ca PEM]   (token in LOAXA_TOKEN, or password in LOAXA_PASSWORD)
       controller backup FILE --data DIR                                              (controller stopped)`
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", os.Getenv("LOAXA_URL"), "base URL of the running controller (env LOAXA_URL)")
	user := fs.String("user", os.Getenv("LOAXA_USER"), "whole-tree admin to sign in as, with the password in LOAXA_PASSWORD (env LOAXA_USER)")
	token := fs.String("token", "", "bearer token (better: env LOAXA_TOKEN, which a process list does not show)")
	ca := fs.String("ca", "", "PEM certificate to trust for an HTTPS controller")
	data := fs.String("data", os.Getenv("LOAXA_DATA"), "data directory of a stopped controller (env LOAXA_DATA)")
	if askedForHelp(args) {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
		return 0
	}
	file, rest, err := splitFile(args, map[string]bool{"url": true, "user": true, "ca": true, "data": true, "token": true})
	if err != nil {
		fmt.Fprintf(stderr, "controller backup: %v\n%s\n", err, usage)
		return 2
	}
	if err := fs.Parse(rest); err != nil {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var m *backup.Manifest
	switch {
	case *url != "":
		c := &app.BackupClient{URL: *url, Token: *token, Username: *user, Password: os.Getenv("LOAXA_PASSWORD")}
		if c.Token == "" {
			c.Token = os.Getenv("LOAXA_TOKEN")
		}
		if *ca != "" {
			cfg, err := app.TrustPEM(*ca)
			if err != nil {
				fmt.Fprintln(stderr, "controller backup:", err)
				return 2
			}
			c.TLS = cfg
		}
		m, err = c.Fetch(ctx, file)
	case *data != "":
		cfg := app.DefaultConfig()
		cfg.DataDir = *data
		m, err = app.BackupOffline(ctx, cfg, file)
	default:
		fmt.Fprintf(stderr, "controller backup: give --url of a running controller, or --data of a stopped one\n%s\n", usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "controller", err)
		return 1
	}
	fmt.Fprintf(stdout, "Wrote %s: store of %d bytes and %s, taken %s.\n", file, m.StoreSize, loaxa.Count(len(m.Content), "content file", "content files"), m.CreatedAt.Format(time.RFC3339))
	return 0
}

// runRestore runs "controller restore FILE --data DIR [--force]" on a
// stopped controller.
func runRestore(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: controller restore FILE --data DIR [--force]   (stop the controller first)"
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", os.Getenv("LOAXA_DATA"), "data directory to restore into (env LOAXA_DATA)")
	force := fs.Bool("force", false, "replace a store already in --data (it is kept beside as loaxa.db.before-restore-TIME)")
	if askedForHelp(args) {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
		return 0
	}
	file, rest, err := splitFile(args, map[string]bool{"data": true})
	if err != nil {
		fmt.Fprintf(stderr, "controller restore: %v\n%s\n", err, usage)
		return 2
	}
	if err := fs.Parse(rest); err != nil {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	if *data == "" {
		fmt.Fprintf(stderr, "controller restore: give --data DIR\n%s\n", usage)
		return 2
	}
	cfg := app.DefaultConfig()
	cfg.DataDir = *data
	m, err := app.Restore(context.Background(), cfg, file, *force)
	if err != nil {
		fmt.Fprintln(stderr, "controller", err)
		return 1
	}
	fmt.Fprintf(stdout, "Restored %s into %s: store from %s and %s. Start the controller on it.\n", file, *data, m.CreatedAt.Format(time.RFC3339), loaxa.Count(len(m.Content), "content file", "content files"))
	return 0
}
