package sensor_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// cloud is the cloud side of the protocol in its plainest form, to drive a
// sensor through handshakes, ACKs and lost replies.
type cloud struct {
	t       *testing.T
	static  radio.KeyPair
	psk     [32]byte
	session *radio.Session
	lastTS  time.Time
	seen    map[uint64]payload.Reading // by Seq
	epochs  []uint32                   // each transport packet's boot epoch
	// newer, if set, is a newer static key the cloud also answers under;
	// offer is a cloud key its replies carry. A message 1 under neither
	// key is a test failure unless ignoreUnknown is set.
	newer         *radio.KeyPair
	offer         []byte
	ignoreUnknown bool
	// config, if set, is the device configuration the replies carry;
	// reports are the uplinks' configuration reports, in order.
	config  *payload.Config
	reports []*payload.ConfigReport
	// serve, if set, chooses the update offer each reply carries;
	// updates are the uplinks' update reports, in order.
	serve   func(payload.Uplink) *payload.UpdateOffer
	updates []*payload.UpdateReport
}

func newPair(t *testing.T, cfg sensor.Config) (*sensor.Sensor, *cloud) {
	t.Helper()
	return newPairIn(t, cfg, 0)
}

// newPairIn is newPair for a sensor booted into the given epoch.
func newPairIn(t *testing.T, cfg sensor.Config, epoch uint32) (*sensor.Sensor, *cloud) {
	t.Helper()
	s, c, _ := newPairWith(t, cfg, credentials.Sensor{BootEpoch: epoch})
	return s, c
}

// newPairWith is newPair for a sensor made from base (its id, type, epoch
// and configuration) with fresh keys; it returns the credentials too.
func newPairWith(t *testing.T, cfg sensor.Config, base credentials.Sensor) (*sensor.Sensor, *cloud, credentials.Sensor) {
	t.Helper()
	cs, _ := radio.GenerateKeyPair(rand.Reader)
	ss, _ := radio.GenerateKeyPair(rand.Reader)
	var psk [32]byte
	_, _ = rand.Read(psk[:])
	creds := base
	if creds.DeviceID == "" {
		creds.DeviceID = "dev"
	}
	creds.StaticPrivate, creds.StaticPublic, creds.PSK, creds.CloudPublic = ss.Private[:], ss.Public[:], psk[:], cs.Public[:]
	s, err := sensor.New(creds, 100, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, &cloud{t: t, static: cs, psk: psk, seen: map[uint64]payload.Reading{}}, creds
}

// handle processes one packet from the sensor and returns the reply.
func (c *cloud) handle(pkt []byte, now time.Time) (reply []byte, readings []payload.Reading) {
	c.t.Helper()
	typ, err := radio.Type(pkt)
	if err != nil {
		c.t.Fatal(err)
	}
	if typ == radio.TypeInitiation {
		rh, err := radio.ReadInitiation(c.static, pkt, nil)
		if err != nil && c.newer != nil {
			rh, err = radio.ReadInitiation(*c.newer, pkt, nil)
		}
		if err != nil && c.ignoreUnknown {
			return nil, nil
		}
		if err != nil {
			c.t.Fatal(err)
		}
		if err := radio.CheckTimestamp(c.lastTS, rh.Timestamp()); err != nil {
			c.t.Fatalf("the sensor reused a handshake timestamp: %v", err)
		}
		c.lastTS = rh.Timestamp()
		resp, sess, err := rh.Respond(c.psk, 9, now)
		if err != nil {
			c.t.Fatal(err)
		}
		c.session = sess
		return resp, nil
	}
	pt, counter, err := c.session.Open(nil, pkt, now)
	if err != nil {
		c.t.Fatal(err)
	}
	up, refused, err := payload.DecodeUplink(pt)
	if err != nil || refused != nil {
		c.t.Fatal(err, refused)
	}
	c.epochs = append(c.epochs, up.Epoch)
	c.reports = append(c.reports, up.Config)
	c.updates = append(c.updates, up.Update)
	for _, r := range up.Readings {
		c.seen[r.Seq] = r
	}
	cfg := &payload.Config{ReportInterval: 120, CloudKey: c.offer}
	if c.config != nil {
		cfg = c.config
	}
	var offer *payload.UpdateOffer
	if c.serve != nil {
		offer = c.serve(up)
	}
	body, err := payload.Reply{Acks: []uint64{counter}, Config: cfg, Update: offer}.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	reply, _, err = c.session.Seal(nil, body, now)
	if err != nil {
		c.t.Fatal(err)
	}
	return reply, up.Readings
}

func temp(v float64) payload.Reading {
	return payload.Reading{Kind: payload.Temperature, Time: t0.UnixMilli(), Celsius: &v}
}

func connect(t *testing.T, s *sensor.Sensor, c *cloud, now time.Time) {
	t.Helper()
	init, err := s.Next(now)
	if err != nil || init == nil {
		t.Fatalf("no handshake: %v", err)
	}
	resp, _ := c.handle(init, now)
	if _, err := s.Receive(resp, now); err != nil {
		t.Fatal(err)
	}
}

func TestAckedReadingsLeaveTheBacklog(t *testing.T) {
	t.Parallel()
	s, c := newPair(t, sensor.Config{})
	s.Record(temp(20))
	s.Record(temp(21))
	connect(t, s, c, t0)
	pkt, err := s.Next(t0)
	if err != nil || pkt == nil {
		t.Fatalf("Next: %v", err)
	}
	reply, got := c.handle(pkt, t0)
	if len(got) != 2 || got[0].Backfilled || got[0].Seq != 101 || got[1].Seq != 100 {
		t.Fatalf("first packet carried %+v; want seqs 101, 100, newest first, not backfilled", got)
	}
	if _, err := s.Receive(reply, t0); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Backlog != 0 || st.Acked != 2 {
		t.Fatalf("after the ACK: %+v", st)
	}
	if s.Config().ReportInterval != 120 {
		t.Fatalf("configuration not applied: %+v", s.Config())
	}
	if pkt, _ := s.Next(t0.Add(time.Minute)); pkt != nil {
		t.Fatal("an acknowledged reading was sent again")
	}
}

// TestUplinksCarryTheBootEpoch: every packet, new readings and backfill
// alike, names the epoch the sensor booted into; epoch 0 sends none.
func TestUplinksCarryTheBootEpoch(t *testing.T) {
	t.Parallel()
	for _, epoch := range []uint32{0, 1, 7} {
		s, c := newPairIn(t, sensor.Config{ResendAfter: time.Second}, epoch)
		connect(t, s, c, t0)
		s.Record(temp(20))
		pkt, _ := s.Next(t0)
		_, _ = c.handle(pkt, t0) // the reply is lost: the reading is resent
		again, _ := s.Next(t0.Add(2 * time.Second))
		_, got := c.handle(again, t0.Add(2*time.Second))
		if len(got) != 1 || !got[0].Backfilled {
			t.Fatalf("epoch %d: resend carried %+v", epoch, got)
		}
		if len(c.epochs) != 2 || c.epochs[0] != epoch || c.epochs[1] != epoch {
			t.Fatalf("epoch %d: packets carried epochs %v", epoch, c.epochs)
		}
	}
}

func TestLostAckResendsAsBackfill(t *testing.T) {
	t.Parallel()
	s, c := newPair(t, sensor.Config{ResendAfter: 10 * time.Second})
	connect(t, s, c, t0)
	seq := s.Record(temp(20))
	pkt, _ := s.Next(t0)
	_, _ = c.handle(pkt, t0) // the reply is lost on the air
	if again, _ := s.Next(t0.Add(5 * time.Second)); again != nil {
		t.Fatal("resent before ResendAfter")
	}
	s.Record(temp(22))
	pkt, _ = s.Next(t0.Add(11 * time.Second))
	reply, got := c.handle(pkt, t0.Add(11*time.Second))
	if len(got) != 2 || got[0].Backfilled || !got[1].Backfilled || got[1].Seq != seq {
		t.Fatalf("packet carried %+v; want the new reading, then seq %d as backfill", got, seq)
	}
	if _, err := s.Receive(reply, t0.Add(11*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The next uplink tells the cloud that this reply arrived.
	s.Record(temp(23))
	pkt, _ = s.Next(t0.Add(12 * time.Second))
	pt, _, err := c.session.Open(nil, pkt, t0.Add(12*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	up, _, _ := payload.DecodeUplink(pt)
	if len(up.Replies) != 1 || up.Replies[0] != 1 {
		t.Fatalf("uplink reports replies %v, want [1] (the second reply's counter)", up.Replies)
	}
	if st := s.Stats(); st.Backlog != 1 || st.Resent != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSlowCloudIsWaitedFor: once ACKs take longer than ResendAfter, a
// sensor waits for them about as long as they take, instead of resending
// what a loaded cloud is still working on.
func TestSlowCloudIsWaitedFor(t *testing.T) {
	t.Parallel()
	s, c := newPair(t, sensor.Config{ResendAfter: 10 * time.Second})
	connect(t, s, c, t0)
	s.Record(temp(20))
	pkt, _ := s.Next(t0)
	reply, _ := c.handle(pkt, t0)
	slow := t0.Add(15 * time.Second) // the ACK takes 15s: the wait becomes 15s + 4 x 7.5s
	if _, err := s.Receive(reply, slow); err != nil {
		t.Fatal(err)
	}
	seq := s.Record(temp(21))
	pkt, _ = s.Next(slow)
	_, _ = c.handle(pkt, slow) // this reply is lost
	for _, after := range []time.Duration{11 * time.Second, 30 * time.Second, 44 * time.Second} {
		if again, _ := s.Next(slow.Add(after)); again != nil {
			t.Fatalf("resent %v after sending, while ACKs take 15s", after)
		}
	}
	pkt, _ = s.Next(slow.Add(46 * time.Second))
	if pkt == nil {
		t.Fatal("not resent after the measured wait")
	}
	if _, got := c.handle(pkt, slow.Add(46*time.Second)); len(got) != 1 || got[0].Seq != seq || !got[0].Backfilled {
		t.Fatalf("resend carried %+v; want seq %d as backfill", got, seq)
	}
}

func TestBackfillWaitsForTheLastBackfillsACK(t *testing.T) {
	t.Parallel()
	s, c := newPair(t, sensor.Config{ResendAfter: 10 * time.Second, MaxPerPacket: 2})
	connect(t, s, c, t0)
	for v := range 6 {
		s.Record(temp(float64(v)))
	}
	// Three packets carry the six readings; every reply is lost.
	for range 3 {
		if pkt, _ := s.Next(t0); pkt == nil {
			t.Fatal("new readings were held back")
		} else {
			_, _ = c.handle(pkt, t0)
		}
	}
	at := t0.Add(11 * time.Second) // all six are overdue
	first, _ := s.Next(at)
	if first == nil {
		t.Fatal("overdue readings were not resent")
	}
	for _, later := range []time.Duration{0, time.Second, 9 * time.Second} {
		if pkt, _ := s.Next(at.Add(later)); pkt != nil {
			t.Fatalf("a second backfill packet went out %v after the first, before its ACK", later)
		}
	}
	// New readings never wait for backfill.
	s.Record(temp(9))
	if pkt, _ := s.Next(at.Add(time.Second)); pkt == nil {
		t.Fatal("a new reading was held back behind backfill")
	}
	// The ACK of the backfill packet lets the next one go at once.
	reply, got := c.handle(first, at)
	if len(got) != 2 || !got[0].Backfilled || !got[1].Backfilled {
		t.Fatalf("first backfill packet carried %+v", got)
	}
	if _, err := s.Receive(reply, at.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if pkt, _ := s.Next(at.Add(2 * time.Second)); pkt == nil {
		t.Fatal("backfill stayed blocked after its ACK")
	}
	// A lost backfill ACK blocks the next one for ResendAfter only.
	if pkt, _ := s.Next(at.Add(3 * time.Second)); pkt != nil {
		t.Fatal("a second backfill packet went out before the ACK")
	}
	if pkt, _ := s.Next(at.Add(13 * time.Second)); pkt == nil {
		t.Fatal("backfill stayed blocked past ResendAfter without an ACK")
	}
}

func TestBacklogIsBounded(t *testing.T) {
	t.Parallel()
	s, _ := newPair(t, sensor.Config{MaxBacklog: 4})
	for i := range 6 {
		s.Record(temp(float64(i)))
	}
	if st := s.Stats(); st.Backlog != 4 || st.Dropped != 2 {
		t.Fatalf("stats %+v, want backlog 4 and 2 dropped", st)
	}
}

func TestIgnoresOthersAndRekeys(t *testing.T) {
	t.Parallel()
	limits := radio.Limits{MaxAge: time.Hour, MaxPackets: 1000}
	s, c := newPair(t, sensor.Config{Limits: limits, RekeyBefore: time.Minute, HandshakeTimeout: 5 * time.Second})
	connect(t, s, c, t0)

	// A reply for another sensor on the broadcast radio is ignored.
	other, oc := newPair(t, sensor.Config{})
	connect(t, other, oc, t0)
	other.Record(temp(1))
	p, _ := other.Next(t0)
	reply, _ := oc.handle(p, t0)
	if _, err := s.Receive(reply, t0); err != nil {
		t.Fatalf("someone else's reply: %v", err)
	}

	// Near the age limit the sensor starts a new handshake, and retries
	// it with a newer timestamp if no response comes.
	near := t0.Add(limits.MaxAge - 30*time.Second)
	init, _ := s.Next(near)
	if typ, _ := radio.Type(init); typ != radio.TypeInitiation {
		t.Fatalf("near expiry Next gave type %d, want a handshake", typ)
	}
	if p, _ := s.Next(near.Add(time.Second)); p != nil {
		t.Fatal("a second handshake before the timeout")
	}
	retry, _ := s.Next(near.Add(6 * time.Second))
	resp, _ := c.handle(retry, near.Add(6*time.Second))
	if _, err := s.Receive(resp, near.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	s.Record(temp(5))
	p, _ = s.Next(near.Add(7 * time.Second))
	if typ, _ := radio.Type(p); typ != radio.TypeTransport {
		t.Fatalf("after the new handshake Next gave type %d", typ)
	}
	if st := s.Stats(); st.Handshakes != 3 {
		t.Fatalf("handshakes %d, want 3", st.Handshakes)
	}
}

// TestSilentSessionIsReplaced: a cloud that stops answering in a session
// (it lost the session, or can no longer open it) gets a new handshake
// once SilentAfter has passed with packets unanswered, not only at the
// session's age limit; a cloud that is slow but answers keeps it.
func TestSilentSessionIsReplaced(t *testing.T) {
	t.Parallel()
	isInitiation := func(pkt []byte) bool {
		typ, err := radio.Type(pkt)
		return err == nil && typ == radio.TypeInitiation
	}
	tests := []struct {
		name          string
		answerEvery   int // 0: never answer
		wantHandshake bool
	}{
		{"never answered", 0, true},
		{"answered now and then", 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c := newPair(t, sensor.Config{ResendAfter: 5 * time.Second, SilentAfter: time.Minute})
			connect(t, s, c, t0)
			now := t0
			for i := 1; i <= 20; i++ {
				now = now.Add(10 * time.Second)
				s.Record(temp(20))
				pkt, err := s.Next(now)
				if err != nil {
					t.Fatal(err)
				}
				if isInitiation(pkt) {
					if !tc.wantHandshake {
						t.Fatalf("packet %d: a handshake, though the cloud answers", i)
					}
					if now.Sub(t0) < time.Minute {
						t.Fatalf("handshake after %v of silence; want at least SilentAfter", now.Sub(t0))
					}
					return
				}
				reply, _ := c.handle(pkt, now)
				if tc.answerEvery > 0 && i%tc.answerEvery == 0 {
					if _, err := s.Receive(reply, now); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.wantHandshake {
				t.Fatal("the sensor kept a session the cloud never answered in for 200 s")
			}
		})
	}
}

// TestMovesToAnOfferedCloudKey: a reply offering a newer cloud key starts
// handshakes under it while the old session carries the readings. A cloud
// that answers under the new key gets it adopted; one that does not is
// given up on after SilentAfter, the old key stays, and the new one is
// tried again after KeyRetryAfter. No reading is lost either way.
func TestMovesToAnOfferedCloudKey(t *testing.T) {
	t.Parallel()
	isInitiation := func(pkt []byte) bool {
		typ, err := radio.Type(pkt)
		return err == nil && typ == radio.TypeInitiation
	}
	for _, answers := range []bool{true, false} {
		t.Run(fmt.Sprintf("cloud answers under the new key: %v", answers), func(t *testing.T) {
			t.Parallel()
			cfg := sensor.Config{HandshakeTimeout: 5 * time.Second, SilentAfter: time.Minute, KeyRetryAfter: 10 * time.Minute}
			s, c := newPair(t, cfg)
			old := bytes.Clone(s.CloudPublic())
			newer, _ := radio.GenerateKeyPair(rand.Reader)
			c.offer, c.ignoreUnknown = newer.Public[:], true
			if answers {
				c.newer = &newer
			}
			connect(t, s, c, t0)
			now, trials := t0, 0
			for i := range 30 {
				now = now.Add(5 * time.Second)
				s.Record(temp(float64(i)))
				pkt, err := s.Next(now)
				if err != nil || pkt == nil {
					t.Fatalf("step %d: Next gave %d bytes, %v", i, len(pkt), err)
				}
				if isInitiation(pkt) {
					trials++
				}
				if reply, _ := c.handle(pkt, now); reply != nil {
					if _, err := s.Receive(reply, now); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
			}
			got := s.CloudPublic()
			switch {
			case answers && !bytes.Equal(got, newer.Public[:]):
				t.Fatalf("cloud key in use %x, want the offered %x adopted", got, newer.Public)
			case answers && trials != 1:
				t.Fatalf("%d handshakes under the new key, want 1", trials)
			case !answers && !bytes.Equal(got, old):
				t.Fatalf("cloud key in use %x, want the old %x kept: the new one never worked", got, old)
			case !answers && trials < 2:
				t.Fatalf("%d unanswered handshakes under the new key, want retries within SilentAfter", trials)
			}
			if !answers {
				// Given up: 150 s of steps passed SilentAfter. No
				// handshake until KeyRetryAfter, then the new key again.
				before := s.Stats().Handshakes
				for i := 0; i < 10; i++ {
					now = now.Add(5 * time.Second)
					s.Record(temp(1))
					pkt, _ := s.Next(now)
					if isInitiation(pkt) {
						t.Fatalf("a handshake %v after giving up on the new key; want none until KeyRetryAfter", now.Sub(t0))
					}
					reply, _ := c.handle(pkt, now)
					_, _ = s.Receive(reply, now)
				}
				c.newer = &newer // the cloud now knows it
				now = now.Add(cfg.KeyRetryAfter)
				pkt, _ := s.Next(now)
				resp, _ := c.handle(pkt, now)
				if !isInitiation(pkt) || resp == nil {
					t.Fatalf("no handshake under the new key after KeyRetryAfter (handshakes before: %d)", before)
				}
				if _, err := s.Receive(resp, now); err != nil || !bytes.Equal(s.CloudPublic(), newer.Public[:]) {
					t.Fatalf("the retried new key was not adopted: %v", err)
				}
			}
			// Drain: everything recorded reaches the cloud.
			for i := 0; s.Stats().Backlog > 0 && i < 50; i++ {
				now = now.Add(15 * time.Second)
				if pkt, _ := s.Next(now); pkt != nil {
					reply, _ := c.handle(pkt, now)
					_, _ = s.Receive(reply, now)
				}
			}
			if st := s.Stats(); st.Backlog != 0 || uint64(len(c.seen)) != st.Recorded || st.Dropped != 0 {
				t.Fatalf("after the move: %+v, cloud saw %d readings; want every reading delivered", st, len(c.seen))
			}
		})
	}
}
