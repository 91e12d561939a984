package event

import (
	"strconv"
	"time"
)

// Anomaly states: an anomaly is reported once when it starts and once when
// it clears.
const (
	AnomalyOpen    = "OPEN"
	AnomalyCleared = "CLEARED"
)

type deviceAnomalyJSON struct {
	Kind       string         `json:"kind"`
	State      string         `json:"state"`
	Severity   string         `json:"severity"`
	Evidence   map[string]any `json:"evidence"`
	StartTime  string         `json:"startTime"`
	UpdateTime string         `json:"updateTime"`
}

// DeviceAnomalyFor is a device's deviceAnomaly event: fleet-health
// detection found kind starting (OPEN) or ending (CLEARED), with what it
// saw. DT has no such event; it follows DT's shape so DT clients read it
// as an event of a type they do not know. Its id is derived from the
// device, the kind, the state, when the anomaly started and when this
// transition was seen: the device's stored state, not the id, keeps a
// transition from being made twice.
func DeviceAnomalyFor(project, deviceID, kind, state, severity string, evidence map[string]any, since, at time.Time) Event {
	if evidence == nil {
		evidence = map[string]any{}
	}
	e, _ := build(project, deviceID, DeviceAnomalyID(deviceID, kind, state, since, at), "deviceAnomaly", at,
		deviceAnomalyJSON{Kind: kind, State: state, Severity: severity, Evidence: evidence, StartTime: stamp(since), UpdateTime: stamp(at)})
	return e
}

// DeviceAnomalyID is the id of DeviceAnomalyFor's event.
func DeviceAnomalyID(deviceID, kind, state string, since, at time.Time) string {
	return DerivedID(deviceID, "deviceAnomaly/"+kind+"/"+state+"/"+strconv.FormatInt(since.UnixNano(), 10), uint64(at.UnixNano()))
}
