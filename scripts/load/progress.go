package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
)

// progress shows a run as it goes: on a terminal one line rewritten every
// 2 s, otherwise a plain line every 10 s, each with the phase, the time in
// it, the readings offered and stored per second and the send-to-ACK
// percentiles over the last 2 s, and the sensors' unacknowledged
// readings. It keeps a sample every 2 s for the plots.
type progress struct {
	d          *local.Deployment
	offered    float64 // under mu
	raw        float64
	every      time.Duration
	terminal   bool
	mu         sync.Mutex
	name       string
	start      time.Time // of the run
	since      time.Time // of the phase
	done       chan struct{}
	once       sync.Once
	lastAt     time.Time
	lastStored int64

	// The sensors' send-to-ACK times, collected every tick so that
	// each tick's percentiles can be plotted; the measurements take
	// them with takeAcks. Under mu.
	acks    []time.Duration
	samples []sample
	// peak is the fullest one sensor's backlog was in the measured
	// window; under mu.
	peak int
}

// fullest returns the fullest one sensor's backlog was while measuring.
func (p *progress) fullest() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// sample is one tick of the run, for the plots.
type sample struct {
	at              time.Duration // since the run started
	phase           string
	offered, stored float64 // readings per second
	p50, p99        time.Duration
	acked           int // ACKs in the tick; 0 percentiles when none
	backlog         int
}

func startProgress(d *local.Deployment, offered, raw float64) *progress {
	now := time.Now()
	p := &progress{d: d, offered: offered, raw: raw, every: 10 * time.Second, done: make(chan struct{}), start: now, since: now, lastAt: now}
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		p.terminal, p.every = true, 2*time.Second
	}
	go p.loop()
	return p
}

// phase starts a named phase.
func (p *progress) phase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name, p.since = name, time.Now()
}

// offering starts a named phase that offers a new load.
func (p *progress) offering(name string, offered float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.name, p.since, p.offered = name, time.Now(), offered
}

// takeAcks returns the send-to-ACK times since the last call.
func (p *progress) takeAcks() []time.Duration {
	fresh := p.d.Sim.AckLatencies()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append(p.acks, fresh...)
	p.acks = nil
	return out
}

// series returns the samples so far.
func (p *progress) series() []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.samples)
}

// stop ends the display; a terminal's line is finished.
func (p *progress) stop() {
	p.once.Do(func() {
		close(p.done)
		if p.terminal {
			fmt.Println()
		}
	})
}

// sampleEvery is the plots' resolution.
const sampleEvery = 2 * time.Second

func (p *progress) loop() {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	var printed time.Time
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			show := now.Sub(printed) >= p.every-sampleEvery/2
			if show {
				printed = now
			}
			p.tick(show)
		}
	}
}

// tick samples the run, and with show prints the sample.
func (p *progress) tick(show bool) {
	c, err := latestCounters(p.d.LogPath("functions"), p.d.Instances())
	if err != nil {
		return
	}
	now := time.Now()
	stored := float64(c.StoredReadings-p.lastStored) / now.Sub(p.lastAt).Seconds()
	p.lastStored, p.lastAt = c.StoredReadings, now
	tick := p.d.Sim.AckLatencies()
	backlog := p.d.Sim.Backlog()
	fullest := 0
	for _, dev := range p.d.Devices() {
		fullest = max(fullest, p.d.Sim.Sensor(dev).Stats().Backlog)
	}
	p.mu.Lock()
	if p.name == measuring {
		p.peak = max(p.peak, fullest)
	}
	p.acks = append(p.acks, tick...)
	so := sample{at: now.Sub(p.start), phase: p.name, offered: p.offered, stored: stored, acked: len(tick), backlog: backlog}
	if len(tick) > 0 {
		slices.Sort(tick)
		so.p50, so.p99 = tick[len(tick)*50/100], tick[min(len(tick)-1, len(tick)*99/100)]
	}
	p.samples = append(p.samples, so)
	name, in, offered := p.name, now.Sub(p.since).Round(time.Second), p.offered
	p.mu.Unlock()
	line := fmt.Sprintf("%-9s %5v  offered %6.0f/s  stored %6.0f/s (%.2f of raw)  ACK p50 %v p99 %v  unacknowledged readings %d",
		name, in, offered, stored, stored/p.raw, so.p50.Round(time.Millisecond), so.p99.Round(time.Millisecond), backlog)
	select {
	case <-p.done:
		return
	default:
	}
	if !show {
		return
	}
	if p.terminal {
		fmt.Printf("\r\033[K%s", line)
		return
	}
	fmt.Println(line)
}

// latestCounters reads ingest's latest counters from the end of the
// functions log: each instance logs them with every reply, so the last
// lines hold every busy instance's, and a run's log grows too large to
// read whole every few seconds. instances is how many there are.
func latestCounters(path string, instances int) (ingest, error) {
	f, err := os.Open(path)
	if err != nil {
		return ingest{}, err
	}
	defer f.Close()
	tail := int64(instances) * 256 << 10
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return ingest{}, err
	}
	from := max(0, size-tail)
	b := make([]byte, size-from)
	if _, err := f.ReadAt(b, from); err != nil && err != io.EOF {
		return ingest{}, err
	}
	latest := latestByInstance{}
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		latest.add(l)
	}
	if len(latest) < instances && from > 0 {
		return ingestCounters(path) // an instance quiet near the end: read it all
	}
	return latest.total(), nil
}
