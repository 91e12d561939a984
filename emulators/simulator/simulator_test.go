package simulator_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/simulator"
	"github.com/sealedsense/sealedsense/shared/air"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
)

// peer is the connectors and the cloud behind them in their plainest
// form: it answers the simulator's one sensor over the air, through the
// connector that brought a packet first, ACKs every packet and puts the
// configuration it is given into every reply. It keeps what it heard for
// the tests to read.
type peer struct {
	t      *testing.T
	static radio.KeyPair
	psk    [32]byte

	mu       sync.Mutex
	config   *payload.Config
	update   func(payload.Uplink) *payload.UpdateOffer // the update offer of each reply, if set
	session  *radio.Session
	uplinks  chan arrival
	answered map[string]bool // packets answered, so a second copy is not
	// copies are every copy any connector heard; readings every reading
	// received, resends merged; initiations every handshake initiation.
	copies      []reception
	readings    map[[2]int64]payload.Reading // by Seq and Time
	initiations []*radio.ResponderHandshake
}

type arrival struct {
	via string
	up  payload.Uplink
}

type reception struct {
	via  string
	rssi float64
	pkt  string
}

func newPeer(t *testing.T) *peer {
	cloudKeys, _ := radio.GenerateKeyPair(rand.Reader)
	p := &peer{t: t, static: cloudKeys, uplinks: make(chan arrival, 64), answered: map[string]bool{},
		readings: map[[2]int64]payload.Reading{}}
	_, _ = rand.Read(p.psk[:])
	return p
}

func (p *peer) setConfig(c *payload.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.config = c
}

// serve answers what connector via hears until its socket closes.
func (p *peer) serve(via string, conn *net.UDPConn, medium *net.UDPAddr) {
	buf := make([]byte, 2048)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return
		}
		f, err := air.Parse(buf[:n])
		if err != nil || f.Kind != air.KindReceived {
			continue
		}
		if out := p.answer(via, f.RSSI, f.Packet); out != nil {
			frame, _ := air.Frame{Kind: air.KindTransmit, Packet: out}.Append(nil)
			_, _ = conn.WriteToUDP(frame, medium)
		}
	}
}

func (p *peer) answer(via string, rssi float64, pkt []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.copies = append(p.copies, reception{via: via, rssi: rssi, pkt: string(pkt)})
	if p.answered[string(pkt)] {
		return nil
	}
	p.answered[string(pkt)] = true
	now := time.Now()
	if typ, err := radio.Type(pkt); err != nil || typ == radio.TypeInitiation {
		rh, err := radio.ReadInitiation(p.static, pkt, nil)
		if err != nil {
			return nil
		}
		p.initiations = append(p.initiations, rh)
		resp, sess, err := rh.Respond(p.psk, 9, now)
		if err != nil {
			return nil
		}
		p.session = sess
		return resp
	}
	if p.session == nil {
		return nil
	}
	pt, counter, err := p.session.Open(nil, pkt, now)
	if err != nil {
		return nil
	}
	up, _, err := payload.DecodeUplink(pt)
	if err != nil {
		return nil
	}
	for _, r := range up.Readings {
		r.Backfilled = false
		p.readings[[2]int64{int64(r.Seq), r.Time}] = r
	}
	select {
	case p.uplinks <- arrival{via: via, up: up}:
	default: // the test is not listening
	}
	var offer *payload.UpdateOffer
	if p.update != nil {
		offer = p.update(up)
	}
	body, _ := payload.Reply{Acks: []uint64{counter}, Config: p.config, Update: offer}.Marshal()
	out, _, err := p.session.Seal(nil, body, now)
	if err != nil {
		return nil
	}
	return out
}

// until waits for an uplink that satisfies ok and returns the readings'
// sequence numbers of the uplinks it skipped and that one.
func (p *peer) until(what string, ok func(via string, up payload.Uplink) bool) []uint64 {
	p.t.Helper()
	var seqs []uint64
	deadline := time.After(30 * time.Second) // a failsafe, not an assertion of speed
	for {
		select {
		case a := <-p.uplinks:
			for _, r := range a.up.Readings {
				seqs = append(seqs, r.Seq)
			}
			if ok(a.via, a.up) {
				return seqs
			}
		case <-p.t.Context().Done():
			p.t.Fatalf("test ended waiting for an uplink %s", what)
		case <-deadline:
			p.t.Fatalf("no uplink %s", what)
		}
	}
}

// allReadings is every reading received, in the order they were taken.
func (p *peer) allReadings() []payload.Reading {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]payload.Reading, 0, len(p.readings))
	for _, r := range p.readings {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b payload.Reading) int { return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.Seq, b.Seq)) })
	return out
}

// world is a running simulator with one sensor, sensorID, and connectors,
// every one carrying what it hears to the peer.
type world struct {
	sim   *simulator.Simulator
	cloud *peer
	creds credentials.Sensor
}

const sensorID = "sim-temp-1"

// newWorld starts cfg with the sensor at at and the connectors, whose
// Addr it sets, until the test ends.
func newWorld(t *testing.T, cfg simulator.Config, at simulator.Point, connectors ...simulator.Connector) *world {
	t.Helper()
	return newWorldOf(t, credentials.Sensor{}, cfg, at, connectors...)
}

// newWorldOf is newWorld for a sensor made from base (its software
// version and release keys, its type if set, else temperature) with fresh
// keys.
func newWorldOf(t *testing.T, base credentials.Sensor, cfg simulator.Config, at simulator.Point, connectors ...simulator.Connector) *world {
	t.Helper()
	p := newPeer(t)
	sensorKeys, _ := radio.GenerateKeyPair(rand.Reader)
	creds := base
	creds.DeviceID = sensorID
	if creds.DeviceType == "" {
		creds.DeviceType = "temperature"
	}
	creds.StaticPrivate, creds.StaticPublic, creds.PSK, creds.CloudPublic = sensorKeys.Private[:], sensorKeys.Public[:], p.psk[:], p.static.Public[:]
	conns := make([]*net.UDPConn, len(connectors))
	for i := range connectors {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conns[i], connectors[i].Addr = conn, conn.LocalAddr().(*net.UDPAddr)
	}
	cfg.Sensors = []simulator.Sensor{{Credentials: creds, At: at}}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Connectors = connectors
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for i, c := range connectors {
		go p.serve(c.ID, conns[i], sim.Addr())
	}
	go func() { _ = sim.Run(ctx) }()
	return &world{sim: sim, cloud: p, creds: creds}
}

// drain stops the readings and waits until every reading taken is
// acknowledged, so the peer has them all.
func (w *world) drain(t *testing.T) {
	t.Helper()
	w.sim.StopReadings()
	deadline := time.Now().Add(30 * time.Second) // a failsafe, not an assertion of speed
	for w.sim.Backlog() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d readings still unacknowledged", w.sim.Backlog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func reports(want payload.ConfigReport) func(string, payload.Uplink) bool {
	return func(_ string, up payload.Uplink) bool { return up.Config != nil && *up.Config == want }
}

// TestConfigurationChangesTheReadingRate: a sensor configured to sample
// every 30 s takes a reading every 30 s / TimeScale, reports the version
// it runs, refuses a configuration outside its ranges with the reason,
// and after a restart resumes its configuration and its reading numbers.
func TestConfigurationChangesTheReadingRate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, simulator.Config{Interval: 200 * time.Millisecond, TimeScale: 100, Seed: 1}, simulator.Point{},
		simulator.Connector{ID: "c1", At: simulator.Point{X: 10}})
	sim, p, id := w.sim, w.cloud, sensorID

	if got := sim.ReadingInterval(id); got != 200*time.Millisecond {
		t.Fatalf("unconfigured reading interval %v; want Interval, 200ms", got)
	}
	p.setConfig(&payload.Config{Version: 2, SampleInterval: 30, Batch: 2})
	before := p.until("reporting version 2 applied", reports(payload.ConfigReport{Version: 2}))
	if got := sim.ReadingInterval(id); got != 300*time.Millisecond {
		t.Fatalf("reading interval after sampling every 30 s at TimeScale 100: %v; want 300ms", got)
	}
	if cfg, v := sim.Sensor(id).Configuration(); v != 2 || cfg.SampleInterval != 30 || sim.Sensor(id).Batch() != 2 {
		t.Fatalf("sensor runs %+v version %d batch %d; want sample 30, batch 2, version 2", cfg, v, sim.Sensor(id).Batch())
	}

	p.setConfig(&payload.Config{Version: 3, SampleInterval: 5})
	before = append(before, p.until("reporting version 3 refused", reports(payload.ConfigReport{Version: 3, Reason: uint8(devconfig.OutOfRange)}))...)
	if got := sim.ReadingInterval(id); got != 300*time.Millisecond {
		t.Fatalf("a refused configuration changed the reading interval to %v; want 300ms", got)
	}

	p.setConfig(nil)
	if _, err := sim.RestartSensor(id); err != nil {
		t.Fatal(err)
	}
	// The restarted sensor's first packet holds only readings taken
	// after the restart: their numbers go on past every earlier one.
	var first payload.Uplink
	p.until("after the restart, reporting version 2", func(via string, up payload.Uplink) bool {
		first = up
		return len(up.Readings) > 0 && reports(payload.ConfigReport{Version: 2})(via, up)
	})
	last := slices.Max(before)
	for _, r := range first.Readings {
		if r.Seq <= last {
			t.Fatalf("after the restart the sensor sent reading %d, not after %d, the last before it: its numbers restarted", r.Seq, last)
		}
	}
	if got := sim.ReadingInterval(id); got != 300*time.Millisecond {
		t.Fatalf("restarted reading interval %v; want the configured 300ms", got)
	}
}

// TestReadingsAreWhatWasSent: what Readings says a sensor took is what
// reached the cloud, reading for reading, across a restart; a sensor of
// every type takes readings.
func TestReadingsAreWhatWasSent(t *testing.T) {
	t.Parallel()
	for _, typ := range devicetype.Sensors() {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			w := newWorldOf(t, credentials.Sensor{DeviceType: typ}, simulator.Config{Interval: 20 * time.Millisecond, Seed: 7}, simulator.Point{},
				simulator.Connector{ID: "c1", At: simulator.Point{X: 10}})
			waitFor(t, "12 readings", func() bool { return len(w.sim.Readings(sensorID)) >= 12 })
			if _, err := w.sim.RestartSensor(sensorID); err != nil {
				t.Fatal(err)
			}
			n := len(w.sim.Readings(sensorID))
			waitFor(t, "readings after the restart", func() bool { return len(w.sim.Readings(sensorID)) >= n+12 })
			w.drain(t)
			took := w.sim.Readings(sensorID)
			// A restart loses what was not yet acknowledged: the cloud has
			// a subset, each reading as it was taken.
			got := w.cloud.allReadings()
			byID := map[uint64]payload.Reading{}
			for _, r := range took {
				byID[r.Seq] = r
			}
			for _, r := range got {
				if want, ok := byID[r.Seq]; !ok || !reflect.DeepEqual(r, want) {
					t.Fatalf("the cloud got %+v; the sensor took %+v", r, want)
				}
			}
			last := took[len(took)-1]
			if len(got) < len(took)/2 || got[len(got)-1].Seq != last.Seq {
				t.Fatalf("the cloud got %d of %d readings, the last %d; want most, and the last, %d", len(got), len(took), got[len(got)-1].Seq, last.Seq)
			}
			for i, r := range took {
				if r.Seq != took[0].Seq+uint64(i) {
					t.Fatalf("reading %d has seq %d after %d", i, r.Seq, took[0].Seq)
				}
			}
		})
	}
	if w := (&simulator.Simulator{}).Readings("nobody"); w != nil {
		t.Fatalf("an unknown sensor's readings: %v", w)
	}
}
