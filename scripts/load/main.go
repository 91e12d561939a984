// Command load runs N simulated sensors and M connectors against the local
// emulators for a while and prints what the pipeline achieved: unique
// readings stored per second, send-to-stored and send-to-ACK latency,
// Firestore commits per unique packet, KMS calls per 1000 data packets, and
// the Firestore emulator's raw create rate for the same documents, measured
// in the same run, for comparison.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/shared/logging"
)

func main() {
	sensors := flag.Int("sensors", 200, "simulated sensors")
	connectors := flag.Int("connectors", 3, "connectors")
	interval := flag.Duration("interval", 2*time.Second, "time between a sensor's readings")
	batch := flag.Int("batch", 8, "readings a sensor collects before it transmits")
	warmup := flag.Duration("warmup", 30*time.Second, "time for every sensor to complete its handshake before measuring")
	duration := flag.Duration("duration", 60*time.Second, "measured time")
	dataDir := flag.String("data", "", "working directory (default: a temporary one)")
	batchWindow := flag.Duration("batch-window", 0, "connectors carry the uplinks heard within this window in one Pub/Sub message (0: one each)")
	flag.Parse()
	if err := run(*sensors, *connectors, *interval, *batch, *batchWindow, *warmup, *duration, *dataDir); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(sensors, connectors int, interval time.Duration, batch int, batchWindow, warmup, duration time.Duration, dataDir string) error {
	ctx := context.Background()
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "sealedsense-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}
	log := logging.New(io.Discard, slog.LevelWarn)
	fmt.Printf("starting %d sensors, %d connectors, a reading every %v, %d readings per packet, connector batch window %v\n", sensors, connectors, interval, batch, batchWindow)
	d, err := local.Start(ctx, local.Config{DataDir: dataDir, Sensors: sensors, Connectors: connectors, Interval: interval, Batch: batch, BatchWindow: batchWindow,
		SensorTypes: []string{"temperature"}, Logger: log})
	if err != nil {
		return err
	}
	defer d.Close()
	time.Sleep(warmup)

	before, err := snapshot(ctx, d)
	if err != nil {
		return err
	}
	d.Sim.AckLatencies()
	time.Sleep(duration)
	after, err := snapshot(ctx, d)
	if err != nil {
		return err
	}
	acks := d.Sim.AckLatencies()
	stored, err := storeLatencies(ctx, d.FS, before.at, after.at)
	if err != nil {
		return err
	}

	secs := after.at.Sub(before.at).Seconds()
	readings := float64(after.readings - before.readings)
	packets := float64(after.packets - before.packets)
	rate := readings / secs
	fmt.Printf("\nmeasured over %.0fs after a %v warm-up\n", secs, warmup)
	fmt.Printf("unique readings stored per second:   %.1f (%d readings in %.0f unique packets)\n", rate, int(readings), packets)
	fmt.Printf("send -> event stored latency:        p50 %v  p99 %v  (%d packets)\n", pct(stored, 50), pct(stored, 99), len(stored))
	fmt.Printf("send -> ACK received latency:        p50 %v  p99 %v  (%d ACKs)\n", pct(acks, 50), pct(acks, 99), len(acks))
	if packets > 0 {
		fmt.Printf("Firestore commits per unique packet: %.2f\n", float64(after.commits-before.commits)/packets)
		fmt.Printf("KMS calls per 1000 data packets:     %.2f (%d calls)\n", float64(after.kms-before.kms)*1000/packets, after.kms-before.kms)
	}
	st := d.Sim.Stats()
	backlog := d.Sim.Backlog()
	// Stop the traffic, so the raw rate is measured on an idle emulator.
	d.StopTraffic()
	raw, err := rawCreateRate(ctx, 3000, 32)
	if err != nil {
		return err
	}
	fmt.Printf("Firestore emulator raw creates/s:    %.0f (same documents, 32 writers)\n", raw)
	fmt.Printf("throughput ratio to raw creates:     %.2f\n", rate/raw)
	fmt.Printf("sensor packets sent %d, replies %d, unacknowledged at the end %d\n", st.Sent, st.Replies, backlog)
	return nil
}

type counts struct {
	at                         time.Time
	readings, packets, commits int64
	kms                        uint64
}

func snapshot(ctx context.Context, d *local.Deployment) (counts, error) {
	c := counts{at: time.Now(), kms: d.Platform().KMSCalls()}
	all, err := count(ctx, d.FS.Collection("events").Query)
	if err != nil {
		return c, err
	}
	net, err := count(ctx, d.FS.Collection("events").Where("eventType", "in", []string{"networkStatus", "connectionStatus"}))
	if err != nil {
		return c, err
	}
	c.readings = all - net
	c.commits, c.packets, err = ingestCounters(d.LogPath("functions"))
	return c, err
}

func count(ctx context.Context, q firestore.Query) (int64, error) {
	res, err := q.NewAggregationQuery().WithCount("n").Get(ctx)
	if err != nil {
		return 0, err
	}
	v, _ := res["n"].(interface{ GetIntegerValue() int64 })
	if v == nil {
		return 0, fmt.Errorf("count query returned %T", res["n"])
	}
	return v.GetIntegerValue(), nil
}

// ingestCounters reads the latest cumulative counters the ingest function
// logs with every reply.
func ingestCounters(path string) (commits, packets int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Commits       int64 `json:"commits"`
			UniquePackets int64 `json:"uniquePackets"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.UniquePackets > 0 {
			commits, packets = l.Commits, l.UniquePackets
		}
	}
	return commits, packets, sc.Err()
}

// storeLatencies is, for each packet stored in the window, the time from
// its sending to its events' creation. A sensor sends as soon as it takes
// the reading that completes a batch, so the newest reading's time is the
// send time; the events of one packet share one commit time.
func storeLatencies(ctx context.Context, fs *firestore.Client, from, to time.Time) ([]time.Duration, error) {
	docs, err := fs.Collection("events").Where("timestamp", ">=", from).Where("timestamp", "<", to).Documents(ctx).GetAll()
	if err != nil {
		return nil, err
	}
	type packet struct {
		device string
		commit time.Time
	}
	newest := map[packet]time.Time{}
	for _, d := range docs {
		ts, ok := d.Data()["timestamp"].(time.Time)
		if !ok || d.Data()["eventType"] != "temperature" {
			continue
		}
		k := packet{d.Data()["deviceId"].(string), d.CreateTime}
		if ts.After(newest[k]) {
			newest[k] = ts
		}
	}
	out := make([]time.Duration, 0, len(newest))
	for k, ts := range newest {
		out = append(out, k.commit.Sub(ts))
	}
	return out, nil
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Millisecond)
}

// rawCreateRate creates n documents shaped like stored events into a fresh
// project with the given number of writers, as fast as the emulator takes
// them.
func rawCreateRate(ctx context.Context, n, writers int) (float64, error) {
	fs, err := firestore.NewClient(ctx, fmt.Sprintf("raw-%d", time.Now().UnixNano()))
	if err != nil {
		return 0, err
	}
	defer fs.Close()
	body := []byte(`{"eventId":"0123456789abcdefghij","targetName":"projects/demo/devices/0123456789abcdefghij","eventType":"temperature","data":{"temperature":{"value":21.5}},"timestamp":"2026-11-25T10:00:00.000000000Z"}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				_, err := fs.Collection("events").Doc(fmt.Sprintf("e%08d", i)).Create(ctx, map[string]any{
					"projectId": "demo", "deviceId": "0123456789abcdefghij", "eventType": "temperature",
					"timestamp": time.Now(), "json": body, "expireAt": time.Now().Add(720 * time.Hour),
				})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
