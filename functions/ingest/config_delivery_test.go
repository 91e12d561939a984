package ingest_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/store"
)

// rawDevice is a sensor spoken by hand, so that a test chooses what its
// uplinks report about its configuration.
type rawDevice struct {
	w     *world
	id    string
	sess  *radio.Session
	seq   uint64
	reply []byte // the last reply's plaintext
}

// connectRaw handshakes as the sensor of creds.
func (w *world) connectRaw(creds credentials.Sensor) *rawDevice {
	w.t.Helper()
	var static radio.KeyPair
	copy(static.Private[:], creds.StaticPrivate)
	copy(static.Public[:], creds.StaticPublic)
	hs, pkt, err := radio.Initiate(radio.InitiatorConfig{Static: static, PSK: [32]byte(creds.PSK), CloudPublic: [32]byte(creds.CloudPublic), SenderIndex: 0x5151, Now: time.Now()})
	if err != nil {
		w.t.Fatal(err)
	}
	w.deliverAll(w.hear("ccon-a", pkt, -70))
	sess, err := hs.Finish(w.downlink().Packet, time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	return &rawDevice{w: w, id: creds.DeviceID, sess: sess}
}

// send sends a reading with report (nil: none) and returns the reply's
// configuration.
func (d *rawDevice) send(report *payload.ConfigReport) *payload.Config {
	d.w.t.Helper()
	d.seq++
	v := 20.5
	body, err := payload.Uplink{Readings: []payload.Reading{{Seq: d.seq, Kind: payload.Temperature, Time: time.Now().UnixMilli(), Celsius: &v}}, Config: report}.Marshal()
	if err != nil {
		d.w.t.Fatal(err)
	}
	pkt, _, err := d.sess.Seal(nil, body, time.Now())
	if err != nil {
		d.w.t.Fatal(err)
	}
	d.w.deliverAll(d.w.hear("ccon-a", pkt, -70))
	pt, _, err := d.sess.Open(nil, d.w.downlink().Packet, time.Now())
	if err != nil {
		d.w.t.Fatal(err)
	}
	reply, err := payload.DecodeReply(pt)
	if err != nil {
		d.w.t.Fatal(err)
	}
	d.reply = pt
	return reply.Config
}

// configure sets the device's configuration shadow as the API stores a
// change: version 3 of desired, pending since requested.
func (w *world) configure(id string, desired devconfig.Config, requested time.Time) {
	w.t.Helper()
	cs := store.ConfigState{Desired: desired, DesiredVersion: 3, ReportedVersion: 2, Status: store.ConfigPending, Requested: requested, Updated: requested}
	if _, err := w.fs.Collection("devices").Doc(id).Update(context.Background(), []firestore.Update{{Path: "configuration", Value: cs}}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) shadow(id string) store.ConfigState {
	w.t.Helper()
	snap, err := w.fs.Collection("devices").Doc(id).Get(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	var d store.Device
	if err := snap.DataTo(&d); err != nil || d.Configuration == nil {
		w.t.Fatalf("device %s: configuration %+v (%v)", id, d.Configuration, err)
	}
	return *d.Configuration
}

// configEvents are the device's stored configurationStatus events' data.
func (w *world) configEvents(id string) []map[string]any {
	w.t.Helper()
	docs, err := w.fs.Collection("events").Where("deviceId", "==", id).Where("eventType", "==", "configurationStatus").Documents(context.Background()).GetAll()
	if err != nil {
		w.t.Fatal(err)
	}
	var out []map[string]any
	for _, d := range docs {
		var e struct {
			Data map[string]map[string]any `json:"data"`
		}
		if err := json.Unmarshal(d.Data()["json"].([]byte), &e); err != nil {
			w.t.Fatal(err)
		}
		out = append(out, e.Data["configurationStatus"])
	}
	return out
}

func TestConfigurationRidesRepliesUntilConfirmed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100*time.Millisecond)
	creds := w.manufacture()
	d := w.connectRaw(creds)
	if c := d.send(nil); c != nil {
		t.Fatalf("a device with no configuration got %+v", c)
	}
	desired := devconfig.Config{SampleInterval: 60, ReportInterval: 300, Batch: 4}
	w.configure(d.id, desired, time.Now())

	want := payload.Config{Version: 3, SampleInterval: 60, Batch: 4}
	for i, rep := range []*payload.ConfigReport{nil, {Version: 2}, {Version: 1}} {
		c := d.send(rep)
		if c == nil || c.Version != want.Version || c.SampleInterval != want.SampleInterval || c.Batch != want.Batch || c.TxPower != nil {
			t.Fatalf("reply %d (report %+v) carries %+v, want %+v", i+1, rep, c, want)
		}
		if cs := w.shadow(d.id); cs.Status != store.ConfigPending || cs.Attempts != int64(i+1) || cs.LastSent.IsZero() || cs.ReportedVersion != 2 {
			t.Fatalf("after reply %d: shadow %+v, want PENDING, %d attempts, reported version 2", i+1, cs, i+1)
		}
	}
	with := len(d.reply)
	c := d.send(&payload.ConfigReport{Version: 3})
	if c != nil {
		t.Fatalf("the reply to the confirming packet carries %+v, want none", c)
	}
	t.Logf("a configuration adds %d bytes to a reply's payload (%d with, %d without)", with-len(d.reply), with, len(d.reply))
	tx := int32(14)
	largest, err := payload.Reply{Acks: []uint64{1 << 40}, Config: &payload.Config{Version: 1 << 31, SampleInterval: 86400, Batch: 32, TxPower: &tx}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	smallest, _ := payload.Reply{Acks: []uint64{1 << 40}}.Marshal()
	t.Logf("every setting at its largest adds %d bytes", len(largest)-len(smallest))
	cs := w.shadow(d.id)
	if cs.Status != store.ConfigInSync || cs.ReportedVersion != 3 || cs.Reported != desired || cs.Attempts != 3 {
		t.Fatalf("after the confirmation: shadow %+v, want IN_SYNC at version 3 reporting %+v after 3 attempts", cs, desired)
	}
	for range 2 {
		if c := d.send(&payload.ConfigReport{Version: 3}); c != nil {
			t.Fatalf("a reply after the confirmation carries %+v", c)
		}
	}
	evs := w.configEvents(d.id)
	if len(evs) != 1 || evs[0]["status"] != store.ConfigInSync || evs[0]["version"] != 3.0 || evs[0]["reason"] != nil || evs[0]["updateTime"] == nil {
		t.Fatalf("configurationStatus events %v, want one IN_SYNC of version 3", evs)
	}
}

func TestConfigurationRejected(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100*time.Millisecond)
	d := w.connectRaw(w.manufacture())
	w.configure(d.id, devconfig.Config{SampleInterval: 20}, time.Now())
	if c := d.send(nil); c == nil || c.Version != 3 {
		t.Fatalf("reply carries %+v, want version 3", c)
	}
	for range 2 {
		if c := d.send(&payload.ConfigReport{Version: 3, Reason: uint8(devconfig.OutOfRange)}); c != nil {
			t.Fatalf("a reply after the refusal carries %+v", c)
		}
	}
	if cs := w.shadow(d.id); cs.Status != store.ConfigRejected || cs.RejectReason != int(devconfig.OutOfRange) || cs.ReportedVersion != 2 {
		t.Fatalf("shadow %+v, want REJECTED for OUT_OF_RANGE, still reporting version 2", cs)
	}
	evs := w.configEvents(d.id)
	if len(evs) != 1 || evs[0]["status"] != store.ConfigRejected || evs[0]["reason"] != "OUT_OF_RANGE" || evs[0]["version"] != 3.0 {
		t.Fatalf("configurationStatus events %v, want one REJECTED of version 3 for OUT_OF_RANGE", evs)
	}
}

func TestConfigurationExpires(t *testing.T) {
	t.Parallel()
	w := newWorld(t, 100*time.Millisecond)
	stale := w.connectRaw(w.manufacture())
	w.configure(stale.id, devconfig.Config{Batch: 2}, time.Now().Add(-8*24*time.Hour))
	fresh := w.connectRaw(w.manufacture())
	w.configure(fresh.id, devconfig.Config{Batch: 2}, time.Now())
	for range 2 {
		if _, err := w.svc.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if cs := w.shadow(stale.id); cs.Status != store.ConfigExpired {
		t.Fatalf("a configuration requested 8 days ago: shadow %+v, want EXPIRED", cs)
	}
	if cs := w.shadow(fresh.id); cs.Status != store.ConfigPending {
		t.Fatalf("a configuration requested now: shadow %+v, want PENDING", cs)
	}
	if c := stale.send(nil); c != nil {
		t.Fatalf("an expired configuration is still sent: %+v", c)
	}
	if evs := w.configEvents(stale.id); len(evs) != 1 || evs[0]["status"] != store.ConfigExpired || evs[0]["version"] != 3.0 {
		t.Fatalf("configurationStatus events %v, want one EXPIRED of version 3", evs)
	}
	if evs := w.configEvents(fresh.id); len(evs) != 0 {
		t.Fatalf("configurationStatus events of the fresh configuration %v, want none", evs)
	}
}
