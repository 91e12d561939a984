// Command kms-emulator serves the Cloud KMS gRPC API locally. Point the
// product at it with KMS_EMULATOR_HOST=<addr>.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sealedsense/sealedsense/emulators/kms"
	"github.com/sealedsense/sealedsense/shared/logging"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8683", "listen address")
	stateFile := flag.String("state", "", "keep keys in this 0600 file across restarts (default: memory only)")
	flag.Parse()
	log := logging.New(os.Stderr, slog.LevelInfo)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var opts []kms.Option
	if *stateFile != "" {
		opts = append(opts, kms.WithStateFile(*stateFile))
	}
	emu, err := kms.Start(ctx, *addr, opts...)
	if err != nil {
		log.Error("kms emulator failed to start", "error", err.Error())
		os.Exit(1)
	}
	log.Info("kms emulator ready", "addr", emu.Addr())
	fmt.Printf("export KMS_EMULATOR_HOST=%s\n", emu.Addr())
	<-ctx.Done()
	_ = emu.Close()
	log.Info("kms emulator stopped")
}
