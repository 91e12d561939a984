package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/sensor"
	"github.com/sealedsense/sealedsense/shared/store"
)

// keyRefresh is the rotation tests' Config.KeyRefresh: short, so that a
// rotation reaches the instance within a sleep of twice it.
const keyRefresh = 200 * time.Millisecond

// keyAdmin is what an operator's rotate and retire work with.
type keyAdmin struct {
	reg *registry.Registry
	kek *custody.Wrapper
}

func (w *world) keyAdmin() keyAdmin {
	w.t.Helper()
	kc := platformtest.KMS(w.t)
	keys, err := stack.EnsureKMS(context.Background(), kc, "projects/"+w.project+"/locations/europe/keyRings/r")
	if err != nil {
		w.t.Fatal(err)
	}
	return keyAdmin{reg: registry.New(w.fs, custody.NewWrapper(kc, keys.Device), nil), kek: custody.NewWrapper(kc, keys.SessionKEK)}
}

func (a keyAdmin) rotate(t *testing.T, role store.KeyRole) store.CloudKey {
	t.Helper()
	k, err := a.reg.RotateCloudKey(context.Background(), role, a.kek)
	if err != nil {
		t.Fatalf("rotate %s: %v", role, err)
	}
	// The instance's keys are KeyRefresh old by the next message.
	time.Sleep(2 * keyRefresh)
	return k
}

func (a keyAdmin) retire(t *testing.T, role store.KeyRole, v int) {
	t.Helper()
	if err := a.reg.RetireCloudKey(context.Background(), role, v); err != nil {
		t.Fatalf("retire %s version %d: %v", role, v, err)
	}
	time.Sleep(2 * keyRefresh)
}

// sessionKEK tells which stored KEK version the newest session of a
// device is sealed under, as stored now: the one whose envelope knows the blob's KEK.
func (w *world) sessionKEK(a keyAdmin, deviceID string) int {
	w.t.Helper()
	ctx := context.Background()
	docs, err := w.fs.Collection("sessions").Where("deviceId", "==", deviceID).Documents(ctx).GetAll()
	if err != nil || len(docs) == 0 {
		w.t.Fatalf("sessions of %s: %d, %v", deviceID, len(docs), err)
	}
	// The session a device uses is sealed in its document; a newer one
	// no packet has used yet, in its own.
	var sess store.Session
	if live := w.device(deviceID).Session; live != nil {
		sess = store.Session{Sealed: live.Sealed, Created: live.Created}
	}
	for _, d := range docs {
		var s store.Session
		if err := d.DataTo(&s); err != nil {
			w.t.Fatal(err)
		}
		if !s.Moved && s.Created.After(sess.Created) {
			sess = s
		}
	}
	ck, err := a.reg.CloudKeys(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, k := range ck.KEKs {
		kek, err := custody.UnwrapKEK(ctx, a.kek, k.KEKID(), k.Wrapped)
		if err != nil {
			w.t.Fatal(err)
		}
		env, err := custody.NewEnvelope(kek)
		if err != nil {
			w.t.Fatal(err)
		}
		// The wrong AAD fails every blob, but only after the KEK id in its
		// header was found.
		if _, err := env.Open(sess.Sealed, nil); !errors.Is(err, custody.ErrUnknownKEK) {
			return k.Version
		}
	}
	w.t.Fatalf("the session of %s is sealed under none of the stored KEKs", deviceID)
	return 0
}

func (w *world) device(id string) store.Device {
	w.t.Helper()
	d, err := store.New(w.fs).Device(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// TestSessionKEKRotation: after a KEK rotation, sessions sealed under the
// old KEK still open, new sessions (and every session a packet reseals)
// go under the new one; once the old KEK is retired, a session still
// sealed under it is refused for good, and the others carry on.
func TestSessionKEKRotation(t *testing.T) {
	t.Parallel()
	w := newWorldConfig(t, ingest.Config{Window: 300 * time.Millisecond, KeyRefresh: keyRefresh})
	admin := w.keyAdmin()
	busy, idle := w.newSensor(), w.newSensor()
	w.connect(busy)
	w.connect(idle)
	for _, s := range []*sensor.Sensor{busy, idle} {
		if v := w.sessionKEK(admin, s.DeviceID()); v != 1 {
			t.Fatalf("session of %s sealed under KEK %d, want 1", s.DeviceID(), v)
		}
	}

	if k := admin.rotate(t, store.RoleKEK); k.Version != 2 {
		t.Fatalf("rotated to KEK version %d, want 2", k.Version)
	}
	w.send(busy, 20) // its session, sealed under KEK 1, still opens
	if v := w.sessionKEK(admin, busy.DeviceID()); v != 2 {
		t.Fatalf("a packet's resealed session is under KEK %d, want the newest, 2", v)
	}
	fresh := w.newSensor()
	w.connect(fresh)
	if v := w.sessionKEK(admin, fresh.DeviceID()); v != 2 {
		t.Fatalf("a new session is sealed under KEK %d, want the newest, 2", v)
	}
	if v := w.sessionKEK(admin, idle.DeviceID()); v != 1 {
		t.Fatalf("the idle session is under KEK %d; the test needs it under 1", v)
	}

	admin.retire(t, store.RoleKEK, 1)
	idle.Record(temp(30))
	pkt, err := idle.Next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Handle(context.Background(), w.hear("ccon-a", pkt, -70)); err != nil {
		t.Fatalf("a packet on a session under a retired KEK must be refused, not retried: %v", err)
	}
	if w.logs.Rejected("retired-kek") != 1 {
		t.Fatalf("the packet was not refused as retired-kek:\n%s", w.logs.String())
	}
	w.noMoreDownlinks()
	if got := w.temperatures(idle.DeviceID()); len(got) != 0 {
		t.Fatalf("a refused packet stored %v", got)
	}
	w.send(busy, 21)
	w.send(fresh, 22)
}

// TestCloudStaticRotation: after a static key rotation a sensor on the old
// key still handshakes, and the replies to its data carry the new key,
// which it moves to with a handshake; a sensor made with the new key
// handshakes under it; and once the old version is retired, a message 1
// under it is refused and logged.
func TestCloudStaticRotation(t *testing.T) {
	t.Parallel()
	w := newWorldConfig(t, ingest.Config{Window: 300 * time.Millisecond, KeyRefresh: keyRefresh})
	admin := w.keyAdmin()
	oldCreds := w.manufacture()
	mover, stayer := w.newSensor(), w.sensorFor(oldCreds)
	w.connect(mover)
	if v := w.device(mover.DeviceID()).CloudKeyVersion; v != 1 {
		t.Fatalf("device handshook under static version %d, want 1", v)
	}

	k := admin.rotate(t, store.RoleStatic)
	w.connect(stayer) // made with the old key, first heard after the rotation
	if v := w.device(stayer.DeviceID()).CloudKeyVersion; v != 1 {
		t.Fatalf("a sensor on the old key handshook under version %d, want 1", v)
	}
	old := bytes.Clone(mover.CloudPublic())
	w.send(mover, 20)
	// The reply offered the new key: the sensor keeps the old one and
	// tries the new one with a handshake.
	if got := mover.CloudPublic(); !bytes.Equal(got, old) {
		t.Fatalf("the sensor switched to %x before a handshake under it worked", got)
	}
	init, err := mover.Next(time.Now())
	if typ, _ := radio.Type(init); err != nil || typ != radio.TypeInitiation {
		t.Fatalf("after a reply offering the new key, Next gave type %d (%v), want a handshake", typ, err)
	}
	w.deliverAll(w.hear("ccon-a", init, -70))
	if _, err := mover.Receive(w.downlink().Packet, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := mover.CloudPublic(); !bytes.Equal(got, k.Public) {
		t.Fatalf("sensor's cloud key %x after the handshake, want the new %x", got, k.Public)
	}
	if v := w.device(mover.DeviceID()).CloudKeyVersion; v != 2 {
		t.Fatalf("device handshook under static version %d, want 2", v)
	}
	w.send(mover, 21)
	newer := w.newSensor() // made with the new key
	w.connect(newer)
	if v := w.device(newer.DeviceID()).CloudKeyVersion; v != 2 {
		t.Fatalf("a sensor made with the new key handshook under version %d, want 2", v)
	}

	admin.retire(t, store.RoleStatic, 1)
	again := w.sensorFor(oldCreds) // the old key, a newer timestamp
	init, err = again.Next(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.Handle(context.Background(), w.hear("ccon-a", init, -70)); err != nil {
		t.Fatalf("a message 1 under a retired key must be refused, not retried: %v", err)
	}
	if w.logs.Rejected("handshake-auth") != 1 {
		t.Fatalf("the message 1 under the retired key was not refused as handshake-auth:\n%s", w.logs.String())
	}
	w.noMoreDownlinks()
	if got := w.temperatures(mover.DeviceID()); !slices.Equal(got, []float64{20, 21}) {
		t.Fatalf("mover's temperatures %v, want 20 and 21", got)
	}
	w.send(mover, 22)
}
