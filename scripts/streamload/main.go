// Command streamload measures the streaming API on one instance: it starts
// the local platform, serves N concurrent streams of one project from one
// stream.Server, stores events in Firestore at a fixed rate, and prints
// the server's memory per stream, the latency from an event's storedAt to
// its arrival at a client (p50, p99) and the events per second delivered.
//
// The clients run in a child process (this binary with -client), so the
// memory figures are the server's alone.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/functions/api/stream"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/store"
)

func main() {
	streams := flag.Int("streams", 1000, "concurrent streams")
	rate := flag.Int("rate", 100, "events stored per second")
	duration := flag.Duration("duration", 30*time.Second, "how long events are stored")
	devices := flag.Int("devices", 50, "devices the events come from")
	format := flag.String("format", "ndjson", "ndjson or sse")
	settle := flag.Duration("settle", 0, "the stream's SettleLag (0: its default)")
	client := flag.Bool("client", false, "internal: run the clients (the parent starts this)")
	url := flag.String("url", "", "internal: the stream URL, for -client")
	flag.Parse()
	var err error
	if *client {
		err = runClients(*url, *streams, *format)
	} else {
		err = run(*streams, *rate, *devices, *duration, *format, *settle)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamload:", err)
		os.Exit(1)
	}
}

// nopCaller keeps every stream authorised.
type nopCaller struct{}

func (nopCaller) Check(context.Context) error { return nil }

// clientResult is what the client process reports, as one JSON line.
type clientResult struct {
	Streams   int     `json:"streams"`
	Received  int64   `json:"received"`
	Missing   int64   `json:"missing"`
	Dups      int64   `json:"dups"`
	P50ms     float64 `json:"p50ms"`
	P99ms     float64 `json:"p99ms"`
	MaxMs     float64 `json:"maxMs"`
	PerSecond float64 `json:"perSecond"`
	Errors    int64   `json:"errors"`
}

func run(n, rate, devices int, duration time.Duration, format string, settle time.Duration) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "sealedsense-streamload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := logging.New(os.Stderr, slog.LevelWarn)
	fmt.Printf("starting the platform; then %d %s streams, %d events/s for %v from %d devices\n", n, format, rate, duration, devices)
	p, err := platform.Start(ctx, platform.Config{Firestore: "auto", PubSub: "auto", KMS: "auto", Storage: "auto",
		DataDir: dir, Project: "streamload", Logger: log})
	if err != nil {
		return err
	}
	defer p.Close()
	p.PointClients()
	const project = "streamload"
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return err
	}
	defer fs.Close()
	db := store.New(fs)
	srv, err := stream.New(stream.Config{MaxStreams: n + 10, MaxStreamsPerProject: n + 10, SettleLag: settle},
		stream.Deps{Firestore: fs, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.Handle(r.Context(), w, r, project, nopCaller{})
	})}
	go func() { _ = hs.Serve(l) }()
	defer hs.Close()

	// Warm the Firestore client and the emulator before the baseline.
	if err := write(ctx, db, project, "warm", 0); err != nil {
		return err
	}
	base := measure()
	cl, err := startClients("http://"+l.Addr().String()+"/stream", n, format)
	if err != nil {
		return err
	}
	defer cl.cmd.Process.Kill()
	for deadline := time.Now().Add(time.Minute); srv.Stats().Streams < n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d streams opened within a minute", srv.Stats().Streams, n)
		}
	}
	idle := measure()

	ld := storeAtRate(ctx, db, project, rate, devices, duration)
	fmt.Printf("stored %d events in %v (%.0f/s), %d failed; waiting for delivery\n",
		ld.written, ld.elapsed.Round(time.Millisecond), float64(ld.written)/ld.elapsed.Seconds(), ld.failed)
	// Let the streams drain, then ask the clients for their figures.
	want := ld.written * int64(n)
	for deadline := time.Now().Add(2 * time.Minute); srv.Stats().Delivered < want && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	res, err := cl.result()
	if err != nil {
		return err
	}
	st := srv.Stats()

	fmt.Printf("\nstreams %d (%s), events stored %d, deliveries expected %d, received %d, missing %d, duplicates %d, stream errors %d, dropped as slow %d, feed polls %d\n",
		n, format, ld.written, want, res.Received, res.Missing, res.Dups, res.Errors, st.Dropped, st.Polls)
	printMemory(n, base, idle, ld.peak)
	fmt.Printf("stored→received: p50 %.0f ms, p99 %.0f ms, max %.0f ms (SettleLag %v)\n", res.P50ms, res.P99ms, res.MaxMs, orDefault(settle))
	fmt.Printf("delivered: %.0f events/s across all streams\n", res.PerSecond)
	return nil
}

// clients is the child process that runs the streams' clients.
type clients struct {
	cmd   *exec.Cmd
	stdin io.Closer
	out   *bufio.Scanner
}

// startClients starts the client process for n streams of url and waits
// until it has sent every request.
func startClients(url string, n int, format string) (*clients, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-client", "-url", url, "-streams", strconv.Itoa(n), "-format", format)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &clients{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if !c.out.Scan() || c.out.Text() != "ready" {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("the clients did not start: %q %v", c.out.Text(), c.out.Err())
	}
	return c, nil
}

// result ends the clients and reads their figures.
func (c *clients) result() (clientResult, error) {
	var res clientResult
	c.stdin.Close()
	if !c.out.Scan() {
		return res, fmt.Errorf("no result from the clients: %v", c.out.Err())
	}
	if err := json.Unmarshal(c.out.Bytes(), &res); err != nil {
		return res, fmt.Errorf("client result %q: %w", c.out.Text(), err)
	}
	_ = c.cmd.Wait()
	return res, nil
}

// load is what storing events at a rate achieved.
type load struct {
	written, failed int64
	elapsed         time.Duration
	peak            memory // measured halfway
}

// storeAtRate stores events at rate for duration, from a pool of
// writers, as ingest would.
func storeAtRate(ctx context.Context, db *store.DB, project string, rate, devices int, duration time.Duration) load {
	start := time.Now()
	var written, failed atomic.Int64
	var peak memory
	var wg sync.WaitGroup
	jobs := make(chan int, rate)
	for range 32 {
		wg.Go(func() {
			for i := range jobs {
				if err := write(ctx, db, project, fmt.Sprintf("dev%d", i%devices), uint64(i)); err != nil {
					failed.Add(1)
					continue
				}
				written.Add(1)
			}
		})
	}
	total := int(duration.Seconds() * float64(rate))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range total {
		<-tick.C
		jobs <- i + 1
		if i == total/2 {
			peak = measure()
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	return load{written: written.Load(), failed: failed.Load(), elapsed: time.Since(start), peak: peak}
}

// printMemory prints the server's memory, in all and per stream.
func printMemory(n int, base, idle, peak memory) {
	fmt.Printf("server memory: baseline heap %s RSS %s; %d idle streams heap %s RSS %s; under load heap %s RSS %s, goroutines %d\n",
		mib(base.heap), mib(base.rss), n, mib(idle.heap), mib(idle.rss), mib(peak.heap), mib(peak.rss), peak.goroutines)
	fmt.Printf("memory per stream: idle heap %s, RSS %s; under load heap %s, RSS %s\n",
		kib((idle.heap-base.heap)/int64(n)), kib((idle.rss-base.rss)/int64(n)), kib((peak.heap-base.heap)/int64(n)), kib((peak.rss-base.rss)/int64(n)))
}

func orDefault(d time.Duration) time.Duration {
	if d == 0 {
		return 500 * time.Millisecond
	}
	return d
}

type memory struct {
	heap, rss  int64
	goroutines int
}

func measure() memory {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memory{heap: int64(m.HeapInuse), rss: rss(), goroutines: runtime.NumGoroutine()}
}

// rss reads the process's resident set from /proc (Linux).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10)) }

// write stores one temperature event in a transaction, as ingest does;
// storedAt is the server timestamp of the write.
func write(ctx context.Context, db *store.DB, project, deviceID string, seq uint64) error {
	now := time.Now().UTC()
	v := 20 + float64(seq%100)/10
	data, err := json.Marshal(map[string]any{"temperature": map[string]any{
		"value": v, "updateTime": now.Format(event.TimeFormat), "isBackfilled": false,
		"samples": []map[string]any{{"value": v, "sampleTime": now.Format(event.TimeFormat)}}}})
	if err != nil {
		return err
	}
	id := event.DerivedID(deviceID, "streamload", seq)
	js, err := json.Marshal(event.Event{EventID: id, TargetName: event.TargetName(project, deviceID),
		EventType: "temperature", Data: data, Timestamp: now})
	if err != nil {
		return err
	}
	return db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return db.CreateEvent(tx, id, store.Event{ProjectID: project, DeviceID: deviceID, EventType: "temperature",
			Timestamp: now, JSON: js, ExpireAt: now.Add(24 * time.Hour)})
	})
}

// received is one event's arrival at one stream.
type received struct {
	id string
	at time.Time
}

// runClients opens n streams, reads until its stdin closes, then looks up
// each event's storedAt and prints the figures as one JSON line.
func runClients(url string, n int, format string) error {
	accept := "application/json"
	if format == "sse" {
		accept = "text/event-stream"
	}
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n, DisableCompression: true}
	hc := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	per := make([][]received, n)
	var errs atomic.Int64
	var wg sync.WaitGroup
	var opened sync.WaitGroup
	opened.Add(n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Accept", accept)
			resp, err := hc.Do(req)
			opened.Done()
			if err != nil || resp.StatusCode != 200 {
				errs.Add(1)
				return
			}
			defer resp.Body.Close()
			per[i] = readStream(resp.Body, &errs)
		})
	}
	opened.Wait()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes it when done
	cancel()
	wg.Wait()

	fs, err := firestore.NewClient(context.Background(), "streamload")
	if err != nil {
		return err
	}
	defer fs.Close()
	docs, err := store.New(fs).ProjectEvents(context.Background(), "streamload")
	if err != nil {
		return err
	}
	stored := map[string]time.Time{}
	for _, d := range docs {
		if !d.StoredAt.IsZero() && d.DeviceID != "warm" {
			stored[d.ID] = d.StoredAt
		}
	}
	b, err := json.Marshal(figures(per, stored, clientResult{Streams: n, Errors: errs.Load()}))
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// figures counts what each stream received of the stored events, and
// the latencies from storedAt to arrival, into res.
func figures(per [][]received, stored map[string]time.Time, res clientResult) clientResult {
	var lat []time.Duration
	first, last := time.Time{}, time.Time{}
	for _, rs := range per {
		seen := map[string]bool{}
		for _, r := range rs {
			at, ok := stored[r.id]
			if !ok {
				continue // the warm-up event, stored before the streams opened
			}
			if seen[r.id] {
				res.Dups++
				continue
			}
			seen[r.id] = true
			res.Received++
			lat = append(lat, r.at.Sub(at))
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if r.at.After(last) {
				last = r.at
			}
		}
		res.Missing += int64(len(stored) - len(seen))
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		res.P50ms, res.P99ms, res.MaxMs = ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1])
		res.PerSecond = float64(res.Received) / last.Sub(first).Seconds()
	}
	return res
}

// readStream records each event's id and arrival until the stream ends.
// It finds the id by position rather than decoding each frame, so that a
// thousand readers in one process measure the server, not themselves.
func readStream(r io.Reader, errs *atomic.Int64) []received {
	var out []received
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	const key = `"eventId":"`
	for sc.Scan() {
		line := sc.Bytes()
		now := time.Now()
		i := strings.Index(string(line), key)
		if i < 0 {
			if strings.Contains(string(line), `"error"`) {
				errs.Add(1)
			}
			continue
		}
		rest := line[i+len(key):]
		j := strings.IndexByte(string(rest), '"')
		if j < 0 {
			continue
		}
		out = append(out, received{id: string(rest[:j]), at: now})
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "canceled") {
		errs.Add(1)
	}
	return out
}
