package connector

import (
	"context"
	"errors"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// maxInFlight bounds concurrent publishes, so a slow Pub/Sub backs packets up
// into the bounded queue, where the oldest are dropped, instead of into
// unbounded client buffers.
const maxInFlight = 64

// pump publishes queued envelopes over the active link until the radio has
// stopped and nothing is queued or in flight, or the drain deadline passes.
// A publish slot is taken before the link is chosen, so a link that is
// failing holds back at most maxInFlight publishes, which come back to the
// queue.
func (c *Connector) pump(ctx context.Context, radioDone <-chan struct{}) {
	pubCtx := context.WithoutCancel(ctx)
	sem := make(chan struct{}, maxInFlight)
	settled := make(chan struct{}, 1) // a token when a publish has finished
	var wg sync.WaitGroup
	defer wg.Wait()
	radio := radioDone         // nil once the radio has stopped
	var drain <-chan time.Time // the drain deadline, once the radio has stopped
	for {
		select {
		case sem <- struct{}{}:
		case <-drain:
			return
		}
		link, changed := c.links.active()
		if link != nil {
			if env, ok := c.queue.pop(); ok {
				envs := c.gather(env, radioDone)
				wg.Go(func() {
					c.send(pubCtx, link, envs)
					<-sem
					select {
					case settled <- struct{}{}:
					default:
					}
				})
				continue
			}
		}
		<-sem
		// A publish requeues before it frees its slot: with no slot
		// taken, whatever failed is back in the queue.
		if n, _ := c.queue.stats(); radio == nil && link != nil && len(sem) == 0 && n == 0 {
			return
		}
		ready := c.queue.ready
		if link == nil {
			ready = nil // nothing goes out until a probe brings a link back
		}
		select {
		case <-ready:
		case <-changed:
		case <-settled:
		case <-radio:
			radio, drain = nil, time.After(c.cfg.DrainTimeout)
		case <-drain:
			return
		}
	}
}

// gather collects the envelopes queued within BatchWindow after first, up
// to relay.MaxBatch; without a window, first goes alone.
func (c *Connector) gather(first []byte, radioDone <-chan struct{}) [][]byte {
	envs := [][]byte{first}
	if c.cfg.BatchWindow <= 0 {
		return envs
	}
	until := time.NewTimer(c.cfg.BatchWindow)
	defer until.Stop()
	for len(envs) < relay.MaxBatch {
		if env, ok := c.queue.pop(); ok {
			envs = append(envs, env)
			continue
		}
		select {
		case <-c.queue.ready:
		case <-until.C:
			return envs
		case <-radioDone:
			return envs
		}
	}
	return envs
}

// send publishes envs over link as one message and waits for the result.
// What fails goes back to the front of the queue, and the link counts as
// failed. A publish that timed out may still have arrived; the cloud
// deduplicates the copy sent again.
func (c *Connector) send(ctx context.Context, link *backhaul, envs [][]byte) {
	data := envs[0]
	if len(envs) > 1 {
		var err error
		if data, err = relay.EncodeBatch(envs); err != nil {
			c.publishErrors.Add(uint64(len(envs)))
			c.log.Error("batch", "error", err)
			return
		}
	}
	started := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	res := link.Uplinks.Publish(ctx, &pubsub.Message{Data: data, Attributes: map[string]string{"connector": c.cfg.ID}})
	if _, err := res.Get(ctx); err != nil {
		c.publishErrors.Add(uint64(len(envs)))
		if refused(err) {
			c.log.Error("Pub/Sub refused an uplink message: dropped", "error", err, "envelopes", len(envs))
			return
		}
		if dropped := c.queue.requeue(envs); dropped > 0 {
			c.log.Warn("queue full: dropped the oldest packets", "dropped", dropped, "queueSize", c.cfg.QueueSize)
		}
		c.linkFailed(link, started, err)
		return
	}
	c.published.Add(uint64(len(envs)))
}

// refused reports whether a publish failed for the message itself, which
// no link would carry: sent again, it would go round forever, taking down
// every link it tries.
func refused(err error) bool {
	return errors.Is(err, pubsub.ErrOversizedMessage) || status.Code(err) == codes.InvalidArgument
}

// heartbeat publishes a status over the active link at once, then every
// Heartbeat and whenever a link goes down or comes back. A status that
// fails takes its link down, and the next goes over the next link.
func (c *Connector) heartbeat(ctx context.Context) {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		link, changed := c.links.active()
		if link != nil {
			_ = c.status(ctx, link, "")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		case <-c.statusNow:
		}
	}
}

// probe tries each failed link every ProbeEvery with a heartbeat over it.
// A link that carries one is back up; the heartbeat loop then announces
// the change over the active link.
func (c *Connector) probe(ctx context.Context) {
	t := time.NewTicker(c.cfg.ProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var wg sync.WaitGroup
		for _, b := range c.links.down() {
			wg.Go(func() {
				if c.status(ctx, b, "") == nil {
					c.linkRestored(b)
				}
			})
		}
		wg.Wait()
	}
}

// lastWords sends the OFFLINE status at shutdown, over the first link that
// carries it.
func (c *Connector) lastWords(ctx context.Context) {
	for _, b := range c.links.byPreference() {
		if c.status(ctx, b, relay.ConnectionOffline) == nil {
			return
		}
	}
	c.log.Error("the OFFLINE status went out over no link")
}

// status publishes a heartbeat over via and waits for it. connection, if
// not empty, overrides the active link's name (OFFLINE at shutdown).
func (c *Connector) status(ctx context.Context, via *backhaul, connection string) error {
	links := c.links.report(via, c.mac, c.cfg.SignalStrength)
	if connection == "" {
		connection = links.connection
	}
	_, dropped := c.queue.stats()
	st := relay.Status{
		ConnectorID: c.cfg.ID,
		Time:        time.Now().UTC(),
		Connection:  connection,
		Available:   links.available,
		Dropped:     dropped,
		Ethernet:    links.ethernet,
		Cellular:    links.cellular,
		Software:    c.update.current(),
	}
	if links.cellular != nil {
		st.SignalStrength = c.cfg.SignalStrength
	}
	env, err := relay.SignStatus(c.cfg.Key, st)
	if err != nil {
		c.log.Error("status envelope", "error", err)
		return err
	}
	started := time.Now()
	pctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	res := via.Status.Publish(pctx, &pubsub.Message{Data: env, Attributes: map[string]string{"connector": c.cfg.ID}})
	if _, err := res.Get(pctx); err != nil {
		if ctx.Err() == nil { // a shutdown is no fault of the link
			c.linkFailed(via, started, err)
		}
		return err
	}
	c.confirmHealthy()
	return nil
}

// linkFailed takes link down after a publish over it, started at started,
// failed.
func (c *Connector) linkFailed(link *backhaul, started time.Time, err error) {
	down, sw := c.links.failed(link, started)
	if !down {
		return
	}
	if sw.to == "" {
		c.log.Error("no backhaul link works: queueing until a probe gets through", "link", link.name, "error", err)
		return
	}
	if sw.from != sw.to {
		c.switches.Add(1)
	}
	c.log.Warn("backhaul link failed", "link", link.name, "error", err, "connection", sw.to)
}

// linkRestored brings link back up after a probe over it got through.
func (c *Connector) linkRestored(link *backhaul) {
	up, sw := c.links.restored(link, time.Now())
	if !up {
		return
	}
	if sw.from != sw.to {
		c.switches.Add(1)
	}
	c.log.Info("backhaul link works again", "link", link.name, "connection", sw.to)
}
