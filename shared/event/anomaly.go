package event

import "time"

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
// device, the kind, the state and when the anomaly started, so each
// transition is one event however often a retried transaction makes it.
func DeviceAnomalyFor(project, deviceID, kind, state, severity string, evidence map[string]any, since, at time.Time) Event {
	if evidence == nil {
		evidence = map[string]any{}
	}
	e, _ := build(project, deviceID, DeviceAnomalyID(deviceID, kind, state, since), "deviceAnomaly", at,
		deviceAnomalyJSON{Kind: kind, State: state, Severity: severity, Evidence: evidence, StartTime: stamp(since), UpdateTime: stamp(at)})
	return e
}

// DeviceAnomalyID is the id of DeviceAnomalyFor's event.
func DeviceAnomalyID(deviceID, kind, state string, since time.Time) string {
	return DerivedID(deviceID, "deviceAnomaly/"+kind+"/"+state, uint64(since.UnixNano()))
}
