// Command emulators starts the local platform at the default addresses,
// prints the environment that points clients at it, and stops everything
// cleanly on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/shared/logging"
)

func main() {
	dataDir := flag.String("data", ".local/emulators", "directory for emulator logs and the KMS state file")
	project := flag.String("project", "local", "GCP project id of the local platform")
	flag.Parse()
	log := logging.New(os.Stderr, slog.LevelInfo)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := platform.Start(ctx, platform.Config{DataDir: *dataDir, Project: *project, Logger: log})
	if err != nil {
		log.Error("platform failed to start", "error", err.Error())
		os.Exit(1)
	}
	for _, kv := range p.Env() {
		fmt.Println("export " + kv)
	}
	<-ctx.Done()
	log.Info("stopping the local platform")
	if err := p.Close(); err != nil {
		log.Error("stop", "error", err.Error())
		os.Exit(1)
	}
}
