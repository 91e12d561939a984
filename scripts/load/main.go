// Command load runs N simulated sensors and M connectors against the local
// emulators for a while and prints what the pipeline achieved: unique
// readings stored per second, send-to-stored and send-to-ACK latency,
// Firestore commits per unique packet, KMS calls per 1000 data packets, and
// the Firestore emulator's raw create rate for the same documents.
//
// The raw rate is measured first, on the emulators the run then uses, and
// the load offered is a share of it (-load, default 0.5), so that the same
// command asks the same of a slow machine as of a fast one; -rate offers
// an absolute rate instead. Throughput is printed beside its ratio to the
// raw rate. While it runs it shows its progress: one updating line on a
// terminal, a plain line every 10 s otherwise.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/simulator"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/logging"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/usage"
)

func main() {
	sensors := flag.Int("sensors", 200, "simulated sensors")
	connectors := flag.Int("connectors", 3, "connectors")
	// Measured once the backlog of the start (every sensor's handshake,
	// cold emulators) has drained.
	load := flag.Float64("load", 0.5, "readings offered per second, as a share of the Firestore emulator's raw create rate measured first")
	rate := flag.Float64("rate", 0, "readings offered per second, absolute (instead of -load)")
	capacity := flag.Bool("find-capacity", false, "step the load up from 0.3 of the raw create rate until send->ACK p99 passes 2 s, stored falls below 0.9 of offered or the sensors' backlog grows, and print the knee")
	interval := flag.Duration("interval", 0, "time between a sensor's readings (instead of -load and -rate)")
	batch := flag.Int("batch", 32, "readings a sensor collects before it transmits")
	warmup := flag.Duration("warmup", 120*time.Second, "time for every sensor to complete its handshake, and the emulators to warm up, before measuring")
	duration := flag.Duration("duration", 45*time.Second, "measured time")
	dataDir := flag.String("data", "", "working directory (default: a temporary one)")
	batchWindow := flag.Duration("batch-window", 300*time.Millisecond, "connectors carry the uplinks heard within this window in one Pub/Sub message (0: one each)")
	window := flag.Duration("window", 0, "ingest's collection window, how long a reply waits for the copies of its packet (0: ingest's default, 200ms)")
	hold := flag.Duration("backlog", 10*time.Minute, "readings each sensor's backlog holds, as time at its reading interval (at least 512, a real sensor's, which at one reading every 15 minutes holds five days)")
	instances := flag.Int("instances", 1, "functions-server instances behind a balancer, as Cloud Run spreads pushes over a service's instances")
	plotDir := flag.String("plot", "", "write SVG and PNG charts of throughput and send->ACK latency over time, and of the measured window's send->ACK histogram, into this directory")
	flag.Parse()
	if *load <= 0 || *load > 4 || *rate < 0 || *interval < 0 {
		fmt.Fprintln(os.Stderr, "load: -load is a share in (0, 4]; -rate and -interval are not negative")
		os.Exit(2)
	}
	offer := offered{share: *load, rate: *rate, interval: *interval, findCapacity: *capacity, backlog: *hold}
	windows := windows{batch: *batchWindow, collection: *window}
	if err := run(*sensors, *connectors, *instances, offer, *batch, windows, *warmup, *duration, *dataDir, *plotDir); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// offered is the load asked for: a share of the raw create rate, an
// absolute rate, or a sensor interval, the last given winning.
type offered struct {
	share        float64
	rate         float64
	interval     time.Duration
	findCapacity bool // step the share up instead (findCapacity)
	// backlog is how long each sensor's backlog holds readings at the
	// interval offered first: a simulated sensor reads every few
	// milliseconds, so a real sensor's 512 readings, days of them, would
	// hold here only the ACK latency of a loaded run.
	backlog time.Duration
}

// backlogBound is each sensor's backlog bound for readings every
// interval: o.backlog's worth, at least a real sensor's 512.
func (o offered) backlogBound(interval time.Duration) int {
	return max(realBacklog, int(o.backlog/max(interval, time.Millisecond)))
}

// perSensor is the reading interval that offers o from sensors, given the
// raw create rate, and the readings per second it offers.
func (o offered) perSensor(sensors int, raw float64) (time.Duration, float64) {
	iv := o.interval
	if iv == 0 {
		r := o.rate
		if r == 0 {
			r = o.share * raw
		}
		iv = time.Duration(float64(sensors) / r * float64(time.Second))
	}
	iv = max(iv, time.Millisecond)
	return iv, float64(sensors) / iv.Seconds()
}

// windows are the two waits on the way to an ACK: the connectors' batch
// window and ingest's collection window.
type windows struct{ batch, collection time.Duration }

func run(sensors, connectors, instances int, offer offered, batch int, w windows, warmup, duration time.Duration, dataDir, plotDir string) error {
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
	fmt.Println("starting the emulators and measuring the Firestore emulator's raw create rate...")
	plat, err := platform.Start(ctx, platform.Config{DataDir: filepath.Join(dataDir, "emulators"), Project: "load", Logger: log})
	if err != nil {
		return err
	}
	defer plat.Close()
	plat.PointClients()
	// A cold JVM creates at about half its warm rate: the first
	// measurement warms it longer.
	rawBefore, err := rawCreateRate(ctx, 32, rawColdWarmup)
	if err != nil {
		return err
	}
	if offer.findCapacity {
		// The warm-up offers the first step's load, so the first step
		// does not start behind.
		offer = offered{share: capacityShares[0], findCapacity: true, backlog: offer.backlog}
	}
	interval, offeredRate := offer.perSensor(sensors, rawBefore)
	bound := offer.backlogBound(interval)
	fmt.Printf("raw creates/s before the run: %.0f; offering %.0f readings/s (%.2f of it)\n", rawBefore, offeredRate, offeredRate/rawBefore)
	fmt.Printf("starting %d sensors, %d connectors, %d functions instances, a reading every %v, %d readings per packet, backlogs of %d readings, connector batch window %v, collection window %v\n",
		sensors, connectors, instances, interval, batch, bound, w.batch, cmp.Or(w.collection, 200*time.Millisecond))
	d, err := local.Start(ctx, local.Config{Platform: plat, Project: "load", DataDir: dataDir, Sensors: sensors, Connectors: connectors, Instances: instances, Interval: interval, Batch: batch, Backlog: bound, BatchWindow: w.batch, Window: w.collection,
		SensorTypes: []string{"temperature"}, Logger: log,
		// Cloud Scheduler's cadence in GCP. The emulator answers every query
		// by scanning the whole database, so the local default of a sweep a
		// second would cost more here than the pipeline being measured.
		SweepEvery: time.Minute, DeliverSweepEvery: time.Minute})
	if err != nil {
		return err
	}
	defer d.Close()
	prog := startProgress(d, offeredRate, rawBefore)
	defer prog.stop()
	prog.phase("warm-up")
	time.Sleep(warmup)
	if offer.findCapacity {
		findCapacity(d, sensors, rawBefore, prog)
		return plots(plotDir, prog, nil)
	}
	settledHow := settle(d.Sim, prog, sensors, batch)
	prog.phase(measuring)

	before, err := snapshot(d)
	if err != nil {
		return err
	}
	prog.takeAcks()
	sentBefore, droppedBefore := sensorTotals(d)
	backlogBefore := d.Sim.Backlog()
	stBefore := d.Sim.Stats()
	time.Sleep(duration)
	after, err := snapshot(d)
	if err != nil {
		return err
	}
	acks := prog.takeAcks()
	// Read before the latency query below, which loads the emulator
	// while the traffic goes on.
	st := d.Sim.Stats()
	backlog := d.Sim.Backlog()
	sentAfter, droppedAfter := sensorTotals(d)
	dropped := droppedAfter - droppedBefore
	// A packet whose ACK never comes has no latency to report; leaving it
	// out would flatter the percentiles, so each one counts as slower
	// than any ACK. In a steady state the packets sent near the end,
	// whose ACKs come after it, match the ACKs at the start for packets
	// sent before it.
	unacked := max(0, int(sentAfter-sentBefore)-len(acks))
	db := store.New(d.FS)
	// The query loads the emulator, which the progress line shows and
	// the charts leave out.
	prog.phase(afterWindow)
	stored, err := storeLatencies(ctx, db, d.Customer(), before.at, after.at)
	if err != nil {
		return err
	}

	prog.stop()
	if err := plots(plotDir, prog, acks); err != nil {
		return err
	}
	secs := after.at.Sub(before.at).Seconds()
	readings := float64(after.StoredReadings - before.StoredReadings)
	packets := float64(after.UniquePackets - before.UniquePackets)
	rate := readings / secs
	fmt.Printf("\nmeasured over %.0fs after a %v warm-up; %s\n", secs, warmup, settledHow)
	fmt.Printf("readings offered per second:         %.1f (%.2f of raw creates before the run)\n", offeredRate, offeredRate/rawBefore)
	fmt.Printf("unique readings stored per second:   %.1f (%.2f of raw creates before the run; %d readings in %.0f unique packets)\n", rate, rate/rawBefore, int(readings), packets)
	fmt.Printf("send -> event stored latency:        p50 %s  p99 %s  (%d packets)\n", pctOrNever(stored, 0, 50), pctOrNever(stored, 0, 99), len(stored))
	fmt.Printf("send -> ACK received latency:        p50 %s  p99 %s  (%d ACKs; %d data packets sent got none, counted as slowest)\n",
		pctOrNever(acks, unacked, 50), pctOrNever(acks, unacked, 99), len(acks), unacked)
	printCosts(before, after, readings, packets)
	// Stop the traffic and let the pipeline drain, so the raw rate is
	// measured on an idle emulator.
	d.StopTraffic()
	drained := drain(ctx, d, time.Minute)
	if err := printRaw(ctx, rate, drained); err != nil {
		return err
	}
	eventBytes, err := eventSize(ctx, db)
	if err != nil {
		return err
	}
	bill := printBill(usageOf(before, after, readings, packets, eventBytes))
	// A backlog that shrinks over the window means the pipeline was still
	// catching up with the warm-up, not in a steady state.
	fmt.Printf("sensor packets sent %d, replies %d; unacknowledged readings %d at the window's start, %d at its end\n",
		st.Sent, st.Replies, backlogBefore, backlog)
	offRoute := printRoutes(stBefore, st)
	printOverflow(overflow{sensors: sensors, bound: bound, from: backlogBefore, to: backlog, fullest: prog.fullest(), dropped: dropped, secs: secs})
	// The check counts the whole database, which the emulator does by
	// scanning it: after a long run it can fail, and the run's figures
	// still stand, so the summary follows with the failure said.
	var checkErr error
	if drained {
		if checkErr = checkStored(ctx, d, db); checkErr != nil {
			fmt.Println("checking ingest's count against Firestore failed:", checkErr)
		}
	}
	printRow(row{offered: offeredRate / rawBefore, stored: rate / rawBefore, p50: pctOrNever(acks, unacked, 50), p99: pctOrNever(acks, unacked, 99),
		commits: float64(after.Commits-before.Commits) / readings, writes: float64(after.DocWrites-before.DocWrites) / readings,
		offRoute: offRoute, dropped: dropped, bill: bill})
	printInstancesRow(instances, before, after, packets, pctOrNever(acks, unacked, 99), offRoute)
	return checkErr
}

// printInstancesRow prints what depends on the instance count, per unique
// packet, as a Markdown table row with its header: the README's table of
// figures by instance count.
func printInstancesRow(instances int, before, after counts, packets float64, p99 string, offRoute float64) {
	if packets == 0 {
		return
	}
	hits, misses := after.SessionHits-before.SessionHits, after.SessionMisses-before.SessionMisses
	fmt.Println("\nby instance count:")
	fmt.Println("| instances | commits / packet | writes / packet | reads / packet | session-cache hits | KMS calls / 1000 packets | copies answered elsewhere / packet | send→ACK p99 | replies off the strongest connector |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %d | %.2f | %.2f | %.2f | %.3f | %.2f | %.2f | %s | %.3f |\n", instances,
		float64(after.Commits-before.Commits)/packets, float64(after.DocWrites-before.DocWrites)/packets, float64(after.DocReads-before.DocReads)/packets,
		float64(hits)/float64(max(1, hits+misses)), float64(after.kms-before.kms)*1000/packets, float64(after.CrossCopies-before.CrossCopies)/packets, p99, offRoute)
}

// row is a run's conclusions, as ratios where a figure depends on the
// machine: what the README's table shows.
type row struct {
	offered, stored float64 // readings per second, of the raw create rate measured before the run
	p50, p99        string  // send -> ACK
	commits, writes float64 // per stored reading
	offRoute        float64 // replies not through the sensor's strongest connector
	dropped         uint64  // readings dropped at the sensors
	bill            float64 // dollars per million stored readings
}

// printRow prints r as a Markdown table with its header.
func printRow(r row) {
	fmt.Println("\nsummary:")
	fmt.Println("| offered (of raw creates) | stored (of raw creates) | stored / offered | send→ACK p50 / p99 | commits / writes per reading | replies off the strongest connector | readings dropped at sensors | $ per million readings |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	fmt.Printf("| %.2f | %.2f | %.2f | %s / %s | %.3f / %.2f | %.3f | %d | %.2f |\n",
		r.offered, r.stored, r.stored/r.offered, r.p50, r.p99, r.commits, r.writes, r.offRoute, r.dropped, r.bill)
}

// printCosts prints what the packets and readings of the window cost:
// Firestore commits, KMS calls and CPU time.
func printCosts(before, after counts, readings, packets float64) {
	if packets > 0 && readings > 0 {
		commits, writes, reads := float64(after.Commits-before.Commits), float64(after.DocWrites-before.DocWrites), float64(after.DocReads-before.DocReads)
		fmt.Printf("Firestore commits per unique packet: %.2f (%.2f per reading)\n", commits/packets, commits/readings)
		fmt.Printf("document writes per unique packet:   %.2f (%.2f per reading); reads %.2f (%.2f per reading)\n", writes/packets, writes/readings, reads/packets, reads/readings)
		fmt.Printf("KMS calls per 1000 data packets:     %.2f (%d calls)\n", float64(after.kms-before.kms)*1000/packets, after.kms-before.kms)
		hits, misses := after.SessionHits-before.SessionHits, after.SessionMisses-before.SessionMisses
		fmt.Printf("session cache:                       %.3f of lookups hit (%d hits, %d misses); copies answered by another instance %.2f per packet\n",
			float64(hits)/float64(max(1, hits+misses)), hits, misses, float64(after.CrossCopies-before.CrossCopies)/packets)
	}
	if readings > 0 && len(after.cpu) > 0 {
		printCPU(before, after, readings)
	}
}

// printCPU prints the CPU time per 1000 stored readings, by part, at 100
// clock ticks a second (Linux's USER_HZ): where the machine's cores went.
func printCPU(before, after counts, readings float64) {
	fmt.Printf("CPU seconds per 1000 readings:      ")
	parts := slices.Sorted(maps.Keys(after.cpu))
	for _, p := range parts {
		fmt.Printf(" %s %.2f;", p, float64(after.cpu[p]-before.cpu[p])/100/readings*1000)
	}
	fmt.Println()
}

// printRaw measures and prints the emulator's raw create rate and the
// pipeline's rate as a share of it.
func printRaw(ctx context.Context, rate float64, drained bool) error {
	raw, err := rawCreateRate(ctx, 32, rawWarmup)
	if err != nil {
		return err
	}
	note := ""
	if !drained {
		note = ", measured while the pipeline was still draining its backlog"
	}
	fmt.Printf("Firestore emulator raw creates/s:    %.0f (same documents, one per commit, 32 writers, sustained over %v%s)\n", raw, rawMeasure, note)
	fmt.Printf("throughput ratio to raw creates:     %.2f\n", rate/raw)
	return nil
}

// checkStored checks ingest's own count against what Firestore holds.
func checkStored(ctx context.Context, d *local.Deployment, db *store.DB) error {
	final, err := ingestCounters(d.LogPath("functions"))
	if err != nil {
		return err
	}
	n, err := storedReadings(ctx, db)
	if err != nil {
		return err
	}
	// Ingest logs its count with each reply, so the last packets may
	// be missing from it; it can never exceed what Firestore holds.
	fmt.Printf("reading events in Firestore %d, counted by ingest %d\n", n, final.StoredReadings)
	if final.StoredReadings > n {
		return fmt.Errorf("ingest reports %d reading events created but Firestore holds only %d", final.StoredReadings, n)
	}
	return nil
}

type counts struct {
	at time.Time
	ingest
	kms uint64
	cpu map[string]int64
}

// snapshot reads the counters without touching Firestore: the emulator
// answers a count by scanning the whole database, which would load it
// with the measurement itself.
func snapshot(d *local.Deployment) (counts, error) {
	c := counts{at: time.Now(), kms: d.Platform().KMSCalls(), cpu: cpuTicks()}
	var err error
	c.ingest, err = ingestCounters(d.LogPath("functions"))
	return c, err
}

// storedReadings counts the reading events in Firestore, to check ingest's
// own count once the traffic has stopped.
func storedReadings(ctx context.Context, db *store.DB) (int64, error) {
	all, err := db.CountEvents(ctx)
	if err != nil {
		return 0, err
	}
	other, err := db.CountEventsOfTypes(ctx, []string{"networkStatus", "connectionStatus", "ethernetStatus", "cellularStatus"})
	return all - other, err
}

// ingest are the cumulative counters the ingest function logs with every
// reply, each instance its own.
type ingest struct {
	Instance       string `json:"instance"`
	Commits        int64  `json:"commits"`
	UniquePackets  int64  `json:"uniquePackets"`
	StoredReadings int64  `json:"storedReadings"`
	SessionHits    int64  `json:"sessionHits"`
	SessionMisses  int64  `json:"sessionMisses"`
	CrossCopies    int64  `json:"crossInstanceCopies"`
	usage.Counts
}

// plus is the counters of two instances together.
func (a ingest) plus(b ingest) ingest {
	return ingest{Commits: a.Commits + b.Commits, UniquePackets: a.UniquePackets + b.UniquePackets,
		StoredReadings: a.StoredReadings + b.StoredReadings, SessionHits: a.SessionHits + b.SessionHits,
		SessionMisses: a.SessionMisses + b.SessionMisses, CrossCopies: a.CrossCopies + b.CrossCopies, Counts: a.Counts.Plus(b.Counts)}
}

// latestByInstance keeps each instance's newest counters from log lines
// read oldest first.
type latestByInstance map[string]ingest

func (m latestByInstance) add(line []byte) {
	var l ingest
	if json.Unmarshal(line, &l) == nil && l.UniquePackets > 0 {
		m[l.Instance] = l
	}
}

// total is the deployment's counters: the sum of each instance's latest.
func (m latestByInstance) total() ingest {
	var t ingest
	for _, id := range slices.Sorted(maps.Keys(m)) {
		t = t.plus(m[id])
	}
	return t
}

// ingestCounters reads the latest counters from the whole functions log.
func ingestCounters(path string) (ingest, error) {
	f, err := os.Open(path)
	if err != nil {
		return ingest{}, err
	}
	defer f.Close()
	latest := latestByInstance{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		latest.add(sc.Bytes())
	}
	return latest.total(), sc.Err()
}

// storeLatencies is, for each packet stored in the window, the time from
// its sending to its events' creation. A sensor sends as soon as it takes
// the reading that completes a batch, so the newest reading's time is the
// send time; the events of one packet share one commit time.
func storeLatencies(ctx context.Context, db *store.DB, project string, from, to time.Time) ([]time.Duration, error) {
	docs, err := db.EventsBetween(ctx, project, from, to)
	if err != nil {
		return nil, err
	}
	type packet struct {
		device string
		commit time.Time
	}
	newest := map[packet]time.Time{}
	for _, d := range docs {
		if d.Timestamp.IsZero() || d.EventType != "temperature" {
			continue
		}
		k := packet{d.DeviceID, d.Created}
		if d.Timestamp.After(newest[k]) {
			newest[k] = d.Timestamp
		}
	}
	out := make([]time.Duration, 0, len(newest))
	for k, ts := range newest {
		out = append(out, k.commit.Sub(ts))
	}
	return out, nil
}

// sensorTotals sums every sensor's counters: the data packets sent and
// the readings dropped from a full backlog so far.
func sensorTotals(d *local.Deployment) (sent, dropped uint64) {
	for _, dev := range d.Devices() {
		st := d.Sim.Sensor(dev).Stats()
		sent, dropped = sent+st.Sent, dropped+st.Dropped
	}
	return sent, dropped
}

// pctOrNever is the p-th percentile of ds and never more samples that are
// slower than all of them: "never" where it falls among those.
func pctOrNever(ds []time.Duration, never, p int) string {
	n := len(ds) + never
	if n == 0 {
		return "-"
	}
	i := min(n-1, n*p/100)
	if i >= len(ds) {
		return "never"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[i].Round(time.Millisecond).String()
}

// drain waits until ingest has stored no new packet for 3 seconds, at most
// limit, and reports whether it got there.
func drain(ctx context.Context, d *local.Deployment, limit time.Duration) bool {
	last, _ := ingestCounters(d.LogPath("functions"))
	quiet := time.Now()
	for end := time.Now().Add(limit); time.Now().Before(end); {
		time.Sleep(500 * time.Millisecond)
		n, err := ingestCounters(d.LogPath("functions"))
		if err != nil || ctx.Err() != nil {
			return false
		}
		if n.UniquePackets != last.UniquePackets || n.StoredReadings != last.StoredReadings {
			last, quiet = n, time.Now()
		}
		if time.Since(quiet) >= 3*time.Second {
			return true
		}
	}
	return false
}

// rawCreateRate is the emulator's sustained rate of creating documents
// shaped like stored events (the same fields, a real event's JSON, the
// server timestamp) into a fresh project, one create per commit, with the
// given number of writers, over rawMeasure after warm. It is
// sustained, as the pipeline's rate is: short rounds would swing with the
// emulator's garbage collections.
func rawCreateRate(ctx context.Context, writers int, warm time.Duration) (float64, error) {
	fs, err := firestore.NewClient(ctx, fmt.Sprintf("raw-%d", time.Now().UnixNano()))
	if err != nil {
		return 0, err
	}
	defer fs.Close()
	db := store.New(fs)
	c := 21.5
	ev, err := event.FromReading("demo", "0123456789abcdefghij", payload.Reading{Seq: 1, Kind: payload.Temperature, Time: time.Now().UnixMilli(), Celsius: &c})
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return 0, err
	}
	if _, err := createFor(ctx, db, body, "w", warm, writers); err != nil {
		return 0, err
	}
	n, err := createFor(ctx, db, body, "r", rawMeasure, writers)
	return float64(n) / rawMeasure.Seconds(), err
}

const (
	rawColdWarmup = 30 * time.Second
	rawWarmup     = 3 * time.Second
	rawMeasure    = 15 * time.Second
)

// createFor creates event documents with the given number of writers for
// d and returns how many it created.
func createFor(ctx context.Context, db *store.DB, body []byte, prefix string, d time.Duration, writers int) (int64, error) {
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	end := time.Now().Add(d)
	for range writers {
		wg.Go(func() {
			for time.Now().Before(end) {
				i := next.Add(1)
				err := db.CreateEventAlone(ctx, fmt.Sprintf("%s%08d", prefix, i), store.Event{
					ProjectID: "demo", DeviceID: "0123456789abcdefghij", EventType: "temperature",
					Timestamp: time.Now(), JSON: body, ExpireAt: time.Now().Add(720 * time.Hour),
					// StoredAt left zero: the server timestamp of the commit.
				})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if time.Now().Before(end) {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return done.Load(), nil
}

// usageOf is the usage of the window between two snapshots.
func usageOf(before, after counts, readings, packets float64, eventBytes int) usageWindow {
	// What the connectors publish (uplinks) and pull (downlinks) is
	// billed as much as its push, or its publishing, by the functions.
	pubsub := after.PubBytes - before.PubBytes + after.PushedBytes - before.PushedBytes +
		after.PushedByTopic["uplinks"] - before.PushedByTopic["uplinks"] +
		after.PubBytesByTopic["downlinks"] - before.PubBytesByTopic["downlinks"]
	return usageWindow{
		readings: readings, packets: packets,
		docWrites: float64(after.DocWrites - before.DocWrites), docReads: float64(after.DocReads - before.DocReads),
		pubsubBytes: float64(pubsub),
		pushes:      float64(after.Pushes - before.Pushes),
		cpuSeconds:  float64(after.cpu["functions server"]-before.cpu["functions server"]) / 100,
		eventBytes:  float64(eventBytes), retention: eventRetention,
	}
}

// eventRetention is how long ingest keeps events (its default).
const eventRetention = 30 * 24 * time.Hour

// eventSize is the stored size of one reading event of the run.
func eventSize(ctx context.Context, db *store.DB) (int, error) {
	id, fields, err := db.EventOfType(ctx, "temperature")
	if store.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return storedSize("events", id, fields, eventIndexes.single, eventIndexes.composites), nil
}

// measuring is the measured window's phase; afterWindow is the phase
// after it: the latency query.
const (
	measuring   = "measuring"
	afterWindow = "querying"
)

// plots writes the charts into dir, if one was asked for.
func plots(dir string, prog *progress, acks []time.Duration) error {
	if dir == "" {
		return nil
	}
	samples := slices.DeleteFunc(prog.series(), func(s sample) bool { return s.phase == afterWindow })
	if err := writePlots(dir, samples, acks); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	fmt.Printf("charts written to %s\n", dir)
	return nil
}

// printRoutes reports, and returns as a share, how many of the window's replies a connector other
// than the sensor's strongest carried: what a shorter collection window
// may cost, when the strongest copy comes after it.
func printRoutes(before, after simulator.Stats) float64 {
	replies, wrong := after.Replies-before.Replies, after.WrongVia-before.WrongVia
	if replies == 0 {
		return 0
	}
	share := float64(wrong) / float64(replies)
	fmt.Printf("replies through a connector other than the sensor's strongest: %d of %d (%.3f)\n", wrong, replies, share)
	return share
}

// realBacklog is a real sensor's backlog bound (sensor.Config's default
// MaxBacklog).
const realBacklog = 512

// overflow is what the window shows of the sensors' backlogs: their
// bound, the unacknowledged readings of all of them at the window's start
// and end, the fullest one seen during it, and the readings dropped.
type overflow struct {
	sensors, bound, from, to, fullest int
	dropped                           uint64
	secs                              float64
}

// printOverflow reports readings dropped at the sensors over the window,
// the fullest backlog against its bound and a real sensor's, and, for a
// backlog that grew, when at that rate the sensors would start dropping:
// the time an operator has before a cloud that fell behind loses data.
func printOverflow(o overflow) {
	fmt.Printf("readings dropped at the sensors in the window: %d\n", o.dropped)
	fmt.Printf("fullest sensor backlog: %d readings, %.2f of its bound (%d)", o.fullest, float64(o.fullest)/float64(o.bound), o.bound)
	if o.fullest > realBacklog {
		fmt.Printf("; a real sensor's %d would have overflowed", realBacklog)
	}
	fmt.Println()
	if o.to >= o.sensors*o.bound {
		fmt.Printf("every sensor's backlog was full (%d readings each) at the window's end\n", o.bound)
		return
	}
	growth := float64(o.to-o.from) / o.secs
	if growth <= 0 || o.secs <= 0 {
		return
	}
	left := float64(o.sensors*o.bound-o.to) / growth
	fmt.Printf("the backlog grew %.1f readings/s: at that rate the sensors' backlogs (%d readings each) fill in %v\n",
		growth, o.bound, (time.Duration(left) * time.Second).Round(time.Second))
}
