package connector_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/connector"
	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/shared/air"
	"github.com/sealedsense/sealedsense/shared/relay"
)

func TestMain(m *testing.M) { platformtest.Main(m) }

type rig struct {
	project        string
	ps             *pubsub.Client
	key, channel   ed25519.PrivateKey
	radio, medium  *net.UDPConn
	uplinks, stats chan []byte
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	ps := platformtest.PubSub(t, project)
	for _, topic := range []string{"uplinks", "connector-status", "downlinks"} {
		if err := platform.EnsureTopic(ctx, ps, topic); err != nil {
			t.Fatal(err)
		}
	}
	for id, topic := range map[string]string{"up-watch": "uplinks", "status-watch": "connector-status", "downlinks-ccon-1": "downlinks"} {
		if err := platform.EnsureSubscription(ctx, ps, platform.SubscriptionSpec{ID: id, Topic: topic}); err != nil {
			t.Fatal(err)
		}
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, channel, _ := ed25519.GenerateKey(rand.Reader)
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	r := &rig{project: project, ps: ps, key: key, channel: channel, radio: listen(), medium: listen(), uplinks: make(chan []byte, 100), stats: make(chan []byte, 100)}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	for sub, ch := range map[string]chan []byte{"up-watch": r.uplinks, "status-watch": r.stats} {
		go func() {
			_ = ps.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) { m.Ack(); ch <- m.Data })
		}()
	}
	return r
}

// lookup knows the rig's connector key.
func (r *rig) lookup() relay.KeyLookup {
	pub := r.key.Public().(ed25519.PublicKey)
	return func(context.Context, string) (relay.ConnectorKeys, error) {
		return relay.ConnectorKeys{Valid: []ed25519.PublicKey{pub}}, nil
	}
}

// link is a backhaul link straight to the emulator.
func (r *rig) link() *connector.Link {
	return &connector.Link{Uplinks: r.ps.Publisher("uplinks"), Status: r.ps.Publisher("connector-status"), Downlinks: r.ps.Subscriber("downlinks-ccon-1")}
}

func (r *rig) start(t *testing.T, queue int) (*connector.Connector, context.CancelFunc, chan error) {
	t.Helper()
	return r.startWith(t, queue, 0)
}

func (r *rig) startWith(t *testing.T, queue int, batchWindow time.Duration) (*connector.Connector, context.CancelFunc, chan error) {
	t.Helper()
	c, err := connector.New(connector.Config{
		ID: "ccon-1", Key: r.key, ChannelKeys: []ed25519.PublicKey{r.channel.Public().(ed25519.PublicKey)},
		Radio: r.radio, Medium: r.medium.LocalAddr(),
		Ethernet:  r.link(),
		QueueSize: queue, Heartbeat: time.Hour, BatchWindow: batchWindow,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return c, cancel, done
}

func wait[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s", what)
		var zero T
		return zero
	}
}

func TestRelaysSignedUplinksAndOnlyItsOwnDownlinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t)
	c, cancel, done := r.start(t, 16)
	pub := r.key.Public().(ed25519.PublicKey)
	lookup := func(context.Context, string) (relay.ConnectorKeys, error) {
		return relay.ConnectorKeys{Valid: []ed25519.PublicKey{pub}}, nil
	}

	// Online status first.
	st, err := relay.OpenStatus(ctx, wait(t, r.stats, "status"), lookup)
	if err != nil || st.Connection != relay.ConnectionEthernet {
		t.Fatalf("first status: %+v %v", st, err)
	}
	// A radio frame becomes a signed uplink with its reception metadata.
	frame, _ := air.Frame{Kind: air.KindReceived, RSSI: -88, SNR: -2.5, Packet: []byte{3, 1, 2, 3}}.Append(nil)
	if _, err := r.medium.WriteTo(frame, r.radio.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	up, err := relay.OpenUplink(ctx, wait(t, r.uplinks, "uplink"), lookup)
	if err != nil || up.RSSI != -88 || up.SNR != -2.5 || string(up.Packet) != "\x03\x01\x02\x03" || up.ConnectorID != "ccon-1" {
		t.Fatalf("uplink %+v %v", up, err)
	}
	// Garbage on the radio is dropped.
	_, _ = r.medium.WriteTo([]byte("noise"), r.radio.LocalAddr())

	// Downlinks: only the one signed by the cloud and addressed to us goes
	// on the air.
	_, rogue, _ := ed25519.GenerateKey(rand.Reader)
	exp := time.Now().Add(time.Minute)
	mine, _ := relay.SignDownlink(r.channel, relay.Downlink{ConnectorID: "ccon-1", Expires: exp, Packet: []byte{3, 9}})
	other, _ := relay.SignDownlink(r.channel, relay.Downlink{ConnectorID: "ccon-2", Expires: exp, Packet: []byte{3, 8}})
	forged, _ := relay.SignDownlink(rogue, relay.Downlink{ConnectorID: "ccon-1", Expires: exp, Packet: []byte{3, 7}})
	stale, _ := relay.SignDownlink(r.channel, relay.Downlink{ConnectorID: "ccon-1", Expires: time.Now().Add(-time.Second), Packet: []byte{3, 6}})
	dl := r.ps.Publisher("downlinks")
	for _, m := range [][]byte{other, forged, stale, mine} {
		if _, err := dl.Publish(ctx, &pubsub.Message{Data: m}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dl.Stop()
	got := make(chan []byte, 10)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := r.medium.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- append([]byte(nil), buf[:n]...)
		}
	}()
	f, err := air.Parse(wait(t, got, "transmission"))
	if err != nil || f.Kind != air.KindTransmit || string(f.Packet) != "\x03\x09" {
		t.Fatalf("transmitted %+v %v, want only the downlink addressed to ccon-1", f, err)
	}
	select {
	case b := <-got:
		t.Fatalf("transmitted a second packet %x", b)
	case <-time.After(time.Second):
	}
	stats := c.Stats()
	if stats.Transmitted != 1 || stats.NotForMe != 1 || stats.Rejected < 3 {
		t.Fatalf("stats %+v, want 1 transmitted, 1 not for me, forged+stale+noise rejected", stats)
	}

	// A graceful stop ends with an OFFLINE status.
	cancel()
	if err := wait(t, done, "stop"); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := relay.OpenStatus(ctx, wait(t, r.stats, "offline status"), lookup)
		if err != nil {
			t.Fatal(err)
		}
		if st.Connection == relay.ConnectionOffline {
			break
		}
	}
}

// TestBoundedQueueDropsOldest floods the radio while Pub/Sub is slower than
// the radio: the queue never grows past its bound and counts what it drops.
func TestBoundedQueueDropsOldest(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c, cancel, done := r.start(t, 4)
	var wg sync.WaitGroup
	for i := range 2000 {
		frame, _ := air.Frame{Kind: air.KindReceived, RSSI: -80, Packet: []byte{3, byte(i), byte(i >> 8)}}.Append(nil)
		_, _ = r.medium.WriteTo(frame, r.radio.LocalAddr())
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for c.Stats().Received < 100 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	st := c.Stats()
	if st.Dropped == 0 {
		t.Fatalf("stats %+v: a flood into a queue of 4 dropped nothing", st)
	}
	if st.Published+st.Dropped > st.Received {
		t.Fatalf("stats %+v do not add up", st)
	}
	t.Logf("received %d, published %d, dropped %d", st.Received, st.Published, st.Dropped)
}

// TestBatchWindow: frames heard within the window travel as one message
// whose envelopes are each signed and verify on their own.
func TestBatchWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRig(t)
	c, cancel, done := r.startWith(t, 64, 300*time.Millisecond)
	pub := r.key.Public().(ed25519.PublicKey)
	lookup := func(context.Context, string) (relay.ConnectorKeys, error) {
		return relay.ConnectorKeys{Valid: []ed25519.PublicKey{pub}}, nil
	}
	wait(t, r.stats, "status")
	for i := range 5 {
		frame, _ := air.Frame{Kind: air.KindReceived, RSSI: -80, Packet: []byte{3, byte(i), 9}}.Append(nil)
		if _, err := r.medium.WriteTo(frame, r.radio.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	var got []relay.Uplink
	for len(got) < 5 {
		envs, err := relay.SplitBatch(wait(t, r.uplinks, "uplinks"))
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) != 5 && len(got) == 0 {
			t.Errorf("5 frames within the window came as a message of %d envelopes", len(envs))
		}
		for _, e := range envs {
			up, err := relay.OpenUplink(ctx, e, lookup)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, up)
		}
	}
	seen := map[byte]bool{}
	for _, up := range got {
		seen[up.Packet[1]] = true
	}
	if len(seen) != 5 {
		t.Fatalf("packets %v", seen)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Published != 5 || st.Received != 5 {
		t.Fatalf("stats %+v", st)
	}
}
