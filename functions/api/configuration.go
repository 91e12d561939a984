package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/devconfig"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Configuration is a device's configuration shadow (a SealedSense
// extension): what the customer wants, what the sensor last confirmed,
// and where the change stands. Etag is the desired version, which a
// change names in If-Match.
type Configuration struct {
	Name            string           `json:"name"`
	Desired         devconfig.Config `json:"desired"`
	DesiredVersion  int64            `json:"desiredVersion"`
	Reported        devconfig.Config `json:"reported"`
	ReportedVersion int64            `json:"reportedVersion"`
	// Status is IN_SYNC, PENDING, REJECTED or EXPIRED.
	Status       string     `json:"status"`
	Attempts     int64      `json:"attempts"`
	LastSent     *time.Time `json:"lastSent,omitempty"`
	RejectReason string     `json:"rejectReason,omitempty"`
	RequestTime  *time.Time `json:"requestTime,omitempty"`
	UpdateTime   *time.Time `json:"updateTime,omitempty"`
	Etag         string     `json:"etag"`
}

type updateConfiguration struct {
	Desired devconfig.Config `json:"desired"`
}

type configureDevices struct {
	Desired devconfig.Config `json:"desired"`
	// DeviceIDs or LabelSelector ("key=value,...", every pair must
	// match) names the devices.
	DeviceIDs     []string `json:"deviceIds,omitempty"`
	LabelSelector string   `json:"labelSelector,omitempty"`
}

type configureOutcome struct {
	DeviceID string `json:"deviceId"`
	// Status is PENDING, or error with Error saying why.
	Status         string       `json:"status"`
	Error          *errorStatus `json:"error,omitempty"`
	DesiredVersion int64        `json:"desiredVersion,omitempty"`
}

type configureResult struct {
	Devices []configureOutcome `json:"devices"`
}

// maxConfigure bounds the devices one devices:configure call changes.
const maxConfigure = 1000

func etag(version int64) string { return `"v` + strconv.FormatInt(version, 10) + `"` }

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func toConfiguration(project, id string, st store.ConfigState) Configuration {
	out := Configuration{
		Name:    "projects/" + project + "/devices/" + id + "/configuration",
		Desired: st.Desired, DesiredVersion: st.DesiredVersion, Reported: st.Reported, ReportedVersion: st.ReportedVersion,
		Status: st.Status, Attempts: st.Attempts, LastSent: optTime(st.LastSent),
		RequestTime: optTime(st.Requested), UpdateTime: optTime(st.Updated), Etag: etag(st.DesiredVersion),
	}
	if st.RejectReason != 0 {
		out.RejectReason = devconfig.Reason(st.RejectReason).String()
	}
	return out
}

func (s *Service) getConfiguration(c *call) (any, error) {
	id := c.r.PathValue("device")
	d, err := s.device(c.r.Context(), c.project, id)
	if err != nil {
		return nil, err
	}
	st := d.ConfigurationState()
	c.w.Header().Set("ETag", etag(st.DesiredVersion))
	return toConfiguration(c.project, id, st), nil
}

func errPrecondition(msg string) error {
	return &apiError{code: http.StatusPreconditionFailed, msg: msg}
}

// parseIfMatch reads an If-Match header: nil when absent or "*" (the
// device exists, or the change is not found anyway), else the version
// its etag names. An etag that is not ours can never match.
func parseIfMatch(h string) (*int64, error) {
	h = strings.TrimSpace(h)
	if h == "" || h == "*" {
		return nil, nil
	}
	v, ok := strings.CutPrefix(strings.TrimPrefix(h, "W/"), `"v`)
	v, ok2 := strings.CutSuffix(v, `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || !ok2 || err != nil || n < 0 {
		return nil, errPrecondition("If-Match does not name a version of this configuration")
	}
	return &n, nil
}

// checkDesired refuses what no device type takes: a configuration that
// sets nothing.
func checkDesired(c devconfig.Config) error {
	if c == (devconfig.Config{}) {
		return errBadRequest("desired must set sampleIntervalSeconds, reportIntervalSeconds, batchSize or txPowerDbm")
	}
	return nil
}

// invalidMessage is what a caller sees of a configuration its device's
// type refuses.
func invalidMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "devconfig: "); i >= 0 {
		msg = msg[i+len("devconfig: "):]
	}
	return msg
}

// emulatedNoConfig refuses a configuration of an emulated device.
const emulatedNoConfig = "an emulated device has no configuration: no sensor would ever confirm it"

// configStoreErr maps the store's refusals of a configuration change.
func configStoreErr(err error) error {
	switch {
	case errors.Is(err, devconfig.ErrInvalid):
		return errBadRequest("%s", invalidMessage(err))
	case errors.Is(err, store.ErrStale):
		return errPrecondition("the configuration changed since it was read: read it again for its etag")
	case errors.Is(err, store.ErrEmulated):
		return errConflict(emulatedNoConfig)
	}
	return storeErr(err, "device")
}

func (s *Service) updateConfiguration(c *call) (any, error) {
	var req updateConfiguration
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkDesired(req.Desired); err != nil {
		return nil, err
	}
	ifVersion, err := parseIfMatch(c.r.Header.Get("If-Match"))
	if err != nil {
		return nil, err
	}
	id := c.r.PathValue("device")
	d, err := s.device(c.r.Context(), c.project, id)
	if err != nil {
		return nil, err
	}
	// Checked here for the message, and again by the store against the
	// device it writes.
	if _, err := devconfig.Check(d.Type, req.Desired); err != nil {
		return nil, errBadRequest("%s", invalidMessage(err))
	}
	st, err := s.setDesired(c.r.Context(), c.project, id, req.Desired, ifVersion, c.eventRetention())
	if err != nil {
		return nil, configStoreErr(err)
	}
	c.w.Header().Set("ETag", etag(st.DesiredVersion))
	return toConfiguration(c.project, id, st), nil
}

// parseLabelSelector reads "key=value,key=value": every pair must match.
func parseLabelSelector(sel string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range strings.Split(sel, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || !event.ValidLabelKey(k) || len(v) > 255 {
			return nil, errBadRequest("labelSelector must be key=value pairs separated by commas")
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// checkConfigure checks a devices:configure request, and returns its
// label selector's pairs when it has one.
func checkConfigure(req configureDevices) ([][2]string, error) {
	if err := checkDesired(req.Desired); err != nil {
		return nil, err
	}
	switch {
	case (len(req.DeviceIDs) == 0) == (req.LabelSelector == ""):
		return nil, errBadRequest("give either deviceIds or labelSelector")
	case len(req.DeviceIDs) > maxConfigure:
		return nil, errBadRequest("deviceIds may name at most %d devices", maxConfigure)
	case req.LabelSelector != "":
		return parseLabelSelector(req.LabelSelector)
	}
	return nil, nil
}

// configureTargets lists the devices a devices:configure request names,
// each once, in the order given (by id for a selector).
func (s *Service) configureTargets(c *call, req configureDevices, labels [][2]string) ([]string, error) {
	if labels == nil {
		seen := map[string]bool{}
		var ids []string
		for _, name := range req.DeviceIDs {
			if _, id := deviceID(name); !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		return ids, nil
	}
	ids, err := s.db.ProjectDeviceIDsLabelled(c.r.Context(), c.project, labels, maxConfigure+1)
	if err != nil {
		return nil, errUnavailable(err)
	}
	if len(ids) > maxConfigure {
		return nil, errBadRequest("labelSelector names more than %d devices: narrow it", maxConfigure)
	}
	return ids, nil
}

func (s *Service) configureDevices(c *call) (any, error) {
	var req configureDevices
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	labels, err := checkConfigure(req)
	if err != nil {
		return nil, err
	}
	ids, err := s.configureTargets(c, req, labels)
	if err != nil {
		return nil, err
	}
	var valid []string
	for _, id := range ids {
		if validDocID(id) {
			valid = append(valid, id)
		}
	}
	devs, err := s.db.Devices(c.r.Context(), valid)
	if err != nil {
		return nil, storeErr(err, "device")
	}
	out := configureResult{Devices: make([]configureOutcome, 0, len(ids))}
	for _, id := range ids {
		o, err := s.configureOne(c, id, devs, req.Desired)
		if err != nil {
			return nil, err
		}
		out.Devices = append(out.Devices, o)
	}
	return out, nil
}

// configureOne changes one device of a devices:configure call; the
// device's own refusals are its outcome, a failing store the call's error.
func (s *Service) configureOne(c *call, id string, devs map[string]store.Device, desired devconfig.Config) (configureOutcome, error) {
	refused := func(code, msg string) configureOutcome {
		return configureOutcome{DeviceID: id, Status: "error", Error: &errorStatus{Code: code, Message: msg}}
	}
	d, ok := devs[id]
	if !ok || d.ProjectID != c.project {
		return refused("NOT_FOUND", "device not found"), nil
	}
	if _, err := devconfig.Check(d.Type, desired); err != nil {
		return refused("INVALID_ARGUMENT", invalidMessage(err)), nil
	}
	st, err := s.setDesired(c.r.Context(), c.project, id, desired, nil, c.eventRetention())
	switch {
	case store.IsNotFound(err):
		return refused("NOT_FOUND", "device not found"), nil
	case errors.Is(err, devconfig.ErrInvalid):
		return refused("INVALID_ARGUMENT", invalidMessage(err)), nil
	case errors.Is(err, store.ErrEmulated):
		return refused("FAILED_PRECONDITION", emulatedNoConfig), nil
	case err != nil:
		return configureOutcome{}, errUnavailable(err)
	}
	return configureOutcome{DeviceID: id, Status: st.Status, DesiredVersion: st.DesiredVersion}, nil
}

// setDesired stores a desired configuration with its REQUESTED event and
// publishes the event for webhooks.
func (s *Service) setDesired(ctx context.Context, project, id string, desired devconfig.Config, ifVersion *int64, retention time.Duration) (store.ConfigState, error) {
	now := s.deps.Now().UTC()
	m := &madeEvent{project: project, device: id, retention: retention}
	st, err := s.db.SetDesiredConfiguration(ctx, id, store.ConfigRequest{
		Project: project, Desired: desired, IfVersion: ifVersion, Time: now,
		Requested: func(version int64) (string, store.Event, error) {
			return m.doc(event.ConfigurationStatusFor(project, id, store.ConfigRequested, version, "", now), now)
		},
	})
	if err != nil {
		return st, err
	}
	s.publish(ctx, m)
	return st, nil
}
