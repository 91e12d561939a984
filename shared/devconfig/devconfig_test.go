package devconfig

import (
	"errors"
	"testing"

	"github.com/sealedsense/sealedsense/shared/devicetype"
)

func ptr(v int32) *int32 { return &v }

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, typ string
		c         Config
		want      Reason
	}{
		{"temperature every minute", "temperature", Config{SampleInterval: 60, ReportInterval: 300, Batch: 5}, Applied},
		{"sampling faster than the duty cycle", "temperature", Config{SampleInterval: 5}, OutOfRange},
		{"reporting less than daily", "humidity", Config{ReportInterval: 86401}, OutOfRange},
		{"a batch over one packet", "temperature", Config{Batch: 33}, OutOfRange},
		{"touch batches nothing", "touch", Config{Batch: 2}, OutOfRange},
		{"a counter's heartbeat", "touchCounter", Config{SampleInterval: 300, ReportInterval: 60}, Applied},
		{"a counter sampling too often", "proximityCounter", Config{SampleInterval: 60}, OutOfRange},
		{"motion batches nothing", "motion", Config{Batch: 2}, OutOfRange},
		{"a desk's heartbeat", "deskOccupancy", Config{SampleInterval: 3600}, Applied},
		{"contact has fixed power", "contact", Config{TxPower: ptr(0)}, Unsupported},
		{"a connector takes none", "ccon", Config{SampleInterval: 600}, Unsupported},
		{"co2 sampling under its sensor's warm-up", "co2", Config{SampleInterval: 30}, OutOfRange},
		{"co2 transmit power in range", "co2", Config{TxPower: ptr(10)}, Applied},
		{"co2 transmit power too high", "co2", Config{TxPower: ptr(20)}, OutOfRange},
		{"temperature has fixed power", "temperature", Config{TxPower: ptr(0)}, Unsupported},
		{"an unknown type", "toaster", Config{SampleInterval: 60}, Unsupported},
		{"nothing set", "temperature", Config{}, OutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check(tc.typ, tc.c)
			if got != tc.want || (tc.want == Applied) != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("Check(%s, %+v) = %v, %v; want %v", tc.typ, tc.c, got, err, tc.want)
			}
		})
	}
}

// TestEverySensorTypeHasLimits: each sensor type of the catalogue can be
// configured, within defaults of its own ranges.
func TestEverySensorTypeHasLimits(t *testing.T) {
	t.Parallel()
	for _, typ := range devicetype.Sensors() {
		t.Run(typ, func(t *testing.T) {
			l, ok := For(typ)
			if !ok {
				t.Fatal("no limits")
			}
			defaults := Config{SampleInterval: l.DefaultSample, ReportInterval: l.DefaultReport, Batch: l.DefaultBatchSize}
			if r, err := Check(typ, defaults); err != nil {
				t.Fatalf("the defaults %+v: %v %v", defaults, r, err)
			}
		})
	}
	if len(limits) != len(devicetype.Sensors()) {
		t.Fatalf("limits for %d types; the catalogue has %d sensor types", len(limits), len(devicetype.Sensors()))
	}
}
