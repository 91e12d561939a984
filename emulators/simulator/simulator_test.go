package simulator_test

import (
	"context"
	"crypto/rand"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/simulator"
	"github.com/sealedsense/sealedsense/shared/air"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
)

// peer is a connector and the cloud behind it in their plainest form: it
// answers the simulator's one sensor over the air, ACKs every packet and
// puts the configuration it is given into every reply.
type peer struct {
	t      *testing.T
	conn   *net.UDPConn
	static radio.KeyPair
	psk    [32]byte

	mu      sync.Mutex
	config  *payload.Config
	session *radio.Session
	uplinks chan payload.Uplink
}

func (p *peer) setConfig(c *payload.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.config = c
}

// serve answers what the sensor sends until the socket closes.
func (p *peer) serve(medium *net.UDPAddr) {
	buf := make([]byte, 2048)
	for {
		n, err := p.conn.Read(buf)
		if err != nil {
			return
		}
		f, err := air.Parse(buf[:n])
		if err != nil || f.Kind != air.KindReceived {
			continue
		}
		if out := p.answer(f.Packet); out != nil {
			frame, _ := air.Frame{Kind: air.KindTransmit, Packet: out}.Append(nil)
			_, _ = p.conn.WriteToUDP(frame, medium)
		}
	}
}

func (p *peer) answer(pkt []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if typ, err := radio.Type(pkt); err != nil || typ == radio.TypeInitiation {
		rh, err := radio.ReadInitiation(p.static, pkt, nil)
		if err != nil {
			return nil
		}
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
	select {
	case p.uplinks <- up:
	default: // the test is not listening
	}
	body, _ := payload.Reply{Acks: []uint64{counter}, Config: p.config}.Marshal()
	out, _, err := p.session.Seal(nil, body, now)
	if err != nil {
		return nil
	}
	return out
}

// until waits for an uplink that satisfies ok and returns the readings'
// sequence numbers of the uplinks it skipped and that one.
func (p *peer) until(what string, ok func(payload.Uplink) bool) []uint64 {
	p.t.Helper()
	var seqs []uint64
	deadline := time.After(30 * time.Second) // a failsafe, not an assertion of speed
	for {
		select {
		case up := <-p.uplinks:
			for _, r := range up.Readings {
				seqs = append(seqs, r.Seq)
			}
			if ok(up) {
				return seqs
			}
		case <-deadline:
			p.t.Fatalf("no uplink %s", what)
		}
	}
}

func reports(want payload.ConfigReport) func(payload.Uplink) bool {
	return func(up payload.Uplink) bool { return up.Config != nil && *up.Config == want }
}

// TestConfigurationChangesTheReadingRate: a sensor configured to sample
// every 30 s takes a reading every 30 s / TimeScale, reports the version
// it runs, refuses a configuration outside its ranges with the reason,
// and after a restart resumes its configuration and its reading numbers.
func TestConfigurationChangesTheReadingRate(t *testing.T) {
	t.Parallel()
	cloudKeys, _ := radio.GenerateKeyPair(rand.Reader)
	sensorKeys, _ := radio.GenerateKeyPair(rand.Reader)
	p := &peer{t: t, static: cloudKeys, uplinks: make(chan payload.Uplink, 64)}
	_, _ = rand.Read(p.psk[:])
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p.conn = conn
	const id = "sim-temp-1"
	sim, err := simulator.New(simulator.Config{
		Sensors: []simulator.Sensor{{Credentials: credentials.Sensor{DeviceID: id, DeviceType: "temperature",
			StaticPrivate: sensorKeys.Private[:], StaticPublic: sensorKeys.Public[:], PSK: p.psk[:], CloudPublic: cloudKeys.Public[:]}}},
		Connectors: []simulator.Connector{{ID: "c1", At: simulator.Point{X: 10}, Addr: conn.LocalAddr().(*net.UDPAddr)}},
		Interval:   200 * time.Millisecond, TimeScale: 100, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.serve(sim.Addr())
	go func() { _ = sim.Run(ctx) }()

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
	p.until("after the restart, reporting version 2", func(up payload.Uplink) bool {
		first = up
		return len(up.Readings) > 0 && reports(payload.ConfigReport{Version: 2})(up)
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
