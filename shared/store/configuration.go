package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/devconfig"
)

// ErrStale is a change made against a configuration version that is no
// longer the device's: the caller read it before someone else changed it.
var ErrStale = errors.New("store: stale configuration version")

// ConfigRequest is a customer's change of a device's desired
// configuration.
type ConfigRequest struct {
	// Project is the caller's project; a device of another is ErrNotFound.
	Project string
	Desired devconfig.Config
	// IfVersion, when not nil, is the desired version the caller last
	// read; the change applies only if it is still the device's.
	IfVersion *int64
	Time      time.Time
	// Requested, when set, makes the change's configurationStatus event
	// for the new desired version; it is stored in the same transaction,
	// so a change and its event exist together or not at all.
	Requested func(version int64) (id string, e Event, err error)
}

// ConfigurationState is the device's configuration shadow as it stands, the
// state of a device that never had one (IN_SYNC at version 0) for nil.
func (d Device) ConfigurationState() ConfigState {
	if d.Configuration == nil {
		return ConfigState{Status: ConfigInSync}
	}
	return *d.Configuration
}

// SetDesiredConfiguration makes r.Desired the device's desired
// configuration, one version above the last, PENDING until the sensor
// confirms it, and returns the new state with the device's type. The
// device is read in the same transaction, so the version check and the
// type's ranges hold for what is written: a configuration the type
// refuses wraps devconfig.ErrInvalid and is not stored; a stale
// r.IfVersion is ErrStale; a missing device, or another project's, is
// ErrNotFound; an emulated device is ErrEmulated.
func (db *DB) SetDesiredConfiguration(ctx context.Context, id string, r ConfigRequest) (ConfigState, error) {
	var out ConfigState
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, err := db.DeviceIn(tx, id)
		if err != nil {
			return err
		}
		if d.ProjectID == "" || d.ProjectID != r.Project {
			return ErrNotFound
		}
		if d.Emulated {
			return ErrEmulated
		}
		cur := d.ConfigurationState()
		if r.IfVersion != nil && *r.IfVersion != cur.DesiredVersion {
			return fmt.Errorf("%w: version %d, not %d", ErrStale, cur.DesiredVersion, *r.IfVersion)
		}
		if _, err := devconfig.Check(d.Type, r.Desired); err != nil {
			return err
		}
		out = ConfigState{
			Desired: r.Desired, DesiredVersion: cur.DesiredVersion + 1,
			Reported: cur.Reported, ReportedVersion: cur.ReportedVersion,
			Status: ConfigPending, Requested: r.Time, Updated: r.Time,
		}
		if r.Requested != nil {
			evID, ev, err := r.Requested(out.DesiredVersion)
			if err != nil {
				return err
			}
			if err := db.CreateEvent(tx, evID, ev); err != nil {
				return err
			}
		}
		return tx.Update(db.deviceRef(id), []firestore.Update{{Path: "configuration", Value: out}})
	})
	if err != nil {
		return ConfigState{}, wrap("configure device "+id, err)
	}
	return out, nil
}

// ProjectDeviceIDsLabelled lists, in id order, at most limit ids of the
// project's devices that carry every label key=value of labels.
func (db *DB) ProjectDeviceIDsLabelled(ctx context.Context, project string, labels [][2]string, limit int) ([]string, error) {
	q := db.DevicesQuery(DeviceFilter{Project: project, LabelIs: labels}).Select().Limit(limit)
	docs, err := q.Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("devices of project "+project+" by label", err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Ref.ID
	}
	return ids, nil
}
