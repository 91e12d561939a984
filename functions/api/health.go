package api

import (
	"maps"
	"slices"
	"time"

	"github.com/sealedsense/sealedsense/shared/anomaly"
	"github.com/sealedsense/sealedsense/shared/store"
)

// ProjectHealth is a project's fleet health (a SealedSense extension):
// its sensors by state, its open anomalies and its connectors. Every
// figure is a count Firestore answers without reading the devices; the
// devices listed are at most healthListLimit of those with an open
// anomaly, by id.
type ProjectHealth struct {
	Name          string           `json:"name"`
	Devices       deviceStates     `json:"devices"`
	OpenAnomalies openAnomalies    `json:"openAnomalies"`
	Connectors    connectorsHealth `json:"connectors"`
	UpdateTime    time.Time        `json:"updateTime"`
}

// deviceStates counts sensors: OK (heard from, nothing open), ANOMALOUS
// (an anomaly other than silence open), SILENT, NEVER_HEARD.
type deviceStates struct {
	Total   int64            `json:"total"`
	ByState map[string]int64 `json:"byState"`
}

type openAnomalies struct {
	ByKind  map[string]int64 `json:"byKind"`
	Devices []deviceHealth   `json:"devices"`
}

type deviceHealth struct {
	Name      string        `json:"name"`
	Anomalies []openAnomaly `json:"anomalies"`
}

type openAnomaly struct {
	Kind      string         `json:"kind"`
	Severity  string         `json:"severity"`
	StartTime time.Time      `json:"startTime"`
	Evidence  map[string]any `json:"evidence"`
}

type connectorsHealth struct {
	Total   int64 `json:"total"`
	Online  int64 `json:"online"`
	Offline int64 `json:"offline"`
}

// healthListLimit bounds the devices the summary lists.
const healthListLimit = 100

func (s *Service) projectHealth(c *call) (any, error) {
	sum, err := s.db.ProjectHealth(c.r.Context(), c.project, healthListLimit)
	if err != nil {
		return nil, storeErr(err, "project")
	}
	return toProjectHealth(c.project, sum, s.deps.Now().UTC()), nil
}

// toProjectHealth shapes a summary for the API. Pure.
func toProjectHealth(project string, sum store.HealthSummary, now time.Time) ProjectHealth {
	h := ProjectHealth{
		Name: "projects/" + project + "/health",
		Devices: deviceStates{Total: sum.Sensors, ByState: map[string]int64{
			"OK":          max(0, sum.Sensors-sum.NeverHeard-sum.Anomalous),
			"ANOMALOUS":   max(0, sum.Anomalous-sum.Silent),
			"SILENT":      sum.Silent,
			"NEVER_HEARD": sum.NeverHeard,
		}},
		OpenAnomalies: openAnomalies{ByKind: map[string]int64{}, Devices: []deviceHealth{}},
		Connectors:    connectorsHealth{Total: sum.Connectors, Online: sum.ConnectorsOnline, Offline: max(0, sum.Connectors-sum.ConnectorsOnline)},
		UpdateTime:    now,
	}
	for _, k := range anomaly.Kinds() {
		h.OpenAnomalies.ByKind[string(k)] = sum.ByKind[k]
	}
	for _, id := range slices.Sorted(maps.Keys(sum.Open)) {
		dh := deviceHealth{Name: "projects/" + project + "/devices/" + id, Anomalies: []openAnomaly{}}
		for _, k := range store.SortedKinds(sum.Open[id]) {
			o := sum.Open[id][k]
			dh.Anomalies = append(dh.Anomalies, openAnomaly{Kind: string(k), Severity: o.Severity, StartTime: o.Since, Evidence: o.Evidence})
		}
		h.OpenAnomalies.Devices = append(h.OpenAnomalies.Devices, dh)
	}
	return h
}
