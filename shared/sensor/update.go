package sensor

import (
	"bytes"
	"crypto/ecdsa"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/release"
)

// Software updates. The cloud offers a release's signed manifest in a
// reply, then its chunks, one per reply. A sensor that accepts the manifest
// (release.Begin: a trusted key, its own device type, a newer version it may
// update to) keeps the assembly across sessions, rekeys and connectors, so
// a download interrupted anywhere resumes where it stopped once the cloud
// offers the manifest again. When no reading is due it pulls: an uplink
// with no reading and a report naming the next chunk it needs, at most one
// every PullInterval, and none after maxIdlePulls pulls brought no chunk,
// until the next offer. Readings and backfill always go first.
//
// A complete image whose SHA-256 is not the signed one is refused and
// forgotten. A verified one is "booted": the sensor restarts into the new
// version, with a new handshake, keeping its keys, reading numbers and
// backlog, as flash keeps them. An image that begins with release.BadBootMagic
// stands for one that does not boot: the sensor rolls back to the version
// it ran and refuses that release from then on.
//
// The report costs bytes only when it says something new: after each boot
// and handshake, and after each change, until an uplink carrying it is
// acknowledged; pulls always carry it.

// maxIdlePulls is how many pulls may bring no chunk before the sensor
// stops pulling until the next offer: a cloud that has stopped serving the
// release is not asked forever.
const maxIdlePulls = 10

// maxCarriers bounds the uplinks remembered as carrying the report due: an
// ACK for an older one is only a report sent once more.
const maxCarriers = 16

// outcome is a change of update state: what it is, why, and which release
// it concerns (zero: unknown, as for a manifest that does not open).
type outcome struct {
	state   payload.UpdateState
	reason  release.Reason
	release [16]byte
}

// updater is a sensor's software: the version it runs, the release it
// fetches, and what it owes the cloud in reports.
type updater struct {
	trusted    map[uint32]*ecdsa.PublicKey
	deviceType string
	version    uint32
	asm        *release.Assembly // the release being fetched, or nil
	installed  [16]byte          // the release that installed version, if known
	failed     [16]byte          // a release that did not boot: never fetched again

	last outcome // the latest change, for UpdateStatus
	// due: a report rides on every uplink until one carrying it is
	// acknowledged (carriers lists those sent). eventDue: that report
	// states last, a Refused, Installed or RolledBack, rather than the
	// plain state.
	due, eventDue bool
	carriers      []uint64

	pullAt    time.Time // when the last pull went out
	idlePulls int       // pulls since a chunk arrived
}

func newUpdater(trusted map[uint32]*ecdsa.PublicKey, deviceType string, version uint32) updater {
	return updater{trusted: trusted, deviceType: deviceType, version: version, due: true}
}

// change records a change of state, and makes its report due.
func (u *updater) change(o outcome) {
	u.last = o
	u.due, u.eventDue, u.carriers = true, o.state != payload.UpdateFetching, nil
}

// newSession is told that a handshake completed: the report is due on the
// first uplink, and the counters of uplinks that carried it are gone.
func (u *updater) newSession() {
	u.due, u.carriers = true, nil
}

// report is the update report as of now.
func (u *updater) report() payload.UpdateReport {
	r := payload.UpdateReport{Version: u.version, State: payload.UpdateInstalled}
	id := u.installed
	if u.asm != nil {
		r.State, id = payload.UpdateFetching, u.asm.Manifest().ReleaseID
	}
	if u.eventDue {
		r.State, r.Reason, id = u.last.state, u.last.reason, u.last.release
	}
	if id != ([16]byte{}) {
		r.Release = bytes.Clone(id[:])
	}
	// Next names a chunk of the release the report names, and only while
	// that download goes on.
	if u.asm != nil && id == u.asm.Manifest().ReleaseID && (r.State == payload.UpdateFetching || r.State == payload.UpdateRefused) {
		r.Next, _ = u.asm.NextMissing(0)
	}
	return r
}

// pending is the report an uplink with readings carries: the report while
// one is due, else nil (no bytes).
func (u *updater) pending() *payload.UpdateReport {
	if !u.due {
		return nil
	}
	r := u.report()
	return &r
}

// carried records that the uplink sent under counter carried the report.
func (u *updater) carried(counter uint64) {
	if len(u.carriers) == maxCarriers {
		u.carriers = u.carriers[1:]
	}
	u.carriers = append(u.carriers, counter)
}

// acked is told an uplink counter the cloud acknowledged.
func (u *updater) acked(counter uint64) {
	for _, c := range u.carriers {
		if c == counter {
			u.due, u.eventDue, u.carriers = false, false, nil
			return
		}
	}
}

// pullDue reports whether a pull may go out now: while fetching, and
// once in each session for an outcome (installed, refused, rolled back)
// not yet sent, which would otherwise wait for the next reading, up to a
// reporting interval away, and hold the rollout's stage that long.
func (u *updater) pullDue(now time.Time, every time.Duration) bool {
	fetching := u.asm != nil && u.idlePulls < maxIdlePulls
	telling := u.eventDue && len(u.carriers) == 0
	return (fetching || telling) && (u.pullAt.IsZero() || now.Sub(u.pullAt) >= every)
}

// pulled records a pull sent under counter.
func (u *updater) pulled(counter uint64, now time.Time) {
	u.carried(counter)
	u.pullAt = now
	u.idlePulls++
}

// offer handles an update offer. It reports whether the sensor booted an
// image, so that it restarts (its session is then over).
func (u *updater) offer(o payload.UpdateOffer) (restart bool) {
	if o.Manifest != nil {
		u.offerManifest(o.Manifest)
		return false
	}
	return u.offerChunk(o.Chunk)
}

func (u *updater) offerManifest(signed []byte) {
	// Open first, to know the release: a manifest of the download under
	// way keeps its progress, and one of the release just installed is
	// the cloud not yet knowing, not a downgrade to report.
	m, err := release.Open(signed, u.trusted)
	if err != nil {
		u.refuse(err, [16]byte{})
		return
	}
	switch {
	case u.asm != nil && u.asm.Manifest() == m:
		u.idlePulls = 0
		return
	case m.ReleaseID == u.installed && m.Version == u.version:
		return
	case m.ReleaseID == u.failed:
		u.change(outcome{payload.UpdateRefused, release.BootFailed, m.ReleaseID})
		return
	}
	a, err := release.Begin(signed, u.trusted, u.deviceType, u.version)
	if err != nil {
		u.refuse(err, m.ReleaseID)
		return
	}
	// A newer offer replaces a download under way: the cloud changed its
	// mind.
	u.asm, u.idlePulls, u.pullAt = a, 0, time.Time{}
	u.change(outcome{state: payload.UpdateFetching, release: m.ReleaseID})
}

func (u *updater) offerChunk(b []byte) (restart bool) {
	if u.asm == nil {
		return false // nothing under way: a late copy of a chunk
	}
	id := u.asm.Manifest().ReleaseID
	c, err := release.ParseChunk(b)
	if err == nil {
		err = u.asm.Add(c)
	}
	if err != nil {
		u.refuse(err, id) // the download goes on
		return false
	}
	u.idlePulls = 0
	if !u.asm.Done() {
		return false
	}
	return u.install()
}

// install checks the complete image and boots it.
func (u *updater) install() (restart bool) {
	m := u.asm.Manifest()
	img, err := u.asm.Image()
	u.asm = nil
	if err != nil {
		u.refuse(err, m.ReleaseID)
		return false
	}
	if bytes.HasPrefix(img, []byte(release.BadBootMagic)) {
		// It booted and failed; the boot loader went back to the
		// version that runs.
		u.failed = m.ReleaseID
		u.change(outcome{payload.UpdateRolledBack, release.BootFailed, m.ReleaseID})
		return true
	}
	u.version, u.installed = m.Version, m.ReleaseID
	u.change(outcome{state: payload.UpdateInstalled, release: m.ReleaseID})
	return true
}

func (u *updater) refuse(err error, id [16]byte) {
	reason := release.ReasonOf(err)
	if reason == 0 {
		reason = release.Malformed // every release error is a refusal; be safe
	}
	u.change(outcome{payload.UpdateRefused, reason, id})
}

// UpdateStatus is where a sensor's software update stands.
type UpdateStatus struct {
	Version uint32 // the software version it runs
	// State is Fetching while a download runs, else the last outcome
	// since boot (Installed, Refused, RolledBack), or 0 for none.
	State payload.UpdateState
	// Release is the release fetched, or the one State concerns.
	Release [16]byte
	// Reason is the last refusal's or rollback's, kept while a download
	// goes on after a refused chunk.
	Reason release.Reason
	// Held and Chunks count the chunks received and in all, while
	// fetching.
	Held, Chunks uint32
}

func (u *updater) status() UpdateStatus {
	st := UpdateStatus{Version: u.version, State: u.last.state, Release: u.last.release, Reason: u.last.reason}
	if u.asm != nil {
		m := u.asm.Manifest()
		st.State, st.Release = payload.UpdateFetching, m.ReleaseID
		st.Chunks, st.Held = m.Chunks(), m.Chunks()
		for i, ok := u.asm.NextMissing(0); ok; i, ok = u.asm.NextMissing(i + 1) {
			st.Held--
		}
	}
	return st
}

// SoftwareVersion is the software version the sensor runs (0: the one it
// was made with). Saved as credentials.Sensor.SoftwareVersion, it is what
// a restarted sensor runs.
func (s *Sensor) SoftwareVersion() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upd.version
}

// Update is where the sensor's software update stands.
func (s *Sensor) Update() UpdateStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upd.status()
}
