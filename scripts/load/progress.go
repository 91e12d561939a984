package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
)

// progress shows a run as it goes: on a terminal one line rewritten every
// 2 s, otherwise a plain line every 10 s, each with the phase, the time in
// it, the readings offered and stored per second since the last line, and
// the sensors' unacknowledged readings.
type progress struct {
	d          *local.Deployment
	offered    float64 // under mu
	raw        float64
	every      time.Duration
	terminal   bool
	mu         sync.Mutex
	name       string
	since      time.Time
	done       chan struct{}
	once       sync.Once
	lastAt     time.Time
	lastStored int64
}

func startProgress(d *local.Deployment, offered, raw float64) *progress {
	p := &progress{d: d, offered: offered, raw: raw, every: 10 * time.Second, done: make(chan struct{}), since: time.Now(), lastAt: time.Now()}
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

// stop ends the display; a terminal's line is finished.
func (p *progress) stop() {
	p.once.Do(func() {
		close(p.done)
		if p.terminal {
			fmt.Println()
		}
	})
}

func (p *progress) loop() {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.show()
	}
}

func (p *progress) show() {
	c, err := latestCounters(p.d.LogPath("functions"))
	if err != nil {
		return
	}
	now := time.Now()
	stored := float64(c.StoredReadings-p.lastStored) / now.Sub(p.lastAt).Seconds()
	p.lastStored, p.lastAt = c.StoredReadings, now
	p.mu.Lock()
	name, in, offered := p.name, now.Sub(p.since).Round(time.Second), p.offered
	p.mu.Unlock()
	line := fmt.Sprintf("%-9s %5v  offered %6.0f/s  stored %6.0f/s (%.2f of raw)  unacknowledged readings %d",
		name, in, offered, stored, stored/p.raw, p.d.Sim.Backlog())
	select {
	case <-p.done:
		return
	default:
	}
	if p.terminal {
		fmt.Printf("\r\033[K%s", line)
		return
	}
	fmt.Println(line)
}

// latestCounters reads ingest's latest counters from the end of the
// functions log: it logs them with every reply, so the last lines hold
// them, and a run's log grows too large to read whole every few seconds.
func latestCounters(path string) (ingest, error) {
	f, err := os.Open(path)
	if err != nil {
		return ingest{}, err
	}
	defer f.Close()
	const tail = 256 << 10
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return ingest{}, err
	}
	from := max(0, size-tail)
	b := make([]byte, size-from)
	if _, err := f.ReadAt(b, from); err != nil && err != io.EOF {
		return ingest{}, err
	}
	lines := bytes.Split(b, []byte{'\n'})
	for i := len(lines) - 1; i >= 0; i-- {
		var l ingest
		if json.Unmarshal(lines[i], &l) == nil && l.UniquePackets > 0 {
			return l, nil
		}
	}
	if from > 0 {
		return ingestCounters(path) // no counters near the end: read it all
	}
	return ingest{}, nil
}
