package store

import (
	"time"

	"cloud.google.com/go/firestore"
)

// Software update statuses of a device (its software shadow). A rollout
// ASSIGNS a release; the device's replies then offer it, and the sensor's
// reports move it to DOWNLOADING, then INSTALLED, or to REFUSED or
// ROLLED_BACK with the sensor's reason. CANCELLED is a release withdrawn
// before the device installed it (the rollout was aborted).
const (
	SoftwareAssigned    = "ASSIGNED"
	SoftwareDownloading = "DOWNLOADING"
	SoftwareInstalled   = "INSTALLED"
	SoftwareRefused     = "REFUSED"
	SoftwareRolledBack  = "ROLLED_BACK"
	SoftwareCancelled   = "CANCELLED"
)

// SoftwareState is a device's software shadow: the version it reports
// running, the release a rollout wants it to run, and where the update
// stands. It lives in the device document (field "software"), so the
// packet's transaction reads and changes it with everything else.
type SoftwareState struct {
	// ReportedVersion is the software version the device last reported.
	ReportedVersion int64 `firestore:"reportedVersion"`
	// Release is the id (hex) of the release assigned, with its version,
	// and the rollout that assigned it; empty when none is.
	Release   string `firestore:"release,omitempty"`
	Version   int64  `firestore:"version,omitempty"`
	RolloutID string `firestore:"rolloutId,omitempty"`
	Status    string `firestore:"status,omitempty"`
	// Next is the chunk the device asked for last, of Chunks.
	Next   int64 `firestore:"next"`
	Chunks int64 `firestore:"chunks"`
	// Offers counts the replies that carried the release's manifest or a
	// chunk of it.
	Offers int64 `firestore:"offers"`
	// Acked and Failed count the replies to the device that arrived and
	// that were lost since it installed the release: the ACK rate a
	// rollout's health gate compares. Not during the download, whose
	// pulls every few seconds have their replies judged sooner than a
	// reading's, which makes more of them look lost on a slow day.
	Acked  int64 `firestore:"acked"`
	Failed int64 `firestore:"failed"`
	// Reason is why the device refused or rolled back (a release.Reason
	// name).
	Reason   string    `firestore:"reason,omitempty"`
	Assigned time.Time `firestore:"assigned,omitempty"`
	Updated  time.Time `firestore:"updated,omitempty"`
}

// Pending reports whether the shadow still wants the device to fetch the
// assigned release.
func (s *SoftwareState) Pending() bool {
	return s != nil && s.Release != "" && (s.Status == SoftwareAssigned || s.Status == SoftwareDownloading)
}

// SoftwareChange is what one packet changes of a device's software
// shadow. Only its set fields are written, so a change never undoes an
// assignment a rollout made meanwhile.
type SoftwareChange struct {
	// Offered counts one more reply carrying the release.
	Offered bool
	// ReportedVersion, if not 0, is the version the device reports.
	ReportedVersion int64
	// Status, if set, is the new status, with Reason.
	Status string
	Reason string
	// Next, if set, is the chunk the device asks for.
	Next *int64
	// Updated is when.
	Updated time.Time
}

func (c SoftwareChange) updates() []firestore.Update {
	at := func(f string) firestore.FieldPath { return firestore.FieldPath{"software", f} }
	var upd []firestore.Update
	if c.Offered {
		upd = append(upd, firestore.Update{FieldPath: at("offers"), Value: firestore.Increment(1)})
	}
	if c.ReportedVersion != 0 {
		upd = append(upd, firestore.Update{FieldPath: at("reportedVersion"), Value: c.ReportedVersion})
	}
	if c.Status != "" {
		upd = append(upd, firestore.Update{FieldPath: at("status"), Value: c.Status},
			firestore.Update{FieldPath: at("reason"), Value: c.Reason})
	}
	if c.Next != nil {
		upd = append(upd, firestore.Update{FieldPath: at("next"), Value: *c.Next})
	}
	if len(upd) > 0 && !c.Updated.IsZero() {
		upd = append(upd, firestore.Update{FieldPath: at("updated"), Value: c.Updated})
	}
	return upd
}
