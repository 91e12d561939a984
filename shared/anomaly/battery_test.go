package anomaly_test

import (
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
)

// level is one battery reading of a scenario: read at hours after t0, sent
// in a packet at sent hours (0: at once), and the changes expected.
type level struct {
	hours float64
	pct   int
	want  string
	sent  float64
}

func hours(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }

func runLevels(t *testing.T, typ string, s anomaly.Settings, levels []level) *tracker {
	t.Helper()
	var tr tracker
	var st anomaly.Traffic
	for i, l := range levels {
		sent := hours(max(l.hours, l.sent))
		var ch []anomaly.Change
		st, ch = anomaly.ObservePacket(st, tr.open, anomaly.Packet{
			At: sent, DeviceType: typ, Battery: []anomaly.BatteryReading{{Percentage: l.pct, At: hours(l.hours)}},
		}, s)
		if got := join(tr.fold(t, ch)); got != join(splitWant(l.want)) {
			t.Errorf("reading %d (%d%% at +%vh): changes %s, want %s", i, l.pct, l.hours, got, join(splitWant(l.want)))
		}
	}
	return &tr
}

func TestBatteryDrain(t *testing.T) {
	day := 24.0
	cases := []struct {
		name   string
		typ    string
		s      anomaly.Settings
		levels []level
	}{
		{"a normal slow drain", "temperature", anomaly.Settings{}, []level{
			{0, 90, "", 0}, {5 * day, 89, "", 0}, {40 * day, 88, "", 0}, {400 * day, 80, "", 0}}},
		{"rounding noise of one point", "temperature", anomaly.Settings{}, []level{
			{0, 87, "", 0}, {1, 86, "", 0}, {2, 87, "", 0}, {3, 86, "", 0}, {4, 88, "", 0}, {5, 86, "", 0}}},
		{"two points at once are not a drain", "temperature", anomaly.Settings{}, []level{
			{0, 90, "", 0}, {1, 88, "", 0}}},
		{"a fast drain opens once", "temperature", anomaly.Settings{}, []level{
			{0, 90, "", 0}, {day, 86, "+BATTERY_DRAIN", 0}, {2 * day, 80, "", 0}, {3 * day, 70, "", 0}}},
		{"a replaced battery clears it", "co2", anomaly.Settings{}, []level{
			{0, 40, "", 0}, {12, 30, "+BATTERY_DRAIN", 0}, {20, 100, "-BATTERY_DRAIN", 0}, {30, 99, "", 0}}},
		{"a battery replaced below its old level clears it", "temperature", anomaly.Settings{}, []level{
			{0, 100, "", 0}, {1, 45, "+BATTERY_DRAIN", 0}, {2, 30, "", 0}, {3, 97, "-BATTERY_DRAIN", 0}, {4, 97, "", 0}}},
		{"back to a normal drain clears it after MinDrop worth of days", "temperature", anomaly.Settings{}, []level{
			{0, 90, "", 0}, {12, 85, "+BATTERY_DRAIN", 0}, {2 * day, 85, "", 0}, {3*day + 11, 85, "", 0}, {3*day + 12, 85, "-BATTERY_DRAIN", 0},
			{4 * day, 84, "", 0}}},
		{"a drain that goes on stays open", "temperature", anomaly.Settings{}, []level{
			{0, 90, "", 0}, {12, 85, "+BATTERY_DRAIN", 0}, {5 * day, 75, "", 0}, {10 * day, 60, "", 0}}},
		{"a late backfilled reading older than the reference says nothing", "temperature", anomaly.Settings{}, []level{
			{10, 90, "", 0}, {5, 99, "", 11}, {20, 90, "", 0}, {9, 70, "", 21}}},
		{"years of normal drain do not hide a fast drain now", "temperature", anomaly.Settings{}, []level{
			{0, 95, "", 0}, {300 * day, 90, "", 0}, {600 * day, 85, "", 0}, {601 * day, 81, "+BATTERY_DRAIN", 0}}},
		{"a type with a faster normal curve", "co2", anomaly.Settings{NormalDrain: map[string]float64{"co2": 5}}, []level{
			{0, 90, "", 0}, {day, 82, "", 0}, {2 * day, 65, "+BATTERY_DRAIN", 0}}},
		{"absurd levels are ignored", "temperature", anomaly.Settings{}, []level{
			{0, 90, "", 0}, {1, -5, "", 0}, {2, 250, "", 0}, {3, 90, "", 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runLevels(t, tc.typ, tc.s, tc.levels) })
	}
}

// TestBatteryEvidence: what an operator reads about a draining battery.
func TestBatteryEvidence(t *testing.T) {
	tr := runLevels(t, "temperature", anomaly.Settings{}, []level{{0, 90, "", 0}, {24, 84, "+BATTERY_DRAIN", 0}})
	o := tr.open[anomaly.BatteryDrain]
	want := map[string]any{"from": int64(90), "to": int64(84), "pointsPerDay": 6.0, "normalPointsPerDay": 1.0, "fromAt": t0}
	for k, v := range want {
		if got := o.Evidence[k]; got != v {
			t.Errorf("evidence %s = %v, want %v (all: %v)", k, got, v, o.Evidence)
		}
	}
	if o.Severity != anomaly.Warning {
		t.Errorf("severity %s, want WARNING", o.Severity)
	}
}

// TestBatteryReadingsInOnePacket: readings of one packet are judged in the
// order they were read, whatever order the packet lists them in.
func TestBatteryReadingsInOnePacket(t *testing.T) {
	var tr tracker
	st, ch := anomaly.ObservePacket(anomaly.Traffic{}, nil, anomaly.Packet{At: hours(48), Battery: []anomaly.BatteryReading{
		{Percentage: 84, At: hours(24)}, {Percentage: 90, At: hours(0)}, {Percentage: 83, At: hours(30)},
	}}, anomaly.Settings{})
	if got := join(tr.fold(t, ch)); got != "+BATTERY_DRAIN" {
		t.Errorf("changes %s, want +BATTERY_DRAIN", got)
	}
	if st.BatteryRef != 90 {
		t.Errorf("reference %d, want the earliest reading, 90", st.BatteryRef)
	}
}
