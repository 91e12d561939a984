package ingest

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
)

func TestCheckMetadata(t *testing.T) {
	t.Parallel()
	published := t0
	up := func(rssi, snr float64, received time.Time) relay.Uplink {
		return relay.Uplink{ConnectorID: "a", RSSI: rssi, SNR: snr, Received: received, Packet: []byte("packet")}
	}
	tests := []struct {
		name  string
		up    relay.Uplink
		field string // the field refused; "" if accepted
	}{
		{"typical", up(-90, 5, published.Add(-80*time.Millisecond)), ""},
		{"at the bounds", up(-150, -40, published.Add(maxReceptionSkew)), ""},
		{"at the other bounds", up(0, 120, published.Add(-maxReceptionAge)), ""},
		{"the simulator's strongest", up(-40, 75, published), ""},
		{"RSSI NaN", up(math.NaN(), 5, published), "rssi"},
		{"RSSI +Inf", up(math.Inf(1), 5, published), "rssi"},
		{"RSSI -Inf", up(math.Inf(-1), 5, published), "rssi"},
		{"RSSI above 0 dBm", up(0.5, 5, published), "rssi"},
		{"RSSI below -150 dBm", up(-151, 5, published), "rssi"},
		{"SNR NaN", up(-90, math.NaN(), published), "snr"},
		{"SNR +Inf", up(-90, math.Inf(1), published), "snr"},
		{"SNR -Inf", up(-90, math.Inf(-1), published), "snr"},
		{"SNR above 120 dB", up(-90, 121, published), "snr"},
		{"SNR below -40 dB", up(-90, -41, published), "snr"},
		{"received past the skew after publishing", up(-90, 5, published.Add(maxReceptionSkew+time.Millisecond)), "received"},
		{"received an hour after publishing", up(-90, 5, published.Add(time.Hour)), "received"},
		{"received too long before publishing", up(-90, 5, published.Add(-maxReceptionAge-time.Millisecond)), "received"},
		{"no reception time", up(-90, 5, time.Time{}), "received"},
		{"reception time in the far future", up(-90, 5, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)), "received"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := checkMetadata(tc.up, published)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var bad *metadataError
			if !errors.As(err, &bad) || bad.field != tc.field {
				t.Fatalf("checkMetadata = %v, want %s refused", err, tc.field)
			}
		})
	}
}

// FuzzCheckMetadata: whatever a connector signs, what passes is finite
// and within the bounds, so no stored link, reception or event can hold
// it.
func FuzzCheckMetadata(f *testing.F) {
	f.Add(-90.0, 5.0, int64(-80e6))
	f.Add(math.Inf(1), 0.0, int64(0))
	f.Add(math.NaN(), math.NaN(), int64(math.MinInt64))
	f.Add(-150.0, 120.0, int64(maxReceptionSkew))
	f.Add(0.0, -40.0, int64(-maxReceptionAge))
	f.Fuzz(func(t *testing.T, rssi, snr float64, offset int64) {
		received := t0.Add(time.Duration(offset))
		if checkMetadata(relay.Uplink{RSSI: rssi, SNR: snr, Received: received}, t0) != nil {
			return
		}
		if math.IsNaN(rssi) || rssi < minRSSI || rssi > maxRSSI || math.IsNaN(snr) || snr < minSNR || snr > maxSNR {
			t.Fatalf("accepted RSSI %v, SNR %v", rssi, snr)
		}
		if received.After(t0.Add(maxReceptionSkew)) || received.Before(t0.Add(-maxReceptionAge)) {
			t.Fatalf("accepted a reception at %v", received)
		}
	})
}
