package ingest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/logging/logtest"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/sensor"
	"github.com/sealedsense/sealedsense/shared/store"
)

// keyWorld is a provisioned project whose cloud and connector keys a test
// rotates; each service it starts is a new ingest instance, which loads the
// cloud's keys afresh, and runs on a clock the test moves.
type keyWorld struct {
	t         *testing.T
	project   string
	reg       *registry.Registry
	kek       *custody.Wrapper
	deviceKey string
	ps        *pubsub.Client
	raw       chan []byte // every published downlink envelope
	logs      *logtest.Buffer

	mu     sync.Mutex
	offset time.Duration // how far the test moved the clock ahead
}

func newKeyWorld(t *testing.T) *keyWorld {
	t.Helper()
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	fs := platformtest.Firestore(t, project)
	kc := platformtest.KMS(t)
	keys, err := stack.EnsureKMS(ctx, kc, "projects/"+project+"/locations/europe/keyRings/r")
	if err != nil {
		t.Fatal(err)
	}
	deviceKeys := custody.NewWrapper(kc, keys.Device)
	w := &keyWorld{t: t, project: project, reg: registry.New(fs, deviceKeys, custody.NewCache(deviceKeys, time.Hour)),
		kek: custody.NewWrapper(kc, keys.SessionKEK), deviceKey: keys.Device, ps: platformtest.PubSub(t, project),
		raw: make(chan []byte, 100), logs: &logtest.Buffer{}}
	if _, err := w.reg.Bootstrap(ctx, w.kek, keys.Device); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{stack.TopicEvents, stack.TopicDownlinks} {
		if err := platform.EnsureTopic(ctx, w.ps, topic); err != nil {
			t.Fatal(err)
		}
	}
	if err := platform.EnsureSubscription(ctx, w.ps, platform.SubscriptionSpec{ID: "downlinks-all", Topic: stack.TopicDownlinks}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go func() {
		_ = w.ps.Subscriber("downlinks-all").Receive(rctx, func(_ context.Context, m *pubsub.Message) { m.Ack(); w.raw <- m.Data })
	}()
	return w
}

// clock is ingest's clock: real time, plus what the test moved it.
func (w *keyWorld) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Now().Add(w.offset)
}

func (w *keyWorld) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.offset += d
}

// service starts an ingest instance; cacheTTL bounds its connector cache.
func (w *keyWorld) service(cacheTTL time.Duration) *ingest.Service {
	return ingest.New(ingest.Config{Window: 100 * time.Millisecond, ConnectorCacheTTL: cacheTTL}, ingest.Deps{
		Firestore: platformtest.Firestore(w.t, w.project), Registry: w.reg, KEKReader: custody.NewCache(w.kek, time.Hour),
		Events: w.ps.Publisher(stack.TopicEvents), Downlinks: w.ps.Publisher(stack.TopicDownlinks),
		Logger: slog.New(slog.NewJSONHandler(w.logs, nil)), Now: w.clock,
	})
}

func (w *keyWorld) register(id string) ed25519.PrivateKey {
	w.t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := w.reg.RegisterConnector(context.Background(), id, id, w.project, pub); err != nil {
		w.t.Fatal(err)
	}
	return priv
}

func (w *keyWorld) channelPublics() []ed25519.PublicKey {
	w.t.Helper()
	ck, err := w.reg.CloudKeys(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	var out []ed25519.PublicKey
	for _, k := range ck.Versions(store.RoleChannel) {
		out = append(out, k.Public)
	}
	return out
}

// push is a Pub/Sub push of data on topic.
func (w *keyWorld) push(topic string, data []byte) event.Event {
	e := event.New()
	e.SetID(fmt.Sprint(time.Now().UnixNano()))
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/" + w.project + "/topics/" + topic)
	body, _ := json.Marshal(map[string]any{"message": map[string]any{"data": data, "messageId": "m"}})
	_ = e.SetData("application/json", body)
	return e
}

// heartbeat makes connector id, signing with key, report itself online.
func (w *keyWorld) heartbeat(svc *ingest.Service, id string, key ed25519.PrivateKey) {
	w.t.Helper()
	env, err := relay.SignStatus(key, relay.Status{ConnectorID: id, Time: time.Now().UTC(), Connection: relay.ConnectionEthernet})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := svc.Handle(context.Background(), w.push("connector-status", env)); err != nil {
		w.t.Fatalf("a heartbeat must never be retried: %v", err)
	}
}

// uplink makes connector id, signing with key, relay pkt.
func (w *keyWorld) uplink(svc *ingest.Service, id string, key ed25519.PrivateKey, pkt []byte) {
	w.t.Helper()
	env, err := relay.SignUplink(key, relay.Uplink{ConnectorID: id, Received: w.clock().UTC(), RSSI: -70, SNR: 5, Packet: pkt})
	if err != nil {
		w.t.Fatal(err)
	}
	if err := svc.Handle(context.Background(), w.push("uplinks", env)); err != nil {
		w.t.Fatalf("uplink from %s: %v", id, err)
	}
}

func (w *keyWorld) downlink() []byte {
	w.t.Helper()
	select {
	case b := <-w.raw:
		return b
	case <-time.After(15 * time.Second):
		w.t.Fatalf("no downlink; logs:\n%s", w.logs.String())
		return nil
	}
}

// handshakeReply makes a new sensor handshake through connector id and
// returns the reply's envelope.
func (w *keyWorld) handshakeReply(svc *ingest.Service, id string, key ed25519.PrivateKey) []byte {
	w.t.Helper()
	ctx := context.Background()
	ck, err := w.reg.CloudKeys(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	m, err := w.reg.Manufacture(ctx, registry.Spec{Type: "temperature", ProjectID: w.project}, w.deviceKey)
	if err != nil {
		w.t.Fatal(err)
	}
	s, err := sensor.New(credentials.Sensor{DeviceID: m.Device.ID, StaticPrivate: m.Static.Private[:], StaticPublic: m.Static.Public[:],
		PSK: m.PSK, CloudPublic: ck.StaticPublic()}, 1, sensor.Config{})
	if err != nil {
		w.t.Fatal(err)
	}
	init, err := s.Next(time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	w.uplink(svc, id, key, init)
	return w.downlink()
}

// TestChannelKeyRotation: after a rotation the new channel key signs
// replies and announcements, endorsed by the old one, so a connector that
// trusts only the old key accepts them and learns the new key; after the
// old version is retired, neither the old key nor its endorsement is used,
// and a connector that never learned the new key refuses its downlinks.
func TestChannelKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	key := w.register("ccon-a")
	oldPub := w.channelPublics()[0]
	if _, err := w.reg.RotateCloudKey(ctx, store.RoleChannel, w.kek); err != nil {
		t.Fatal(err)
	}
	newPub := w.channelPublics()[1]
	svc := w.service(0)

	reply, err := relay.OpenDownlink(w.handshakeReply(svc, "ccon-a", key), []ed25519.PublicKey{oldPub}, "ccon-a", time.Now())
	if err != nil {
		t.Fatalf("a connector that trusts the old channel key refuses the reply: %v", err)
	}
	if !bytes.Equal(reply.Signer, newPub) || reply.Announcement() {
		t.Fatalf("reply signed by %x (announcement %v), want a packet signed by the new key %x", reply.Signer, reply.Announcement(), newPub)
	}
	if len(reply.Endorsements) != 1 || !bytes.Equal(reply.Endorsements[0].By, oldPub) ||
		!ed25519.Verify(oldPub, append([]byte(relay.EndorsementDomain), newPub...), reply.Endorsements[0].Sig) {
		t.Fatalf("reply endorsements %+v: want one by the old key over the new one", reply.Endorsements)
	}
	if trust, _ := relay.UpdateTrust([]ed25519.PublicKey{oldPub}, reply); len(trust) != 2 || !bytes.Equal(trust[1], newPub) {
		t.Fatalf("the connector would trust %x, want the old key and the new", trust)
	}

	// A connector that carries no traffic learns from its heartbeat.
	w.heartbeat(svc, "ccon-a", key)
	ann, err := relay.OpenDownlink(w.downlink(), []ed25519.PublicKey{oldPub}, "ccon-a", time.Now())
	if err != nil || !ann.Announcement() || !bytes.Equal(ann.Signer, newPub) {
		t.Fatalf("heartbeat answer: %+v, %v; want an announcement of the new key", ann, err)
	}
	// A second heartbeat at once (a flood, or a redelivery) announces nothing.
	announced := strings.Count(w.logs.String(), "channel key announced")
	w.heartbeat(svc, "ccon-a", key)
	if n := strings.Count(w.logs.String(), "channel key announced"); n != announced {
		t.Fatalf("a second heartbeat at once announced again (%d announcements, was %d)", n, announced)
	}

	// Retire the old version; a new instance loads what is stored.
	if err := w.reg.RetireCloudKey(ctx, store.RoleChannel, 1); err != nil {
		t.Fatal(err)
	}
	svc = w.service(0)
	before := strings.Count(w.logs.String(), "channel key announced")
	w.heartbeat(svc, "ccon-a", key)
	if n := strings.Count(w.logs.String(), "channel key announced"); n != before {
		t.Fatalf("a heartbeat with one channel version stored announced it (%d announcements, was %d)", n, before)
	}
	env := w.handshakeReply(svc, "ccon-a", key)
	d, err := relay.OpenDownlink(env, []ed25519.PublicKey{oldPub, newPub}, "ccon-a", time.Now())
	if err != nil || len(d.Endorsements) != 0 || !bytes.Equal(d.Signer, newPub) {
		t.Fatalf("reply after retirement: %+v, %v; want it signed by the new key alone", d, err)
	}
	if trust, _ := relay.UpdateTrust([]ed25519.PublicKey{oldPub, newPub}, d); len(trust) != 1 || !bytes.Equal(trust[0], newPub) {
		t.Fatalf("after retirement a connector would trust %x, want only the new key", trust)
	}
	if _, err := relay.OpenDownlink(env, []ed25519.PublicKey{oldPub}, "ccon-a", time.Now()); !errors.Is(err, relay.ErrSignature) {
		t.Fatalf("a connector that never learned the new key: %v, want ErrSignature", err)
	}
}

// TestConnectorKeyRotation: after a connector's key is rotated, its old
// key is accepted until the grace period ends, by the clock at the time of
// use even when the connector is still cached, and refused after, with its
// own reason and without a retry; the new key works throughout.
func TestConnectorKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newKeyWorld(t)
	oldKey := w.register("ccon-r")
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	// A day-long cache: the deadline, not the cache, must end the old key.
	svc := w.service(24 * time.Hour)
	w.heartbeat(svc, "ccon-r", oldKey) // caches the connector before the rotation
	if err := w.reg.RotateConnector(ctx, "ccon-r", newPub, time.Hour); err != nil {
		t.Fatal(err)
	}
	svc = w.service(24 * time.Hour)
	w.heartbeat(svc, "ccon-r", oldKey) // caches it with its previous key
	w.heartbeat(svc, "ccon-r", newKey)
	w.advance(time.Hour - time.Minute)
	w.heartbeat(svc, "ccon-r", oldKey)
	if n := w.logs.Rejected("retired-connector-key") + w.logs.Rejected("bad-signature"); n != 0 {
		t.Fatalf("%d envelopes refused within the grace period; logs:\n%s", n, w.logs.String())
	}

	w.advance(2 * time.Minute)
	w.heartbeat(svc, "ccon-r", oldKey)
	w.uplink(svc, "ccon-r", oldKey, []byte{0xee})
	if n := w.logs.Rejected("retired-connector-key"); n != 2 {
		t.Fatalf("old key after the grace period: %d refused as retired-connector-key, want the heartbeat and the uplink; logs:\n%s", n, w.logs.String())
	}
	w.heartbeat(svc, "ccon-r", newKey)
	w.uplink(svc, "ccon-r", newKey, []byte{0xee})
	if n := w.logs.Rejected("retired-connector-key") + w.logs.Rejected("bad-signature"); n != 2 {
		t.Fatalf("the new key was refused after the grace period; logs:\n%s", w.logs.String())
	}
	if w.logs.Rejected("malformed-packet") != 1 {
		t.Fatalf("the new key's uplink did not get past its signature; logs:\n%s", w.logs.String())
	}
}
