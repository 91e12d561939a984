package event

import "time"

type softwareUpdateStatusJSON struct {
	Status          string `json:"status"`
	ReleaseID       string `json:"releaseId"`
	Version         int64  `json:"version"`
	SoftwareVersion int64  `json:"softwareVersion"`
	Reason          string `json:"reason,omitempty"`
	UpdateTime      string `json:"updateTime"`
}

// SoftwareUpdate is one step of a device's software update: the release
// (its id and the version it brings), the status the device reached
// (DOWNLOADING, INSTALLED, REFUSED, ROLLED_BACK, CANCELLED), the version
// it runs, and the device's reason for a refusal or a roll-back.
type SoftwareUpdate struct {
	Status          string
	ReleaseID       string
	Version         int64
	SoftwareVersion int64
	Reason          string
}

// SoftwareUpdateStatusFor is a device's softwareUpdateStatus event. Its id
// is derived from the device, the release and the status, so each step
// is one event however often a retried transaction or a redelivery makes
// it again.
func SoftwareUpdateStatusFor(project, deviceID string, u SoftwareUpdate, at time.Time) Event {
	e, _ := build(project, deviceID, SoftwareUpdateStatusID(deviceID, u.ReleaseID, u.Status), "softwareUpdateStatus", at,
		softwareUpdateStatusJSON{Status: u.Status, ReleaseID: u.ReleaseID, Version: u.Version, SoftwareVersion: u.SoftwareVersion, Reason: u.Reason, UpdateTime: stamp(at)})
	return e
}

// SoftwareUpdateStatusID is the id of SoftwareUpdateStatusFor's event.
func SoftwareUpdateStatusID(deviceID, releaseID, status string) string {
	return DerivedID(deviceID, "softwareUpdateStatus/"+releaseID+"/"+status, 0)
}
