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
	"syscall"

	"loaxa.vn/controller/app"
)

func main() {
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
