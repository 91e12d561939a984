package connector

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/release"
)

// ErrSwitchOver is what Run returns after a verified release was staged
// and the queue drained: the supervisor starts the new version, handing it
// the radio socket, whose frames wait in the kernel meanwhile.
var ErrSwitchOver = errors.New("connector: switching over to a new release")

// Software is what a connector runs and how it installs a release.
type Software struct {
	// Version is the version running.
	Version uint32
	// ReleaseKeys are the release-signing key versions it trusts.
	ReleaseKeys map[uint32]*ecdsa.PublicKey
	// Report is the outcome of the last update, from the boot (INSTALLED
	// or ROLLED_BACK), or nil.
	Report *payload.UpdateReport
	// Stage keeps a verified image to run at the next start.
	Stage func(release.Manifest, []byte) error
	// Healthy, if set, is called once, after the first status got through:
	// a release on trial has proved itself.
	Healthy func()
}

// updater is a connector's software update in flight.
type updater struct {
	mu     sync.Mutex
	asm    *release.Assembly
	report payload.UpdateReport
}

func newUpdater(sw Software) *updater {
	u := &updater{report: payload.UpdateReport{Version: sw.Version, State: payload.UpdateInstalled}}
	if r := sw.Report; r != nil && r.Version == sw.Version {
		u.report = *r
	}
	return u
}

// current is the report the next status carries.
func (u *updater) current() *payload.UpdateReport {
	u.mu.Lock()
	defer u.mu.Unlock()
	r := u.report
	return &r
}

// software takes in a Software envelope. A refusal is reported in the next
// status, sent at once, as is each step of the download, which is how the
// connector asks for the next chunks. A complete, verified release is
// staged and the connector switches over; its new version's first status
// tells the cloud.
func (c *Connector) software(data []byte) {
	sw, err := relay.OpenSoftware(data, c.ChannelKeys(), c.cfg.ID, time.Now())
	switch {
	case errors.Is(err, relay.ErrNotAddressed):
		c.notForMe.Add(1)
		return
	case err == nil && c.cfg.Software.Stage == nil:
		err = errors.New("this connector has no way to install a release")
		fallthrough
	case err != nil:
		c.rejected.Add(1)
		c.log.Warn("refusing a software envelope", "error", err)
		return
	}
	done, image, m := c.update.take(c.cfg.Software, sw, c.log)
	if !done {
		c.askStatus()
		return
	}
	if err := c.cfg.Software.Stage(m, image); err != nil {
		c.log.Error("staging a verified release failed; it is fetched again", "version", m.Version, "error", err)
		c.update.reset(c.cfg.Software.Version)
		c.askStatus()
		return
	}
	c.log.Info("release verified and staged: switching over", "version", m.Version, "releaseId", hex.EncodeToString(m.ReleaseID[:]))
	c.switchOver(ErrSwitchOver)
}

// take applies sw to the update and says whether it is complete, with the
// verified image and its manifest.
func (u *updater) take(cfg Software, sw relay.Software, log *slog.Logger) (bool, []byte, release.Manifest) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if sw.Manifest != nil {
		u.begin(cfg, sw.Manifest, log)
		return false, nil, release.Manifest{}
	}
	if u.asm == nil {
		return false, nil, release.Manifest{} // chunks of no release it accepted
	}
	m := u.asm.Manifest()
	for _, b := range sw.Chunks {
		ch, err := release.ParseChunk(b)
		if err == nil {
			err = u.asm.Add(ch)
		}
		if err != nil {
			u.refuse(cfg.Version, m.ReleaseID[:], err, log)
			return false, nil, release.Manifest{}
		}
	}
	if next, ok := u.asm.NextMissing(0); ok {
		u.report = payload.UpdateReport{Version: cfg.Version, State: payload.UpdateFetching, Release: m.ReleaseID[:], Next: next}
		return false, nil, release.Manifest{}
	}
	image, err := u.asm.Image()
	if err != nil {
		u.refuse(cfg.Version, m.ReleaseID[:], err, log)
		return false, nil, release.Manifest{}
	}
	return true, image, m
}

// begin accepts a signed manifest, or refuses it. The manifest of the
// release already being fetched changes nothing: the cloud sends it again
// until the status says the download started.
func (u *updater) begin(cfg Software, signed []byte, log *slog.Logger) {
	m, err := release.Open(signed, cfg.ReleaseKeys)
	if err == nil && u.asm != nil && u.asm.Manifest().ReleaseID == m.ReleaseID {
		return
	}
	if err == nil && m.Version == cfg.Version && u.report.State == payload.UpdateInstalled && bytes.Equal(u.report.Release, m.ReleaseID[:]) {
		// The release it runs, offered before the switch-over reached
		// the cloud: nothing to do, and no refusal to report.
		return
	}
	var id []byte
	if err == nil {
		id = m.ReleaseID[:]
		var asm *release.Assembly
		if asm, err = release.Begin(signed, cfg.ReleaseKeys, release.ConnectorTarget, cfg.Version); err == nil {
			u.asm = asm
			u.report = payload.UpdateReport{Version: cfg.Version, State: payload.UpdateFetching, Release: id}
			return
		}
	}
	u.refuse(cfg.Version, id, err, log)
}

func (u *updater) refuse(version uint32, id []byte, err error, log *slog.Logger) {
	reason := release.ReasonOf(err)
	if reason == 0 {
		reason = release.Malformed
	}
	log.Warn("refusing a release", "reason", reason.String(), "error", err)
	u.asm = nil
	u.report = payload.UpdateReport{Version: version, State: payload.UpdateRefused, Release: id, Reason: reason}
}

func (u *updater) reset(version uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asm = nil
	u.report = payload.UpdateReport{Version: version, State: payload.UpdateInstalled}
}

// askStatus has the heartbeat loop send a status now.
func (c *Connector) askStatus() {
	select {
	case c.statusNow <- struct{}{}:
	default:
	}
}

// confirmHealthy tells Software.Healthy, once, that a status got through.
func (c *Connector) confirmHealthy() {
	if h := c.cfg.Software.Healthy; h != nil {
		c.healthy.Do(h)
	}
}

// runContext is ctx, cancelled too when the connector switches over.
func (c *Connector) runContext(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	c.switchOver = cancel
	return ctx
}
