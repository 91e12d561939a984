package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Firestore collections the pipeline writes besides the registry's.
const (
	sessionsCollection   = "sessions"
	receptionsCollection = "receptions"
	eventsCollection     = "events"
)

// sessionDoc is a live session. The session (keys, counters, replay window)
// is stored only envelope-sealed; the envelope's KEK is unwrapped once per
// instance, so opening it costs no KMS call.
type sessionDoc struct {
	DeviceID  string    `firestore:"deviceId"`
	ProjectID string    `firestore:"projectId"`
	Sealed    []byte    `firestore:"sealed"`
	Created   time.Time `firestore:"created"`
	ExpireAt  time.Time `firestore:"expireAt"` // TTL field
}

func sessionID(index uint32) string { return strconv.FormatUint(uint64(index), 10) }

// sessionAAD binds a sealed session to its document.
func sessionAAD(index uint32) []byte { return []byte("sealedsense/session/" + sessionID(index)) }

// hearer is one connector's reception of a packet.
type hearer struct {
	ConnectorID string    `firestore:"id"`
	RSSI        float64   `firestore:"rssi"`
	SNR         float64   `firestore:"snr"`
	Received    time.Time `firestore:"received"`
}

// reception records one unique packet: who heard it, what was answered and
// through whom. It is the deduplication point across connectors, and what a
// Pub/Sub redelivery resumes from.
type reception struct {
	DeviceID   string `firestore:"deviceId"`
	ProjectID  string `firestore:"projectId"`
	PacketHash []byte `firestore:"packetHash"`
	Owner      string `firestore:"owner"` // the connector whose copy claimed the packet
	// FirstReceived is the owner copy's reception time at its connector:
	// other copies count if their own reception time is within the
	// collection window of it, however late Pub/Sub delivers them.
	FirstReceived time.Time `firestore:"firstReceived"`
	FirstSeen     time.Time `firestore:"firstSeen"` // when the claim was made; the reply waits a window from here
	Hearers       []hearer  `firestore:"hearers"`
	Reply         []byte    `firestore:"reply"`     // the sealed reply, sent after the window
	ReplyCtr      int64     `firestore:"replyCtr"`  // its downlink counter, for ACK feedback
	EventIDs      []string  `firestore:"eventIds"`  // to republish after a crash
	Via           string    `firestore:"via"`       // the connector chosen for the reply
	Committed     bool      `firestore:"committed"` // the packet's transaction is done
	Done          bool      `firestore:"done"`      // reply published
	Late          int64     `firestore:"late"`      // copies that came after the window
	ExpireAt      time.Time `firestore:"expireAt"`  // TTL field
}

func packetHash(pkt []byte) []byte {
	h := sha256.Sum256(pkt)
	return h[:]
}

func handshakeReceptionID(pkt []byte) string {
	return "h-" + hex.EncodeToString(packetHash(pkt)[:16])
}

func transportReceptionID(index uint32, counter uint64) string {
	return "p-" + sessionID(index) + "-" + strconv.FormatUint(counter, 10)
}

// eventDoc is a stored event: the DT JSON exactly as customers receive it,
// plus the fields queries filter and order on.
type eventDoc struct {
	ProjectID string    `firestore:"projectId"`
	DeviceID  string    `firestore:"deviceId"`
	EventType string    `firestore:"eventType"`
	Timestamp time.Time `firestore:"timestamp"`
	JSON      []byte    `firestore:"json"`
	ExpireAt  time.Time `firestore:"expireAt"` // TTL field
	// StoredAt is left zero here and set by Firestore when the write
	// commits (a server timestamp). With the document id it orders a
	// project's events for the stream, the same on every instance, so
	// "after this event" is well defined (functions/stream).
	StoredAt time.Time `firestore:"storedAt,serverTimestamp"`
}

// link is what the cloud has learnt about reaching a device through one
// connector: recent signal, and how many replies sent through it arrived.
type link struct {
	RSSI     float64   `firestore:"rssi"` // exponentially weighted
	Replies  int64     `firestore:"replies"`
	Acked    int64     `firestore:"acked"`
	Failed   int64     `firestore:"failed"`
	LastSeen time.Time `firestore:"lastSeen"`
}

// pendingReply is the last reply sent to a device, judged when the device
// next speaks: its uplink lists the reply counters it received.
type pendingReply struct {
	Via     string    `firestore:"via"`
	Counter int64     `firestore:"counter"`
	Sent    time.Time `firestore:"sent"`
}

// deviceState is the part of the device document the pipeline reads.
type deviceState struct {
	ProjectID         string          `firestore:"projectId"`
	Type              string          `firestore:"type"`
	LastHandshakeNs   int64           `firestore:"lastHandshakeNs"` // ns: Firestore timestamps keep only µs
	Links             map[string]link `firestore:"links"`
	Pending           *pendingReply   `firestore:"pendingReply"`
	LastNetworkStatus time.Time       `firestore:"lastNetworkStatus"`
}
