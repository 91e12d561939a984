package ingest

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/store"
)

// configStep is what one data packet does with a device's configuration
// shadow: the change to store, the configuration its reply carries, and
// the status the desired version reached (for a configurationStatus
// event), each empty when there is none.
type configStep struct {
	change     *store.ConfigChange
	send       *payload.Config
	transition string
	reason     devconfig.Reason
}

// planConfig decides, from the shadow the packet's transaction read and
// the report the uplink carries, what the packet changes. The report is
// judged first, so a packet that confirms the desired version gets a
// reply without it. A pending configuration rides every reply until the
// sensor confirms or refuses it: a reply may be lost, and carrying it
// costs a few bytes, never a downlink of its own.
func planConfig(cs *store.ConfigState, rep *payload.ConfigReport, now time.Time) configStep {
	var st configStep
	if cs == nil {
		return st
	}
	next := *cs
	if rep != nil {
		st = judgeReport(&next, rep, now)
	}
	if next.Status == store.ConfigPending && next.DesiredVersion > next.ReportedVersion {
		if st.change == nil {
			st.change = &store.ConfigChange{}
		}
		st.change.Sent, st.change.Updated = now, now
		st.send = toReply(next.Desired, next.DesiredVersion)
	}
	return st
}

// judgeReport applies a sensor's report to cs. The desired version
// confirmed makes it IN_SYNC, refused REJECTED; an older version only
// moves the reported version forward, leaving a pending change pending.
// A version newer than the desired one was never sent: a sensor claiming
// it (faulty, or a clone replaying someone else's numbers) must not stop
// the pending configuration from being sent, so it is ignored.
func judgeReport(cs *store.ConfigState, rep *payload.ConfigReport, now time.Time) configStep {
	var st configStep
	v := int64(rep.Version)
	switch {
	case v == cs.DesiredVersion && rep.Reason == 0:
		if cs.Status == store.ConfigInSync && cs.ReportedVersion == v {
			return st // the sensor says so in every uplink
		}
		reported := cs.Desired
		st.change = &store.ConfigChange{ReportedVersion: v, Reported: &reported, Status: store.ConfigInSync, Updated: now}
		cs.ReportedVersion, cs.Reported, cs.Status = v, reported, store.ConfigInSync
		st.transition = store.ConfigInSync
	case v == cs.DesiredVersion:
		if cs.Status == store.ConfigRejected || cs.ReportedVersion >= v {
			return st
		}
		st.reason = devconfig.Reason(rep.Reason)
		st.change = &store.ConfigChange{Status: store.ConfigRejected, RejectReason: int(rep.Reason), Updated: now}
		cs.Status = store.ConfigRejected
		st.transition = store.ConfigRejected
	case rep.Reason == 0 && v > cs.ReportedVersion && v < cs.DesiredVersion:
		st.change = &store.ConfigChange{ReportedVersion: v, Updated: now}
		cs.ReportedVersion = v
	}
	return st
}

// toReply is a desired configuration as a sealed reply carries it.
func toReply(c devconfig.Config, version int64) *payload.Config {
	return &payload.Config{Version: uint32(version), ReportInterval: c.ReportInterval, SampleInterval: c.SampleInterval, Batch: c.Batch, TxPower: c.TxPower}
}

// configEvent is the configurationStatus event of a transition, nil if
// the device has no project to tell.
func (s *Service) configEvent(project, deviceID, status string, version int64, reason devconfig.Reason, now time.Time) (*storedEvent, error) {
	if project == "" {
		return nil, nil
	}
	why := ""
	if status == store.ConfigRejected {
		why = reason.String()
	}
	se, err := s.stored(event.ConfigurationStatusFor(project, deviceID, status, version, why, now), project, deviceID, now)
	if err != nil {
		return nil, err
	}
	return &se, nil
}

// expireConfigs marks the configurations still PENDING ConfigExpireAfter
// after they were requested as EXPIRED, each with a configurationStatus
// event; it returns how many.
func (s *Service) expireConfigs(ctx context.Context) (int, error) {
	ids, err := s.db.StaleConfigurations(ctx, s.deps.Now().Add(-s.cfg.ConfigExpireAfter))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		expired, err := s.expireConfig(ctx, id)
		if err != nil {
			return n, err
		}
		if expired {
			n++
			s.log.Info("configuration expired", "deviceId", id)
		}
	}
	return n, nil
}

// expireConfig expires one device's configuration if, read again in the
// transaction, it is still pending and stale, and publishes its event.
func (s *Service) expireConfig(ctx context.Context, id string) (bool, error) {
	var ev *storedEvent
	var project string
	var expired bool
	s.n.commits.Add(1)
	err := s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		ev, expired = nil, false
		now := s.deps.Now()
		d, err := s.db.DeviceIn(tx, id)
		if err != nil {
			return err
		}
		cs := d.Configuration
		if cs == nil || cs.Status != store.ConfigPending || now.Sub(cs.Requested) < s.cfg.ConfigExpireAfter {
			return nil // confirmed, refused or changed since the query
		}
		change := store.DeviceChange{Config: &store.ConfigChange{Status: store.ConfigExpired, Updated: now}}
		if err := s.db.UpdateDevice(tx, id, change); err != nil {
			return err
		}
		expired = true
		if ev, err = s.configEvent(d.ProjectID, id, store.ConfigExpired, cs.DesiredVersion, 0, now); err != nil || ev == nil {
			return err
		}
		project = d.ProjectID
		return s.db.CreateEvent(tx, ev.id, ev.doc)
	})
	if err != nil {
		return false, fmt.Errorf("device %s: expire configuration: %w", id, err)
	}
	if ev != nil {
		if err := s.publishEvents(ctx, project, id, [][]byte{ev.doc.JSON}); err != nil {
			return false, err
		}
	}
	return expired, nil
}
