package event

import "time"

type configurationStatusJSON struct {
	Status     string `json:"status"`
	Version    int64  `json:"version"`
	Reason     string `json:"reason,omitempty"`
	UpdateTime string `json:"updateTime"`
}

// ConfigurationStatusFor is a device's configurationStatus event: its
// configuration version reached status (IN_SYNC, REJECTED with the
// sensor's reason, EXPIRED). Its id is derived from the device, the
// status and the version, so each transition is one event however often
// a retried transaction or a redelivery makes it again.
func ConfigurationStatusFor(project, deviceID, status string, version int64, reason string, at time.Time) Event {
	e, _ := build(project, deviceID, ConfigurationStatusID(deviceID, status, version), "configurationStatus", at,
		configurationStatusJSON{Status: status, Version: version, Reason: reason, UpdateTime: stamp(at)})
	return e
}

// ConfigurationStatusID is the id of ConfigurationStatusFor's event.
func ConfigurationStatusID(deviceID, status string, version int64) string {
	return DerivedID(deviceID, "configurationStatus/"+status, uint64(version))
}
