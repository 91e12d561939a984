// Command local runs the whole of SealedSense on this machine: emulators,
// provisioning, the functions server, connectors and simulated sensors. It
// prints the events as they are stored, and a summary of sends, ACKs and
// which connector carried each reply, until Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/logging"
)

func main() {
	sensors := flag.Int("sensors", 20, "number of simulated sensors")
	connectors := flag.Int("connectors", 3, "number of Cloud Connectors")
	interval := flag.Duration("interval", 10*time.Second, "time between a sensor's readings")
	dataDir := flag.String("data", ".local", "directory for logs, credentials and emulator state (wiped at start)")
	functions := flag.String("functions", "127.0.0.1:8690", "address of the local functions server")
	batchWindow := flag.Duration("batch-window", 50*time.Millisecond, "connectors carry the uplinks heard within this window in one Pub/Sub message")
	instances := flag.Int("instances", 1, "functions-server instances, behind a balancer on -functions that spreads requests over them as Cloud Run does")
	flag.Parse()

	logFile, err := os.OpenFile(*dataDir+".log", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log := logging.New(logFile, slog.LevelInfo)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.RemoveAll(*dataDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("Starting emulators, provisioning %d sensors and %d connectors (logs in %s/ and %s.log)...\n", *sensors, *connectors, *dataDir, *dataDir)
	d, err := local.Start(ctx, local.Config{DataDir: *dataDir, Sensors: *sensors, Connectors: *connectors, Interval: *interval, Logger: log,
		FunctionsAddr: *functions, BatchWindow: *batchWindow, Instances: *instances})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start failed:", err)
		os.Exit(1)
	}
	defer d.Close()
	fmt.Printf("Running. Functions at http://%s (%d instances), Firestore emulator project %q. Ctrl-C stops everything.\n", d.FunctionsAddr, d.Instances(), "local")
	fmt.Printf("Customer API at http://%s/v2 (project %q); an organization admin's key for DT's clients is in %s.\n", d.FunctionsAddr, "demo", d.APICredentials())
	// The password is new each run; the provider exists only while this runs.
	fmt.Printf("Studio at %s/ — sign in as %s with password %s (local sign-in provider at %s).\n\n", d.StudioURL(), d.DemoUser.Email, d.DemoUser.Password, d.SignIn.Issuer)

	var stored, dead atomic.Int64
	go func() {
		_ = d.PS.Subscriber(stack.SubEvents).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			m.Ack()
			raw, err := event.SplitMessage(m.Data)
			if err != nil {
				return
			}
			for _, r := range raw {
				e, err := event.Parse(r)
				if err != nil {
					continue
				}
				stored.Add(1)
				fmt.Printf("%s  %-18s %s  %s\n", e.Timestamp.Local().Format("15:04:05"), e.EventType, e.TargetName[strings.LastIndex(e.TargetName, "/")+1:], summary(e))
			}
		})
	}()
	go func() {
		_ = d.PS.Subscriber(stack.SubDeadLetter).Receive(ctx, func(_ context.Context, m *pubsub.Message) { m.Ack(); dead.Add(1) })
	}()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("\nStopping...")
			return
		case <-t.C:
			st := d.Sim.Stats()
			var via []string
			for id, n := range st.RepliesVia {
				via = append(via, fmt.Sprintf("%s %d", id, n))
			}
			sort.Strings(via)
			fmt.Printf("-- packets sent %d, replies (ACKs) received %d via [%s], unacknowledged readings %d, events published %d, dead-lettered %d\n",
				st.Sent, st.Replies, strings.Join(via, ", "), d.Sim.Backlog(), stored.Load(), dead.Load())
		}
	}
}

// summary shows the data of an event in one short line.
func summary(e event.Event) string {
	s := string(e.Data)
	s = s[strings.Index(s, ":")+1 : len(s)-1]
	if len(s) > 90 {
		s = s[:90] + "..."
	}
	return s
}
