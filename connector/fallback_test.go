package connector_test

import (
	"context"
	"crypto/ed25519"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/connector"
	"github.com/sealedsense/sealedsense/emulators/netpath"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/air"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// path is one network path to the Pub/Sub emulator and the link over it.
func path(t *testing.T, project string) (*netpath.Proxy, *connector.Link) {
	t.Helper()
	p, err := netpath.Listen(platformtest.Platform().PubSubAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ps, err := connector.DialLink(context.Background(), project, p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	link, stop := connector.PubSubLink(ps, "uplinks", "connector-status", "downlinks-ccon-1", 2*time.Second)
	t.Cleanup(stop)
	return p, link
}

// TestFallsBackToCellularAndBack cuts the Ethernet path while packets
// flow: the connector moves to cellular and says so at once, loses no
// packet, and moves back when the path is restored. Batched, the
// envelopes of a failed batch go out again.
func TestFallsBackToCellularAndBack(t *testing.T) {
	t.Parallel()
	for name, window := range map[string]time.Duration{"one message each": 0, "batched": 100 * time.Millisecond} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fallBackAndBack(t, window)
		})
	}
}

func fallBackAndBack(t *testing.T, batchWindow time.Duration) {
	ctx := context.Background()
	r := newRig(t)
	ethernet, ethLink := path(t, r.project)
	_, cellLink := path(t, r.project)
	c, err := connector.New(connector.Config{
		ID: "ccon-1", Key: r.key, ChannelKeys: []ed25519.PublicKey{r.channel.Public().(ed25519.PublicKey)},
		Radio: r.radio, Medium: r.medium.LocalAddr(),
		Ethernet: ethLink, Cellular: cellLink, SignalStrength: 63,
		QueueSize: 4096, Heartbeat: time.Hour, PublishTimeout: 2 * time.Second, ProbeEvery: time.Second,
		BatchWindow: batchWindow,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	defer func() { cancel(); <-done }()

	statuses := r.statuses(t)
	first := waitStatus(t, statuses, relay.ConnectionEthernet)
	if first.Ethernet == nil || !first.Ethernet.Up || first.Cellular == nil || !first.Cellular.Up || first.Cellular.SignalStrength != 63 {
		t.Fatalf("first status %+v, want both links up, cellular at 63", first)
	}
	mac := first.Ethernet.MACAddress
	if len(mac) != 17 || mac[:3] != "02:" {
		t.Fatalf("Ethernet MAC %q, want a locally administered 02:xx:xx:xx:xx:xx", mac)
	}
	seen := r.collectUplinks(t)
	stopSending := r.send(t)

	time.Sleep(time.Second)
	cut := time.Now()
	ethernet.Cut()
	onCell := waitStatus(t, statuses, relay.ConnectionCellular)
	t.Logf("Ethernet cut: CELLULAR status after %v", time.Since(cut).Round(time.Millisecond))
	if !slices.Equal(onCell.Available, []string{relay.ConnectionCellular}) || onCell.Ethernet == nil || onCell.Ethernet.Up ||
		!slices.Equal(onCell.Ethernet.Errors, []string{relay.LinkUnreached}) || onCell.Ethernet.MACAddress != mac {
		t.Fatalf("status on cellular %+v (ethernet %+v), want only cellular available and Ethernet down, unreached, MAC %s", onCell, onCell.Ethernet, mac)
	}

	time.Sleep(time.Second)
	restore := time.Now()
	ethernet.Restore()
	back := waitStatus(t, statuses, relay.ConnectionEthernet)
	t.Logf("Ethernet restored: ETHERNET status after %v", time.Since(restore).Round(time.Millisecond))
	if back.Ethernet == nil || !back.Ethernet.Up || len(back.Ethernet.Errors) != 0 || len(back.Available) != 2 {
		t.Fatalf("status back on Ethernet %+v (ethernet %+v), want both links up", back, back.Ethernet)
	}
	time.Sleep(time.Second)
	n := stopSending()

	deadline := time.Now().Add(30 * time.Second)
	for missing := seen.missing(n); len(missing) > 0; missing = seen.missing(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d packets never published, first %v; stats %+v", len(missing), n, missing[:min(10, len(missing))], c.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := c.Stats()
	if st.Received != uint64(n) || st.Dropped != 0 || st.Switches != 2 {
		t.Fatalf("stats %+v, want %d received, none dropped, 2 switches", st, n)
	}
	t.Logf("%d packets each published at least once across the switches (%d failed publishes requeued, %d published)", n, st.PublishErrors, st.Published)
}

// uplinkSet is the packets seen on the uplinks topic, by number.
type uplinkSet struct {
	mu   sync.Mutex
	seen map[int]int
}

func (s *uplinkSet) missing(n int) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i := range n {
		if s.seen[i] == 0 {
			out = append(out, i)
		}
	}
	return out
}

// collectUplinks opens every uplink published and counts its packet.
func (r *rig) collectUplinks(t *testing.T) *uplinkSet {
	t.Helper()
	s := &uplinkSet{seen: map[int]int{}}
	lookup := r.lookup()
	go func() {
		for data := range r.uplinks {
			envs, err := relay.SplitBatch(data)
			if err != nil {
				t.Errorf("uplink message %x: %v", data, err)
			}
			for _, env := range envs {
				up, err := relay.OpenUplink(context.Background(), env, lookup)
				if err != nil || len(up.Packet) != 3 {
					t.Errorf("uplink %x: %+v %v", env, up, err)
					continue
				}
				s.mu.Lock()
				s.seen[int(up.Packet[1])|int(up.Packet[2])<<8]++
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// send puts a numbered packet on the air every 20 ms until stopped, which
// returns how many it sent.
func (r *rig) send(t *testing.T) func() int {
	t.Helper()
	stop, stopped := make(chan struct{}), make(chan struct{})
	n := 0
	go func() {
		defer close(stopped)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			frame, _ := air.Frame{Kind: air.KindReceived, RSSI: -80, Packet: []byte{3, byte(n), byte(n >> 8)}}.Append(nil)
			if _, err := r.medium.WriteTo(frame, r.radio.LocalAddr()); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	return func() int { close(stop); <-stopped; return n }
}

// statuses opens every status published, in order of arrival.
func (r *rig) statuses(t *testing.T) <-chan relay.Status {
	t.Helper()
	out := make(chan relay.Status, 100)
	lookup := r.lookup()
	go func() {
		for data := range r.stats {
			st, err := relay.OpenStatus(context.Background(), data, lookup)
			if err != nil {
				t.Errorf("status %x: %v", data, err)
				continue
			}
			out <- st
		}
	}()
	return out
}

// waitStatus waits for a status that says connection.
func waitStatus(t *testing.T, statuses <-chan relay.Status, connection string) relay.Status {
	t.Helper()
	deadline := time.After(30 * time.Second)
	var got []string
	for {
		select {
		case st := <-statuses:
			if st.Connection == connection {
				return st
			}
			got = append(got, st.Connection)
		case <-deadline:
			t.Fatalf("no %s status within 30s; statuses seen meanwhile: %v", connection, got)
		}
	}
}
