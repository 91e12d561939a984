package registry

// Collection names, kept only until every caller has moved to shared/store.
const (
	DevicesCollection    = "devices"
	DeviceKeysCollection = "deviceKeys"
	KitsCollection       = "kits"
	ConnectorsCollection = "connectors"
	CloudCollection      = "cloud"
)
