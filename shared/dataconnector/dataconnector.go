// Package dataconnector is the logic of Data Connectors (customer webhooks)
// and of their deliveries, shared by the API that manages them and the
// deliver function that sends events to them: statuses, which events a
// connector takes, the body it is sent, the retry schedule, the headers it
// may set, and the latency histograms. shared/store holds their documents.
package dataconnector

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Connector statuses, as DT names them.
const (
	Active         = "ACTIVE"
	UserDisabled   = "USER_DISABLED"
	SystemDisabled = "SYSTEM_DISABLED"
)

// Connector is a Data Connector's document (store.DataConnector), with
// the logic over it.
type Connector store.DataConnector

// SecretAAD binds a wrapped signatureSecret to its connector, so a wrapped
// secret copied to another connector's document does not unwrap.
func SecretAAD(project, id string) []byte {
	return []byte("dataconnector:" + project + "/" + id)
}

// Wants says whether the connector takes events of type t.
func (c Connector) Wants(t string) bool {
	return len(c.Events) == 0 || slices.Contains(c.Events, t)
}

// UndeliveredSince is where a backfill of this connector starts: the
// first failure of its last failing streak, or when it was disabled.
func (c Connector) UndeliveredSince() (time.Time, bool) {
	var t time.Time
	for _, p := range []*time.Time{c.FailingSince, c.DisabledAt} {
		if p != nil && (t.IsZero() || p.Before(t)) {
			t = *p
		}
	}
	return t, !t.IsZero()
}

// Metadata is the body's metadata, as DT sends it.
type Metadata struct {
	DeviceID      string `json:"deviceId"`
	ProjectID     string `json:"projectId"`
	DeviceType    string `json:"deviceType"`
	ProductNumber string `json:"productNumber"`
}

type body struct {
	Event    json.RawMessage   `json:"event"`
	Labels   map[string]string `json:"labels"`
	Metadata Metadata          `json:"metadata"`
}

// Body is DT's delivery body: the event as stored, the device labels the
// connector forwards, and the device's metadata.
func (c Connector) Body(event []byte, labels map[string]string, meta Metadata) ([]byte, error) {
	if !json.Valid(event) {
		return nil, errors.New("dataconnector: event is not JSON")
	}
	fwd := map[string]string{}
	for _, k := range c.Labels {
		if v, ok := labels[k]; ok {
			fwd[k] = v
		}
	}
	return json.Marshal(body{Event: event, Labels: fwd, Metadata: meta})
}

// Delivery states.
const (
	Pending   = "pending"
	Delivered = "delivered"
	// Expired: retried until the retry limit (12 h) without success.
	Expired = "expired"
	// Skipped: the connector was disabled or deleted before delivery;
	// a backfill sets it pending again.
	Skipped = "skipped"
)

// Backoff is the wait before attempt n+1 after n failed attempts:
// exponential from base, capped at max, with "equal jitter" (half fixed,
// half random) so that gaps never shrink from one attempt to the next
// while synchronized failures still spread out.
func Backoff(n int, base, max time.Duration, r *rand.Rand) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	half := d / 2
	return half + time.Duration(r.Int64N(int64(half)+1))
}

// reserved are the request headers a connector's custom headers may not
// set: ours (signatures, body framing) and hop-by-hop ones.
func reserved(name string) bool {
	n := strings.ToLower(name)
	if strings.HasPrefix(n, "webhook-") || strings.HasPrefix(n, "x-dt-") || strings.HasPrefix(n, "x-sealedsense-") || strings.HasPrefix(n, "proxy-") {
		return true
	}
	switch n {
	case "host", "content-length", "content-type", "content-encoding", "transfer-encoding", "connection",
		"keep-alive", "te", "trailer", "upgrade", "user-agent", "expect", "cookie":
		return true
	}
	return false
}

// Header limits.
const (
	MaxHeaders    = 20
	maxHeaderName = 64
	maxHeaderVal  = 1024
)

// CheckHeaders refuses custom headers that would override ours or that
// are not valid HTTP.
func CheckHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return fmt.Errorf("at most %d headers", MaxHeaders)
	}
	for k, v := range h {
		if k == "" || len(k) > maxHeaderName || strings.IndexFunc(k, func(r rune) bool { return !tokenChar(r) }) >= 0 {
			return fmt.Errorf("header name %q is not a valid HTTP token", k)
		}
		if reserved(k) {
			return fmt.Errorf("header %q is set by the platform and cannot be overridden", k)
		}
		if len(v) > maxHeaderVal || strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("header %q: value too long or contains a line break", k)
		}
	}
	return nil
}

func tokenChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

// Job kinds.
const (
	// Backfill queues the events of a time range a connector missed.
	Backfill = "backfill"
	// Sync queues, for every device, the latest event of each type again.
	Sync = "sync"
)
