package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/expiring"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/store"
)

// softwareStep is what one data packet does with a device's software
// shadow: the change to store, what its reply offers, and the update
// step to tell (a softwareUpdateStatus event), each empty when none.
type softwareStep struct {
	change *store.SoftwareChange
	offer  softwareOffer
	update *event.SoftwareUpdate
}

// softwareOffer is the piece of a release a reply carries: its manifest,
// or chunk index; release "" for none.
type softwareOffer struct {
	release  string
	manifest bool
	chunk    uint32
}

// planSoftware decides, from the shadow the packet's transaction read and
// the report the uplink carries, what the packet changes and what its
// reply offers. The report is judged first. A pending release rides every
// reply, the manifest until the sensor says it is fetching, then the
// chunk it asks for: a reply may be lost, and the sensor asks again.
func planSoftware(sw *store.SoftwareState, rep *payload.UpdateReport, now time.Time) softwareStep {
	var st softwareStep
	next := store.SoftwareState{}
	if sw != nil {
		next = *sw
	}
	if rep != nil {
		st = judgeSoftware(&next, rep, now)
	}
	if !next.Pending() {
		return st
	}
	if st.change == nil {
		st.change = &store.SoftwareChange{Updated: now}
	}
	st.change.Offered = true
	st.offer = softwareOffer{release: next.Release, manifest: next.Status == store.SoftwareAssigned}
	if !st.offer.manifest {
		st.offer.chunk = uint32(min(max(next.Next, 0), 1<<31))
	}
	return st
}

// judgeSoftware applies a sensor's report to sw. Only a report about the
// assigned release moves its status; the version the sensor runs is
// recorded whatever the release. Any refusal ends the assignment, a
// refused chunk too (the sensor would go on): the cloud offers only the
// assigned release's own chunks, so one the sensor refuses means the
// release or its delivery is broken, and its rollout must pause.
func judgeSoftware(sw *store.SoftwareState, rep *payload.UpdateReport, now time.Time) softwareStep {
	var st softwareStep
	ch := &store.SoftwareChange{Updated: now}
	if v := int64(rep.Version); v != sw.ReportedVersion && v != 0 {
		ch.ReportedVersion, sw.ReportedVersion = v, v
	}
	ours := sw.Release != "" && hex.EncodeToString(rep.Release) == sw.Release
	status, reason := "", ""
	switch {
	case !sw.Pending():
	case rep.State == payload.UpdateInstalled && sw.ReportedVersion >= sw.Version:
		status = store.SoftwareInstalled
	case !ours:
	case rep.State == payload.UpdateFetching:
		n := int64(rep.Next)
		if n != sw.Next {
			ch.Next, sw.Next = &n, n
		}
		if sw.Status == store.SoftwareAssigned {
			status = store.SoftwareDownloading
		}
	case rep.State == payload.UpdateRefused:
		status, reason = store.SoftwareRefused, rep.Reason.String()
	case rep.State == payload.UpdateRolledBack:
		status, reason = store.SoftwareRolledBack, rep.Reason.String()
	}
	if status != "" && status != sw.Status {
		ch.Status, ch.Reason, sw.Status, sw.Reason = status, reason, status, reason
		st.update = &event.SoftwareUpdate{Status: status, ReleaseID: sw.Release, Version: sw.Version, SoftwareVersion: sw.ReportedVersion, Reason: reason}
	}
	if ch.ReportedVersion != 0 || ch.Status != "" || ch.Next != nil {
		st.change = ch
	}
	return st
}

// Image cache bounds: releases are few and at most release.MaxImage each.
const (
	maxCachedReleases = 8
	releaseCacheTTL   = time.Hour
)

// releaseImages serves the pieces of releases: the signed manifest from
// the releases collection and chunks of the image from Cloud Storage,
// each release read once per instance.
type releaseImages struct {
	db   *store.DB
	read func(ctx context.Context, bucket, object string) ([]byte, error)
	log  *slog.Logger

	mu    sync.Mutex // one load per release at a time
	cache *expiring.Cache[string, *servedRelease]
}

type servedRelease struct {
	signed []byte
	chunks [][]byte // encoded release.Chunk
}

func newReleaseImages(db *store.DB, read func(ctx context.Context, bucket, object string) ([]byte, error), now func() time.Time, log *slog.Logger) *releaseImages {
	return &releaseImages{db: db, read: read, log: log, cache: expiring.New[string, *servedRelease](maxCachedReleases, releaseCacheTTL, now)}
}

// errNoImages is a release offered by an ingest built without a way to
// read images.
var errNoImages = errors.New("ingest: no release image reader configured")

// offer is the reply's UpdateOffer for o, nil when there is none.
func (r *releaseImages) offer(ctx context.Context, o softwareOffer) (*payload.UpdateOffer, error) {
	if o.release == "" {
		return nil, nil
	}
	rel, err := r.get(ctx, o.release)
	if err != nil {
		return nil, err
	}
	if o.manifest {
		return &payload.UpdateOffer{Manifest: rel.signed}, nil
	}
	if int(o.chunk) >= len(rel.chunks) {
		// A sensor asking past the end is finished or confused: the
		// manifest restarts it.
		return &payload.UpdateOffer{Manifest: rel.signed}, nil
	}
	return &payload.UpdateOffer{Chunk: rel.chunks[o.chunk]}, nil
}

func (r *releaseImages) get(ctx context.Context, id string) (*servedRelease, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rel, ok := r.cache.Get(id); ok {
		return rel, nil
	}
	if r.read == nil {
		return nil, errNoImages
	}
	doc, err := r.db.Release(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", id, err)
	}
	image, err := r.read(ctx, doc.Bucket, doc.Object)
	if err != nil {
		return nil, fmt.Errorf("release %s image: %w", id, err)
	}
	chunks, err := encodeChunks(doc, image)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", id, err)
	}
	if sum := sha256.Sum256(image); hex.EncodeToString(sum[:]) != hex.EncodeToString(doc.ImageSHA256) {
		// Served all the same: the device is the one that verifies, and
		// its refusal is what pauses the rollout.
		r.log.Error("release image does not match its signed manifest; devices will refuse it", "alert", "release-image-mismatch", "releaseId", id, "object", doc.Object)
	}
	rel := &servedRelease{signed: doc.Signed, chunks: chunks}
	r.cache.Put(id, rel)
	return rel, nil
}

// encodeChunks cuts image into the release's chunks as they go on air.
func encodeChunks(doc store.Release, image []byte) ([][]byte, error) {
	id, err := hex.DecodeString(doc.ID)
	if err != nil || len(id) != 16 || doc.ChunkSize == 0 || len(image) != int(doc.Size) {
		return nil, fmt.Errorf("release document %q does not describe its image of %d bytes", doc.ID, len(image))
	}
	var out [][]byte
	for off := 0; off < len(image); off += int(doc.ChunkSize) {
		c := release.Chunk{Index: uint32(len(out)), Data: image[off:min(len(image), off+int(doc.ChunkSize))]}
		copy(c.ReleaseID[:], id)
		b, err := c.Marshal()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// softwareOffer is the reply's piece of the device's pending release. A
// release that cannot be served now (its image unreadable) is logged and
// left out: the packet's readings matter more, and the next reply offers
// it again.
func (s *Service) softwareOffer(ctx context.Context, deviceID string, o softwareOffer) *payload.UpdateOffer {
	offer, err := s.releases.offer(ctx, o)
	if err != nil {
		s.log.Error("software release not offered", "deviceId", deviceID, "releaseId", o.release, "error", err.Error())
		return nil
	}
	return offer
}

// storeSoftwareEvent creates the softwareUpdateStatus event of the
// packet's software step, if any, among the packet's events, and reports
// the step and the version the device runs in its reported state.
func (s *Service) storeSoftwareEvent(tx *firestore.Transaction, p *packetWrite, d store.Device, sw softwareStep, w *eventWrites, now time.Time) error {
	if sw.change != nil && sw.change.ReportedVersion != 0 {
		w.reported["softwareVersion"] = softwareVersionData(sw.change.ReportedVersion, now)
	}
	if sw.update == nil || d.ProjectID == "" {
		return nil
	}
	se, err := s.stored(event.SoftwareUpdateStatusFor(d.ProjectID, p.deviceID, *sw.update, now), d.ProjectID, p.deviceID, now)
	if err != nil {
		return err
	}
	if err := s.db.CreateEvent(tx, se.id, se.doc); err != nil {
		return err
	}
	w.reported["softwareUpdateStatus"] = se.data
	p.update = &se
	return nil
}

// softwareVersionData is a device's reported softwareVersion.
func softwareVersionData(version int64, now time.Time) map[string]any {
	return map[string]any{"version": version, "updateTime": now.UTC().Format(event.TimeFormat)}
}
