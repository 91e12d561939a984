package sensor_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

const (
	running    = 3 // the software version the sensors under test run
	newer      = 7 // the version the releases under test install
	keyVersion = 2 // the release key version the sensors trust
)

func releaseKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rel is a signed release as the cloud holds it.
type rel struct {
	m      release.Manifest
	signed []byte
	chunks [][]byte // encoded, by index
}

func (r rel) id() []byte { return r.m.ReleaseID[:] }

// sealRelease signs m, completed for image with a random release id, and
// cuts image into m's chunks.
func sealRelease(t *testing.T, k *ecdsa.PrivateKey, m release.Manifest, image []byte) rel {
	t.Helper()
	m.Size, m.ImageSHA256 = uint32(len(image)), sha256.Sum256(image)
	_, _ = rand.Read(m.ReleaseID[:])
	signed, err := release.Seal(m, func(d [32]byte) ([]byte, error) { return ecdsa.SignASN1(rand.Reader, k, d[:]) })
	if err != nil {
		t.Fatal(err)
	}
	cs, err := release.Split(m, image)
	if err != nil {
		t.Fatal(err)
	}
	r := rel{m: m, signed: signed}
	for _, c := range cs {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r.chunks = append(r.chunks, b)
	}
	return r
}

func manifest(target string, version, minFrom uint32) release.Manifest {
	return release.Manifest{Target: target, Version: version, MinFrom: minFrom, ChunkSize: 512, KeyVersion: keyVersion}
}

// image is n reproducible bytes after prefix.
func image(n int, prefix string) []byte {
	b := make([]byte, n)
	_, _ = mrand.NewChaCha8([32]byte{'i', 'm', 'g'}).Read(b)
	copy(b, prefix)
	return b
}

// updatePair is a connected temperature sensor running version `running`
// that trusts k as release key version keyVersion, and its cloud serving
// r (see server).
func updatePair(t *testing.T, k *ecdsa.PrivateKey, r rel) (*sensor.Sensor, *cloud, *server) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	s, c, _ := newPairWith(t, sensor.Config{}, credentials.Sensor{DeviceType: "temperature", SoftwareVersion: running,
		ReleaseKeys: []credentials.ReleaseKey{{Version: keyVersion, PKIX: der}}})
	connect(t, s, c, t0)
	sv := &server{r: r}
	c.serve = sv.serve
	return s, c, sv
}

// server is the cloud's update service in its plainest form. It offers
// r's manifest to a sensor that reports an older version and fetches
// nothing, and answers a report that names a chunk of r with that chunk
// (from chunk, if set). It makes no further offer to a sensor that refused
// r's manifest, failed its image or rolled back.
type server struct {
	r        rel
	chunk    func(i uint32) []byte // nil: r's own
	manifest bool                  // offer the manifest in the next reply, whatever the uplink says
	sent     []uint32              // chunks offered, in order
}

func (sv *server) serve(up payload.Uplink) *payload.UpdateOffer {
	if sv.manifest {
		sv.manifest = false
		return &payload.UpdateOffer{Manifest: sv.r.signed}
	}
	rep := up.Update
	if rep == nil || rep.Version >= sv.r.m.Version {
		return nil
	}
	ours := bytes.Equal(rep.Release, sv.r.id())
	switch {
	case ours && (rep.State == payload.UpdateFetching || rep.State == payload.UpdateRefused && chunkReason(rep.Reason)):
		sv.sent = append(sv.sent, rep.Next)
		if sv.chunk != nil {
			return &payload.UpdateOffer{Chunk: sv.chunk(rep.Next)}
		}
		return &payload.UpdateOffer{Chunk: sv.r.chunks[rep.Next]}
	case rep.State == payload.UpdateInstalled:
		return &payload.UpdateOffer{Manifest: sv.r.signed}
	}
	return nil
}

// chunkReason says whether a refusal, with its release named, is of a
// chunk: the download goes on.
func chunkReason(r release.Reason) bool {
	return r == release.WrongRelease || r == release.BadChunk || r == release.Malformed
}

// driver steps a sensor and its cloud in 500 ms steps; every packet and
// every reply arrives.
type driver struct {
	t         *testing.T
	s         *sensor.Sensor
	c         *cloud
	now       time.Time
	readEvery int // steps between readings; 0: none
	step      int
	pulls     []time.Time
	// readingsFetching counts the readings received while the sensor
	// fetched a release.
	readingsFetching int
}

func newDriver(t *testing.T, s *sensor.Sensor, c *cloud) *driver {
	return &driver{t: t, s: s, c: c, now: t0, readEvery: 6}
}

// run steps until done, and fails the test if max steps do not get there.
func (d *driver) run(what string, max int, done func() bool) {
	d.t.Helper()
	for range max {
		if done() {
			return
		}
		d.tick()
	}
	d.t.Fatalf("not %s after %d steps: %+v, %+v", what, max, d.s.Update(), d.s.Stats())
}

func (d *driver) tick() {
	d.t.Helper()
	d.step++
	d.now = d.now.Add(500 * time.Millisecond)
	if d.readEvery > 0 && d.step%d.readEvery == 0 {
		d.s.Record(temp(20))
	}
	pkt, err := d.s.Next(d.now)
	if err != nil {
		d.t.Fatalf("step %d: Next: %v", d.step, err)
	}
	if pkt == nil {
		return
	}
	fetching := d.s.Update().State == payload.UpdateFetching
	reply, got := d.c.handle(pkt, d.now)
	if typ, _ := radio.Type(pkt); typ == radio.TypeTransport && len(got) == 0 {
		d.pulls = append(d.pulls, d.now)
	}
	if fetching {
		d.readingsFetching += len(got)
	}
	if reply != nil {
		if _, err := d.s.Receive(reply, d.now); err != nil {
			d.t.Fatalf("step %d: Receive: %v", d.step, err)
		}
	}
}

// lastReport is the last update report the cloud received, or nil.
func lastReport(c *cloud) *payload.UpdateReport {
	for i := len(c.updates) - 1; i >= 0; i-- {
		if c.updates[i] != nil {
			return c.updates[i]
		}
	}
	return nil
}

func reported(c *cloud, want payload.UpdateReport) func() bool {
	return func() bool {
		r := lastReport(c)
		return r != nil && equalReport(*r, want)
	}
}

func equalReport(a, b payload.UpdateReport) bool {
	return a.Version == b.Version && bytes.Equal(a.Release, b.Release) && a.Next == b.Next && a.State == b.State && a.Reason == b.Reason
}

func show(r *payload.UpdateReport) string {
	if r == nil {
		return "none"
	}
	return fmt.Sprintf("{version %d, release %x, next %d, %v, reason %v}", r.Version, r.Release, r.Next, r.State, r.Reason)
}

// TestUpdateOverTheAir: a 64 KiB release in 512-byte chunks reaches a
// sensor through sealed replies while its readings keep flowing; the
// sensor pulls at most every PullInterval, asks for each chunk once,
// restarts into the new version with a new handshake, reports it without
// waiting for a reading, and loses no reading.
func TestUpdateOverTheAir(t *testing.T) {
	t.Parallel()
	k := releaseKey(t)
	r := sealRelease(t, k, manifest("temperature", newer, 1), image(64<<10, ""))
	s, c, sv := updatePair(t, k, r)
	if s.SoftwareVersion() != running {
		t.Fatalf("runs version %d; want %d from its credentials", s.SoftwareVersion(), running)
	}
	before := s.Stats()
	d := newDriver(t, s, c)
	d.run("installed", 4000, func() bool { return s.SoftwareVersion() == newer })
	// The new version is told at once, not with the next reading, which
	// may be a reporting interval away.
	d.readEvery = 0
	d.run("reporting the new version", 100, reported(c, payload.UpdateReport{Version: newer, Release: r.id(), State: payload.UpdateInstalled}))
	d.run("drained", 200, func() bool { return s.Stats().Backlog == 0 })

	if want := len(r.chunks); len(sv.sent) != want || !slices.IsSorted(sv.sent) || sv.sent[want-1] != uint32(want-1) {
		t.Fatalf("the sensor asked for chunks %v; want each of the %d once, in order", sv.sent, want)
	}
	if len(d.pulls) == 0 {
		t.Fatal("no pull: every chunk came on readings' replies")
	}
	for i := 1; i < len(d.pulls); i++ {
		if gap := d.pulls[i].Sub(d.pulls[i-1]); gap < 2*time.Second {
			t.Fatalf("pulls %d and %d went %v apart; want at least PullInterval, 2s", i-1, i, gap)
		}
	}
	if d.readingsFetching == 0 {
		t.Fatal("no reading reached the cloud during the download")
	}
	st := s.Stats()
	if st.Handshakes != before.Handshakes+1 {
		t.Fatalf("%d handshakes since the download began; want 1, the restart's", st.Handshakes-before.Handshakes)
	}
	if st.Dropped != 0 || st.Backlog != 0 || uint64(len(c.seen)) != st.Recorded {
		t.Fatalf("stats %+v, the cloud holds %d readings; want every one of the %d recorded", st, len(c.seen), st.Recorded)
	}
	for seq := uint64(100); seq < 100+st.Recorded; seq++ {
		if _, ok := c.seen[seq]; !ok {
			t.Fatalf("reading %d never reached the cloud", seq)
		}
	}
	if u := s.Update(); u.Version != newer || u.State != payload.UpdateInstalled || u.Release != r.m.ReleaseID {
		t.Fatalf("update status %+v; want version %d installed from %x", u, newer, r.id())
	}
	if pulls := st.Pulls; pulls != uint64(len(d.pulls)) {
		t.Fatalf("Stats.Pulls %d; the cloud got %d pulls", pulls, len(d.pulls))
	}
	t.Logf("%d chunks in %v of device time: %d by pulls, %d readings meanwhile", len(r.chunks), d.now.Sub(t0), len(d.pulls), d.readingsFetching)
}

// TestRefusedManifest: a manifest the sensor must not install is refused
// with its reason, reported until an uplink carrying the report is
// acknowledged, and changes nothing: the sensor runs its version and pulls
// nothing.
func TestRefusedManifest(t *testing.T) {
	t.Parallel()
	k, other := releaseKey(t), releaseKey(t)
	img := image(4096, "")
	untrusted := manifest("temperature", newer, 1)
	untrusted.KeyVersion = keyVersion + 1
	for _, tc := range []struct {
		name  string
		r     rel
		want  release.Reason
		named bool // the report names the release: the manifest opened
	}{
		{"signed by another key", sealRelease(t, other, manifest("temperature", newer, 1), img), release.BadSignature, false},
		{"key version not trusted", sealRelease(t, k, untrusted, img), release.UnknownKey, false},
		{"the version it runs", sealRelease(t, k, manifest("temperature", running, 1), img), release.Downgrade, true},
		{"an older version", sealRelease(t, k, manifest("temperature", running-1, 1), img), release.Downgrade, true},
		{"another device type", sealRelease(t, k, manifest("humidity", newer, 1), img), release.WrongTarget, true},
		{"running below minFrom", sealRelease(t, k, manifest("temperature", newer, running+1), img), release.TooOld, true},
		{"not a manifest", rel{signed: []byte{0xa0}}, release.Malformed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c, sv := updatePair(t, k, tc.r)
			sv.manifest = true
			want := payload.UpdateReport{Version: running, State: payload.UpdateRefused, Reason: tc.want}
			if tc.named {
				want.Release = tc.r.id()
			}
			d := newDriver(t, s, c)
			d.run("refused", 40, reported(c, want))
			from := len(c.updates) - 1
			d.steps(60)
			if v, u, st := s.SoftwareVersion(), s.Update(), s.Stats(); v != running || u.State != payload.UpdateRefused || u.Reason != tc.want || st.Pulls > 1 {
				// One pull may tell the refusal at once; none fetches.
				t.Fatalf("after refusing: version %d, status %+v, %d pulls; want version %d, refused for %v, at most the one pull that told it", v, u, st.Pulls, running, tc.want)
			}
			if n := reportsIn(c.updates[from:]); n != 1 {
				t.Fatalf("the refusal rode on %d uplinks; want 1, as its first was acknowledged", n)
			}
		})
	}
}

// steps ticks n times.
func (d *driver) steps(n int) {
	d.t.Helper()
	for range n {
		d.tick()
	}
}

func reportsIn(rs []*payload.UpdateReport) int {
	n := 0
	for _, r := range rs {
		if r != nil {
			n++
		}
	}
	return n
}

// TestRefusedChunkDownloadGoesOn: a chunk of another release, with a bad
// index or length, or that does not decode, is refused with its reason in
// the report, which names the download and the chunk it still needs; the
// download goes on and installs.
func TestRefusedChunkDownloadGoesOn(t *testing.T) {
	t.Parallel()
	k := releaseKey(t)
	img := image(8<<10, "")
	stranger := sealRelease(t, k, manifest("temperature", newer, 1), img)
	const at = 5 // the chunk that goes wrong, once
	for _, tc := range []struct {
		name string
		bad  func(r rel) []byte
		want release.Reason
	}{
		{"chunk of another release", func(rel) []byte { return stranger.chunks[at] }, release.WrongRelease},
		{"index past the end", func(r rel) []byte { return encodeChunk(t, r.m.ReleaseID, 1000, make([]byte, 512)) }, release.BadChunk},
		{"short chunk", func(r rel) []byte { return encodeChunk(t, r.m.ReleaseID, at, make([]byte, 100)) }, release.BadChunk},
		{"not a chunk", func(rel) []byte { return []byte{0xa0} }, release.Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sealRelease(t, k, manifest("temperature", newer, 1), img)
			s, c, sv := updatePair(t, k, r)
			spoiled := false
			sv.chunk = func(i uint32) []byte {
				if i == at && !spoiled {
					spoiled = true
					return tc.bad(r)
				}
				return r.chunks[i]
			}
			d := newDriver(t, s, c)
			want := payload.UpdateReport{Version: running, Release: r.id(), Next: at, State: payload.UpdateRefused, Reason: tc.want}
			d.run("refusing the chunk", 200, reported(c, want))
			// The reply to that report brought chunk `at`, intact.
			if u := s.Update(); u.State != payload.UpdateFetching || u.Reason != tc.want || u.Held != at+1 {
				t.Fatalf("after the refusal: %+v; want fetching on with %d chunks held, reason %v", u, at+1, tc.want)
			}
			d.run("installed", 400, func() bool { return s.SoftwareVersion() == newer })
			if n := len(r.chunks) + 1; len(sv.sent) != n {
				t.Fatalf("%d chunks sent; want %d, chunk %d twice (%v)", len(sv.sent), n, at, sv.sent)
			}
		})
	}
}

func encodeChunk(t *testing.T, id [16]byte, i uint32, data []byte) []byte {
	t.Helper()
	b, err := release.Chunk{ReleaseID: id, Index: i, Data: data}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTamperedChunk: an image whose SHA-256 is not the signed one, because
// a chunk was altered, is refused (HashMismatch) once complete and
// forgotten; nothing is applied and no restart happens. The release
// offered again, intact, installs.
func TestTamperedChunk(t *testing.T) {
	t.Parallel()
	k := releaseKey(t)
	r := sealRelease(t, k, manifest("temperature", newer, 1), image(8<<10, ""))
	s, c, sv := updatePair(t, k, r)
	sv.chunk = func(i uint32) []byte {
		if i != 3 {
			return r.chunks[i]
		}
		c, err := release.ParseChunk(r.chunks[i])
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Clone(c.Data)
		data[100] ^= 1
		return encodeChunk(t, c.ReleaseID, c.Index, data)
	}
	handshakes := s.Stats().Handshakes
	d := newDriver(t, s, c)
	want := payload.UpdateReport{Version: running, Release: r.id(), State: payload.UpdateRefused, Reason: release.HashMismatch}
	d.run("refusing the image", 400, reported(c, want))
	d.steps(40)
	u, st := s.Update(), s.Stats()
	if s.SoftwareVersion() != running || u.State != payload.UpdateRefused || u.Reason != release.HashMismatch || u.Chunks != 0 {
		t.Fatalf("after a tampered image: version %d, status %+v; want version %d, refused for HashMismatch, nothing held",
			s.SoftwareVersion(), u, running)
	}
	if st.Handshakes != handshakes {
		t.Fatalf("%d handshakes since the download began; want none: nothing was booted", st.Handshakes-handshakes)
	}
	if last := lastReport(c); !equalReport(*last, want) {
		t.Fatalf("last report %s; want %s", show(last), show(&want))
	}
	pulls := st.Pulls
	d.steps(40)
	if s.Stats().Pulls != pulls {
		t.Fatal("the sensor pulls with no download under way")
	}

	sv.chunk, sv.manifest = nil, true
	d.run("installed once offered again", 400, func() bool { return s.SoftwareVersion() == newer })
}

// TestDownloadResumesInANewSession: a download interrupted by a new
// session goes on from the chunk it needs once the cloud offers the
// manifest again: no chunk is fetched twice.
func TestDownloadResumesInANewSession(t *testing.T) {
	t.Parallel()
	k := releaseKey(t)
	r := sealRelease(t, k, manifest("temperature", newer, 1), image(16<<10, ""))
	s, c, sv := updatePair(t, k, r)
	d := newDriver(t, s, c)
	half := uint32(len(r.chunks) / 2)
	d.run("half way", 400, func() bool { return s.Update().Held == half })

	init, err := s.Initiate(d.now)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := c.handle(init, d.now)
	if _, err := s.Receive(resp, d.now); err != nil {
		t.Fatal(err)
	}
	sv.manifest = true // a new session: the cloud offers the release again
	from := len(c.updates)
	d.run("the offer heard", 20, func() bool { return len(c.updates) > from })
	if first := c.updates[from]; first == nil || !equalReport(*first, payload.UpdateReport{Version: running, Release: r.id(), Next: half, State: payload.UpdateFetching}) {
		t.Fatalf("the first uplink of the new session reported %s; want fetching %x at chunk %d", show(first), r.id(), half)
	}
	if u := s.Update(); u.Held != half || u.State != payload.UpdateFetching {
		t.Fatalf("after the manifest again: %+v; want fetching with %d chunks held", u, half)
	}
	d.run("installed", 400, func() bool { return s.SoftwareVersion() == newer })
	seen := map[uint32]bool{}
	for _, i := range sv.sent {
		if seen[i] {
			t.Fatalf("chunk %d fetched twice (%v): the download started over", i, sv.sent)
		}
		seen[i] = true
	}
}

// TestBadBootRollsBack: an image that verifies but does not boot leaves
// the sensor on the version it ran, reporting RolledBack with BootFailed;
// the same release offered again is refused without a download.
func TestBadBootRollsBack(t *testing.T) {
	t.Parallel()
	k := releaseKey(t)
	r := sealRelease(t, k, manifest("temperature", newer, 1), image(8<<10, "SEALEDSENSE-BAD-BOOT"))
	s, c, sv := updatePair(t, k, r)
	d := newDriver(t, s, c)
	d.run("rolled back", 400, reported(c, payload.UpdateReport{Version: running, Release: r.id(), State: payload.UpdateRolledBack, Reason: release.BootFailed}))
	if u := s.Update(); s.SoftwareVersion() != running || u.Version != running || u.State != payload.UpdateRolledBack || u.Reason != release.BootFailed {
		t.Fatalf("after a bad boot: version %d, status %+v; want version %d, rolled back for BootFailed", s.SoftwareVersion(), u, running)
	}
	sent, pulls := len(sv.sent), s.Stats().Pulls
	sv.manifest = true
	d.run("refusing it again", 40, reported(c, payload.UpdateReport{Version: running, Release: r.id(), State: payload.UpdateRefused, Reason: release.BootFailed}))
	d.steps(20)
	// One pull may tell the refusal at once; none fetches.
	if len(sv.sent) != sent || s.Stats().Pulls > pulls+1 || s.SoftwareVersion() != running {
		t.Fatalf("the failed release offered again: %d more chunks, %d more pulls, version %d; want none, at most the one telling it, %d",
			len(sv.sent)-sent, s.Stats().Pulls-pulls, s.SoftwareVersion(), running)
	}
	// Readings flowed throughout.
	d.readEvery = 0
	d.run("drained", 100, func() bool { return s.Stats().Backlog == 0 })
	if st := s.Stats(); uint64(len(c.seen)) != st.Recorded {
		t.Fatalf("the cloud holds %d of %d readings", len(c.seen), st.Recorded)
	}
}

// TestPullsStopWithoutChunks: a cloud that stops sending chunks gets
// maxIdlePulls pulls, PullInterval apart, then none until it offers the
// release again.
func TestPullsStopWithoutChunks(t *testing.T) {
	t.Parallel()
	k := releaseKey(t)
	r := sealRelease(t, k, manifest("temperature", newer, 1), image(8<<10, ""))
	s, c, sv := updatePair(t, k, r)
	sv.manifest = true
	c.serve = func(up payload.Uplink) *payload.UpdateOffer {
		if sv.manifest {
			return sv.serve(up)
		}
		return nil // the cloud lost the release
	}
	d := newDriver(t, s, c)
	d.readEvery = 0
	s.Record(temp(20))
	d.steps(200)
	if len(d.pulls) != 10 {
		t.Fatalf("%d pulls in %v without a chunk; want 10", len(d.pulls), d.now.Sub(t0))
	}
	for i := 1; i < len(d.pulls); i++ {
		if gap := d.pulls[i].Sub(d.pulls[i-1]); gap < 2*time.Second {
			t.Fatalf("pulls %d and %d went %v apart; want at least 2s", i-1, i, gap)
		}
	}
	// An offer on a reading's reply starts the pulls again.
	sv.manifest = true
	c.serve = sv.serve
	d.readEvery = 6
	d.run("installed", 400, func() bool { return s.SoftwareVersion() == newer })
}

// TestUpdateReportRidesUntilAcknowledged: the report of the version a
// sensor runs rides on its first uplink after a handshake, again while no
// uplink carrying it was acknowledged, and then costs no bytes.
func TestUpdateReportRidesUntilAcknowledged(t *testing.T) {
	t.Parallel()
	s, c, _ := newPairWith(t, sensor.Config{}, credentials.Sensor{DeviceType: "temperature", SoftwareVersion: running})
	connect(t, s, c, t0)
	want := payload.UpdateReport{Version: running, State: payload.UpdateInstalled}
	send := func(at time.Time, deliver bool) *payload.UpdateReport {
		t.Helper()
		s.Record(temp(20))
		pkt, err := s.Next(at)
		if err != nil || pkt == nil {
			t.Fatalf("no packet at %v: %v", at, err)
		}
		reply, _ := c.handle(pkt, at)
		if deliver {
			if _, err := s.Receive(reply, at); err != nil {
				t.Fatal(err)
			}
		}
		return c.updates[len(c.updates)-1]
	}
	for i, step := range []struct {
		deliver bool
		carries bool
	}{
		{false, true}, // the first after the handshake; its reply is lost
		{true, true},  // so the next carries it again, and is acknowledged
		{true, false},
		{true, false},
	} {
		got := send(t0.Add(time.Duration(i)*time.Second), step.deliver)
		if step.carries != (got != nil) || got != nil && !equalReport(*got, want) {
			t.Fatalf("uplink %d reported %s; want %v of %s", i, show(got), step.carries, show(&want))
		}
	}
	init, _ := s.Initiate(t0.Add(5 * time.Second))
	resp, _ := c.handle(init, t0.Add(5*time.Second))
	if _, err := s.Receive(resp, t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := send(t0.Add(6*time.Second), true); got == nil || !equalReport(*got, want) {
		t.Fatalf("the first uplink after a new handshake reported %s; want %s", show(got), show(&want))
	}
	if got := send(t0.Add(7*time.Second), true); got != nil {
		t.Fatalf("an uplink after the report was acknowledged carried %s", show(got))
	}
}

func TestNewRefusesBadReleaseKeys(t *testing.T) {
	t.Parallel()
	_, _, creds := newPairWith(t, sensor.Config{}, credentials.Sensor{DeviceType: "temperature"})
	creds.ReleaseKeys = []credentials.ReleaseKey{{Version: 1, PKIX: []byte("not a key")}}
	if _, err := sensor.New(creds, 1, sensor.Config{}); err == nil {
		t.Fatal("a sensor started with a release key that does not parse")
	}
}
