// Package connector is a Cloud Connector: it relays sealed radio packets to
// the uplinks topic in envelopes signed with its own key, transmits only the
// downlinks the cloud signed and addressed to it, and reports its status.
// It never stores a packet; its one buffer is a bounded in-memory queue.
//
// It has two backhaul links, Ethernet and cellular, each with its own
// Pub/Sub client. It publishes over Ethernet while that works; a publish
// over it that fails or times out moves it to cellular, with a status at
// once, and the envelopes of the failed publishes go back to the front of
// the queue to go out over cellular. A heartbeat over Ethernet every
// ProbeEvery finds when it works again, and the connector moves back,
// again with a status at once.
package connector

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/sealedsense/sealedsense/shared/air"
	"github.com/sealedsense/sealedsense/shared/relay"
)

// Publisher is the part of a Pub/Sub publisher the connector needs.
type Publisher interface {
	Publish(ctx context.Context, msg *pubsub.Message) *pubsub.PublishResult
}

// Receiver is the part of a Pub/Sub subscriber the connector needs.
type Receiver interface {
	Receive(ctx context.Context, f func(context.Context, *pubsub.Message)) error
}

// Config is a connector's identity and wiring.
type Config struct {
	ID  string
	Key ed25519.PrivateKey
	// ChannelKeys are the cloud channel keys it trusts to sign downlinks,
	// oldest first. A downlink teaches it a newer one an older one
	// endorses, and which older ones the cloud retired (relay.UpdateTrust).
	ChannelKeys []ed25519.PublicKey
	// SaveChannelKeys, if set, persists the trusted channel keys each time
	// they change, so a restart keeps what the connector learned.
	SaveChannelKeys func([]ed25519.PublicKey) error
	Radio           net.PacketConn // air frames arrive here
	Medium          net.Addr       // transmissions go here
	// Ethernet and Cellular are the backhaul links, each over its own
	// network path; at least one is required. The connector publishes
	// over Ethernet while it works and falls back to cellular while it
	// does not; it listens for downlinks over both.
	Ethernet, Cellular *Link
	// SignalStrength is the cellular signal its status reports, 0..100:
	// the modem's reading on hardware, a configured value here.
	SignalStrength int

	QueueSize    int           // default 1024 packets
	Heartbeat    time.Duration // default 30s
	DrainTimeout time.Duration // how long shutdown waits to publish what is queued; default 5s
	// PublishTimeout is how long a publish over a link may take before
	// the link counts as failed (default 5s); the Pub/Sub publishers
	// should give up at the same time (PubSubLink's do).
	PublishTimeout time.Duration
	// ProbeEvery is how often a failed link is tried again with a
	// heartbeat over it (default 3s).
	ProbeEvery time.Duration
	// BatchWindow, when set, lets one Pub/Sub message carry every uplink
	// heard within it (at most relay.MaxBatch): fewer, larger pushes when
	// the pipeline is loaded, at the price of up to this much latency.
	BatchWindow time.Duration
	Logger      *slog.Logger
	// Software is what it runs and how it installs a release; without
	// Stage it refuses every release.
	Software Software
	// Hostile, for tests of the cloud's defences only, makes the
	// connector lie; New refuses it without AllowHostile.
	Hostile      *Hostile
	AllowHostile bool
}

// Hostile is how a lying connector misbehaves: a registered connector
// that signs what it says, and says what it likes.
type Hostile struct {
	// RSSI, if not zero, is claimed for every uplink instead of the
	// measured signal (say -30 dBm: the strongest in the field).
	RSSI float64
	// DropDownlinks drops every downlink addressed to it, unsent.
	DropDownlinks bool
	// PoisonEvery, if not zero, makes every n-th uplink claim a NaN or
	// infinite RSSI (in turn) and a reception time an hour ahead.
	PoisonEvery int
}

// claim is what a hostile connector says about its n-th uplink, heard
// at received with rssi, and whether it poisoned it; an honest one says
// what it measured.
func (h *Hostile) claim(n uint64, received time.Time, rssi float64) (time.Time, float64, bool) {
	if h == nil {
		return received, rssi, false
	}
	if h.RSSI != 0 {
		rssi = h.RSSI
	}
	if every := uint64(h.PoisonEvery); every > 0 && n%every == 0 {
		poison := []float64{math.NaN(), math.Inf(1), math.Inf(-1)}
		return received.Add(time.Hour), poison[(n/every)%3], true
	}
	return received, rssi, false
}

// Stats are the connector's counters since start.
type Stats struct {
	Received, Published, Dropped uint64
	// PublishErrors counts envelopes whose publish failed. Each went back
	// to the queue to go out over a link that works, unless Pub/Sub
	// refused the message itself.
	PublishErrors                   uint64
	Switches                        uint64 // changes of the link published over
	Transmitted, NotForMe, Rejected uint64
	DroppedDownlinks                uint64 // by a hostile connector
	Announcements                   uint64 // downlinks that only announced the channel key
}

// Connector relays between the radio and Pub/Sub.
type Connector struct {
	cfg   Config
	log   *slog.Logger
	queue *queue
	links *links
	mac   string // the Ethernet link's, as its status reports it

	received, published, publishErrors atomic.Uint64
	transmitted, notForMe, rejected    atomic.Uint64
	dropped                            atomic.Uint64 // downlinks a hostile connector dropped
	announcements                      atomic.Uint64
	switches                           atomic.Uint64

	trustMu sync.Mutex // held while the trusted keys change and are saved
	trusted []ed25519.PublicKey

	update     *updater
	statusNow  chan struct{} // a token asks the heartbeat loop for a status now
	healthy    sync.Once
	switchOver context.CancelCauseFunc // set by Run
}

// New checks cfg and returns a Connector.
func New(cfg Config) (*Connector, error) {
	switch {
	case cfg.ID == "":
		return nil, errors.New("connector: no id")
	case len(cfg.Key) != ed25519.PrivateKeySize:
		return nil, errors.New("connector: no signing key")
	case len(cfg.ChannelKeys) == 0:
		return nil, errors.New("connector: no channel public key")
	case cfg.Radio == nil || cfg.Medium == nil:
		return nil, errors.New("connector: radio and medium are required")
	case cfg.Ethernet == nil && cfg.Cellular == nil:
		return nil, errors.New("connector: no backhaul link")
	case !complete(cfg.Ethernet) || !complete(cfg.Cellular):
		return nil, errors.New("connector: a link needs uplinks, status and downlinks")
	case cfg.SignalStrength < 0 || cfg.SignalStrength > 100:
		return nil, fmt.Errorf("connector: signal strength %d, want 0..100", cfg.SignalStrength)
	case cfg.Hostile != nil && !cfg.AllowHostile:
		return nil, errors.New("connector: hostile mode is for tests only and needs AllowHostile")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 30 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, k := range cfg.ChannelKeys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("connector: a channel public key of %d bytes", len(k))
		}
	}
	c := &Connector{
		cfg: cfg, log: cfg.Logger.With("connectorId", cfg.ID), queue: newQueue(cfg.QueueSize),
		links: newLinks(cfg.Ethernet, cfg.Cellular, time.Now()), mac: ethernetMAC(cfg.ID),
		trusted: slices.Clone(cfg.ChannelKeys),
		update:  newUpdater(cfg.Software), statusNow: make(chan struct{}, 1),
	}
	if h := cfg.Hostile; h != nil {
		c.log.Warn("HOSTILE MODE: this connector lies, for tests only", "claimedRssi", h.RSSI, "dropDownlinks", h.DropDownlinks, "poisonEvery", h.PoisonEvery)
	}
	return c, nil
}

// complete reports whether a link, if configured, is wired in full.
func complete(l *Link) bool {
	return l == nil || l.Uplinks != nil && l.Status != nil && l.Downlinks != nil
}

// Stats returns the counters.
func (c *Connector) Stats() Stats {
	_, dropped := c.queue.stats()
	return Stats{
		Received: c.received.Load(), Published: c.published.Load(), PublishErrors: c.publishErrors.Load(), Dropped: dropped,
		Switches:    c.switches.Load(),
		Transmitted: c.transmitted.Load(), NotForMe: c.notForMe.Load(), Rejected: c.rejected.Load(),
		DroppedDownlinks: c.dropped.Load(), Announcements: c.announcements.Load(),
	}
}

// ChannelKeys returns the channel keys the connector trusts now, oldest
// first.
func (c *Connector) ChannelKeys() []ed25519.PublicKey {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	return slices.Clone(c.trusted)
}

// Run relays until ctx is done, then shuts down gracefully: it stops
// listening, publishes what is still queued (up to DrainTimeout) and sends a
// last OFFLINE status. The caller closes Radio afterwards. After a release
// was staged it shuts down the same way, without the OFFLINE status (the
// new version is back in seconds), and returns ErrSwitchOver.
func (c *Connector) Run(parent context.Context) error {
	ctx := c.runContext(parent)
	var wg sync.WaitGroup
	radioDone := make(chan struct{})
	wg.Go(func() { defer close(radioDone); c.listen(ctx) })
	wg.Go(func() { c.pump(ctx, radioDone) })
	wg.Go(func() { c.heartbeat(ctx) })
	wg.Go(func() { c.probe(ctx) })
	var recvErr error
	wg.Go(func() { recvErr = c.receiveDownlinks(ctx) })
	wg.Wait()

	switching := errors.Is(context.Cause(ctx), ErrSwitchOver) && parent.Err() == nil
	if !switching {
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.DrainTimeout)
		defer cancel()
		c.lastWords(stop)
	}
	st := c.Stats()
	left, _ := c.queue.stats()
	c.log.Info("connector stopped", "received", st.Received, "published", st.Published, "dropped", st.Dropped, "unsent", left,
		"transmitted", st.Transmitted, "publishErrors", st.PublishErrors, "switches", st.Switches, "switchOver", switching)
	if switching {
		return ErrSwitchOver
	}
	if recvErr != nil {
		return fmt.Errorf("connector %s: downlinks: %w", c.cfg.ID, recvErr)
	}
	return nil
}

// listen reads air frames; it checks ctx between reads through a short
// deadline because a UDP read cannot be cancelled otherwise.
func (c *Connector) listen(ctx context.Context) {
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		_ = c.cfg.Radio.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, _, err := c.cfg.Radio.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if ctx.Err() == nil {
				c.log.Error("radio read failed", "error", err)
			}
			return
		}
		f, err := air.Parse(buf[:n])
		if err != nil || f.Kind != air.KindReceived {
			c.rejected.Add(1)
			c.log.Warn("ignoring a malformed radio frame", "bytes", n)
			continue
		}
		received, rssi, poisoned := c.cfg.Hostile.claim(c.received.Load()+1, time.Now().UTC(), f.RSSI)
		if poisoned {
			c.log.Warn("hostile: poisoned an uplink's metadata", "rssi", fmt.Sprint(rssi), "received", received)
		}
		env, err := relay.SignUplink(c.cfg.Key, relay.Uplink{
			ConnectorID: c.cfg.ID,
			Received:    received,
			RSSI:        rssi,
			SNR:         f.SNR,
			Packet:      append([]byte(nil), f.Packet...),
		})
		if err != nil {
			c.rejected.Add(1)
			continue
		}
		c.received.Add(1)
		if c.queue.push(env) {
			c.log.Warn("queue full: dropped the oldest packet", "queueSize", c.cfg.QueueSize)
		}
	}
}

// receiveDownlinks transmits the downlinks meant for this connector,
// received over every link at once: the cloud cannot know which link
// works, and a stream over a broken one just waits to reconnect.
func (c *Connector) receiveDownlinks(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.links.all)) // all is fixed at New
	for i, b := range c.links.all {
		wg.Go(func() {
			if err := b.Downlinks.Receive(ctx, c.downlink); err != nil && ctx.Err() == nil {
				errs[i] = fmt.Errorf("over %s: %w", b.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// downlink transmits one downlink if it is meant for this connector. Every
// message is acked: one that is not for us, forged or stale will never
// become valid, and a nack would only bring it back.
func (c *Connector) downlink(_ context.Context, m *pubsub.Message) {
	defer m.Ack()
	if kind, err := relay.KindOf(m.Data); err == nil && kind == relay.KindSoftware {
		c.software(m.Data)
		return
	}
	d, err := c.openDownlink(m.Data)
	switch {
	case errors.Is(err, relay.ErrNotAddressed):
		c.notForMe.Add(1)
		return
	case err != nil:
		c.rejected.Add(1)
		c.log.Warn("refusing a downlink", "error", err, "messageId", m.ID)
		return
	case d.Announcement():
		c.announcements.Add(1)
		return // it only announced the channel key: nothing to transmit
	}
	if c.cfg.Hostile != nil && c.cfg.Hostile.DropDownlinks {
		c.dropped.Add(1)
		c.log.Warn("hostile: dropping a downlink", "messageId", m.ID)
		return
	}
	frame, err := air.Frame{Kind: air.KindTransmit, Packet: d.Packet}.Append(nil)
	if err == nil {
		_, err = c.cfg.Radio.WriteTo(frame, c.cfg.Medium)
	}
	if err != nil {
		c.log.Error("transmit failed", "error", err)
		return
	}
	c.transmitted.Add(1)
}

// openDownlink opens a downlink under the trusted channel keys and takes in
// what it teaches about them. The lock spans both, so two downlinks cannot
// interleave a change and its save.
func (c *Connector) openDownlink(data []byte) (relay.Downlink, error) {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	d, err := relay.OpenDownlink(data, c.trusted, c.cfg.ID, time.Now())
	if err != nil {
		return d, err
	}
	next, changed := relay.UpdateTrust(c.trusted, d)
	if !changed {
		return d, nil
	}
	for _, k := range next {
		if !containsKey(c.trusted, k) {
			c.log.Info("learned a new channel key, endorsed by one it trusts", "channelKey", hex.EncodeToString(k))
		}
	}
	for _, k := range c.trusted {
		if !containsKey(next, k) {
			c.log.Info("forgot a channel key the cloud no longer keeps", "channelKey", hex.EncodeToString(k))
		}
	}
	c.trusted = next
	if c.cfg.SaveChannelKeys != nil {
		if err := c.cfg.SaveChannelKeys(slices.Clone(next)); err != nil {
			// Still trusted in memory; the next change saves again.
			c.log.Error("saving the channel keys failed", "error", err)
		}
	}
	return d, nil
}

func containsKey(keys []ed25519.PublicKey, k ed25519.PublicKey) bool {
	return slices.ContainsFunc(keys, func(t ed25519.PublicKey) bool { return t.Equal(k) })
}
