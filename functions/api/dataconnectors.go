package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
)

// DataConnector is DT's data connector resource. httpConfig.signatureSecret
// is write-only: it is answered only by the create that generated it.
// failingSince and disabledTime are our extensions.
type DataConnector struct {
	Name         string     `json:"name"`
	DisplayName  string     `json:"displayName"`
	Type         string     `json:"type"`
	Status       string     `json:"status"`
	Events       []string   `json:"events"`
	Labels       []string   `json:"labels"`
	HTTPConfig   HTTPConfig `json:"httpConfig"`
	FailingSince *time.Time `json:"failingSince,omitempty"`
	DisabledTime *time.Time `json:"disabledTime,omitempty"`
	CreateTime   time.Time  `json:"createTime"`
	UpdateTime   time.Time  `json:"updateTime"`
}

// HTTPConfig is where and how a connector delivers.
type HTTPConfig struct {
	URL string `json:"url"`
	// SignatureSecret is always present, as DT's clients read it, and empty
	// but in the answer that creates it: the secret is shown once.
	SignatureSecret string            `json:"signatureSecret"`
	Headers         map[string]string `json:"headers"`
}

type listConnectors struct {
	DataConnectors []DataConnector `json:"dataConnectors"`
	NextPageToken  string          `json:"nextPageToken"`
}

type createConnector struct {
	DisplayName string     `json:"displayName"`
	Type        string     `json:"type"`
	Status      string     `json:"status"`
	Events      []string   `json:"events"`
	Labels      []string   `json:"labels"`
	HTTPConfig  HTTPConfig `json:"httpConfig"`
}

type updateConnector struct {
	DisplayName *string           `json:"displayName,omitempty"`
	Status      *string           `json:"status,omitempty"`
	Events      *[]string         `json:"events,omitempty"`
	Labels      *[]string         `json:"labels,omitempty"`
	HTTPConfig  *updateHTTPConfig `json:"httpConfig,omitempty"`
}

type updateHTTPConfig struct {
	URL             *string            `json:"url,omitempty"`
	SignatureSecret *string            `json:"signatureSecret,omitempty"`
	Headers         *map[string]string `json:"headers,omitempty"`
}

type connectorMetrics struct {
	Metrics struct {
		SuccessCount int64  `json:"successCount"`
		ErrorCount   int64  `json:"errorCount"`
		Latency99p   string `json:"latency99p"` // protobuf Duration JSON, e.g. "0.125s"
	} `json:"metrics"`
}

// Limits of the resource.
const (
	maxConnectors     = 50
	minSecretLen      = 16
	maxSecretLen      = 256
	maxURLLen         = 2048
	maxDisplayNameLen = 200
	metricsPeriod     = 3 * time.Hour
)

// The data connector handlers each decode the request, check it with a
// pure function (validateCreate, checkConnectorUpdate, checkHTTPConfigUpdate)
// and make one call into shared/store; wrapping a new signatureSecret with
// KMS is the handler's, just before that call.

func toConnector(project, id string, d store.DataConnector) DataConnector {
	return DataConnector{Name: "projects/" + project + "/dataconnectors/" + id, DisplayName: d.DisplayName, Type: "HTTP_PUSH",
		Status: d.Status, Events: nonNil(d.Events), Labels: nonNil(d.Labels),
		HTTPConfig:   HTTPConfig{URL: d.URL, Headers: nonNilMap(d.Headers)},
		FailingSince: d.FailingSince, DisabledTime: d.DisabledAt, CreateTime: d.CreateTime, UpdateTime: d.UpdateTime}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// checkConnectorURL refuses what can never be delivered to: anything but
// https (http to loopback in local mode), and, in the cloud, a literal
// internal address. Names are checked again at every delivery, as what
// they resolve to can change.
func checkConnectorURL(raw string, local bool) error {
	if len(raw) > maxURLLen {
		return errBadRequest("httpConfig.url is longer than %d", maxURLLen)
	}
	d := &egress.Dialer{AllowLoopback: local}
	u, err := d.CheckURL(raw)
	if err != nil {
		return errBadRequest("httpConfig.url: %s", errors.Unwrap(err))
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		if err := d.Allowed(a); err != nil {
			return errBadRequest("httpConfig.url: %s", errors.Unwrap(err))
		}
	}
	return nil
}

func checkConnectorLists(events, labels []string) error {
	for _, t := range events {
		if !event.KnownType(t) {
			return errBadRequest("events: unknown event type %q", t)
		}
	}
	for _, k := range labels {
		if !event.ValidLabelKey(k) {
			return errBadRequest("labels: invalid label key %q", k)
		}
	}
	return nil
}

func checkSecret(secret string) error {
	if len(secret) < minSecretLen || len(secret) > maxSecretLen {
		return errBadRequest("httpConfig.signatureSecret must be %d to %d characters", minSecretLen, maxSecretLen)
	}
	return nil
}

func checkStatus(status string) error {
	if status != dataconnector.Active && status != dataconnector.UserDisabled {
		return errBadRequest("status must be ACTIVE or USER_DISABLED")
	}
	return nil
}

func checkDisplayName(name string) error {
	if len(name) > maxDisplayNameLen {
		return errBadRequest("displayName is longer than %d", maxDisplayNameLen)
	}
	return nil
}

func checkHeaders(h map[string]string) error {
	if err := dataconnector.CheckHeaders(h); err != nil {
		return errBadRequest("httpConfig.headers: %s", err)
	}
	return nil
}

// validateCreate checks a create request and fills in its defaults; local
// is the API's local mode.
func validateCreate(req createConnector, local bool) (createConnector, error) {
	if req.Type != "" && req.Type != "HTTP_PUSH" {
		return req, errBadRequest("type must be HTTP_PUSH")
	}
	if req.Status == "" {
		req.Status = dataconnector.Active
	}
	if err := checkStatus(req.Status); err != nil {
		return req, err
	}
	if err := checkDisplayName(req.DisplayName); err != nil {
		return req, err
	}
	if err := checkConnectorURL(req.HTTPConfig.URL, local); err != nil {
		return req, err
	}
	if err := checkConnectorLists(req.Events, req.Labels); err != nil {
		return req, err
	}
	if err := checkHeaders(req.HTTPConfig.Headers); err != nil {
		return req, err
	}
	if s := req.HTTPConfig.SignatureSecret; s != "" {
		return req, checkSecret(s)
	}
	return req, nil
}

// connectorSecret is the customer's secret, or, when there is none, one
// made to be shown once: every delivery is signed.
func connectorSecret(given string) (secret string, generated bool, err error) {
	if given != "" {
		return given, false, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, err
	}
	return base64.RawURLEncoding.EncodeToString(b), true, nil
}

func newConnectorDoc(project string, req createConnector, wrapped []byte, now time.Time) store.DataConnector {
	d := store.DataConnector{ProjectID: project, DisplayName: req.DisplayName, Status: req.Status, Events: req.Events, Labels: req.Labels,
		URL: req.HTTPConfig.URL, Headers: req.HTTPConfig.Headers, WrappedSecret: wrapped, CreateTime: now, UpdateTime: now}
	if req.Status != dataconnector.Active {
		d.DisabledAt = &now
	}
	return d
}

// checkConnectorUpdate checks what of an update can be checked before the
// connector is read, and reads the backfill query parameter.
func checkConnectorUpdate(req updateConnector, backfillParam string) (backfill bool, err error) {
	if backfillParam != "" {
		if backfill, err = strconv.ParseBool(backfillParam); err != nil {
			return false, errBadRequest("backfill must be true or false")
		}
	}
	if backfill && (req.Status == nil || *req.Status != dataconnector.Active) {
		return false, errBadRequest("backfill needs status ACTIVE in the same request")
	}
	if req.Status != nil {
		if err := checkStatus(*req.Status); err != nil {
			return false, err
		}
	}
	if req.DisplayName != nil {
		if err := checkDisplayName(*req.DisplayName); err != nil {
			return false, err
		}
	}
	var events, labels []string
	if req.Events != nil {
		events = *req.Events
	}
	if req.Labels != nil {
		labels = *req.Labels
	}
	return backfill, checkConnectorLists(events, labels)
}

// checkHTTPConfigUpdate checks an update's httpConfig, once the connector
// is known to exist.
func checkHTTPConfigUpdate(h *updateHTTPConfig, local bool) error {
	if h == nil {
		return nil
	}
	if h.URL != nil {
		if err := checkConnectorURL(*h.URL, local); err != nil {
			return err
		}
	}
	if h.Headers != nil {
		if err := checkHeaders(*h.Headers); err != nil {
			return err
		}
	}
	if h.SignatureSecret != nil {
		return checkSecret(*h.SignatureSecret)
	}
	return nil
}

// connectorEdit is the settings an update changes.
func connectorEdit(req updateConnector, now time.Time) store.DataConnectorEdit {
	e := store.DataConnectorEdit{DisplayName: req.DisplayName, Events: req.Events, Labels: req.Labels, UpdateTime: now}
	if h := req.HTTPConfig; h != nil {
		e.URL, e.Headers = h.URL, h.Headers
	}
	return e
}

// statusChange is what an update's status does to the stored connector.
// Setting ACTIVE is a fresh start: the failing streak that disabled it is
// over, and its start is kept only in the backfill, queued when asked for.
func statusChange(want *string, backfill bool, project, id string, now time.Time, retention time.Duration) store.StatusChange {
	return func(cur store.DataConnector) (*store.DataConnectorStatus, *store.DeliveryJob) {
		if want == nil || *want == cur.Status {
			return nil, nil
		}
		if *want != dataconnector.Active {
			return &store.DataConnectorStatus{Status: *want, DisabledAt: &now}, nil
		}
		st := &store.DataConnectorStatus{Status: *want}
		from, ok := dataconnector.Connector(cur).UndeliveredSince()
		if !ok || !backfill {
			return st, nil
		}
		j := newJob(project, id, dataconnector.Backfill, from, now, retention)
		return st, &j
	}
}

// newJob is a backfill or sync of a connector; a backfill reaches back at
// most as far as events are kept.
func newJob(project, id, kind string, from, now time.Time, retention time.Duration) store.DeliveryJob {
	if min := now.Add(-retention); from.Before(min) {
		from = min
	}
	return store.DeliveryJob{ProjectID: project, ConnectorID: id, Kind: kind, From: from, To: now, CreateTime: now, ExpireAt: now.Add(7 * 24 * time.Hour)}
}

func (s *Service) wrapConnectorSecret(ctx context.Context, project, id, secret string) ([]byte, error) {
	b, err := s.deps.WebhookSecrets.Wrap(ctx, custody.Secret(secret), dataconnector.SecretAAD(project, id))
	if err != nil {
		return nil, errUnavailable(err)
	}
	return b, nil
}

func (s *Service) listConnectors(c *call) (any, error) {
	docs, next, err := c.page(s.db.DataConnectorsQuery(c.project), ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listConnectors{DataConnectors: []DataConnector{}, NextPageToken: next}
	for _, d := range docs {
		dc, err := store.DataConnectorOf(d)
		if err != nil {
			return nil, err
		}
		out.DataConnectors = append(out.DataConnectors, toConnector(c.project, d.Ref.ID, dc))
	}
	return out, nil
}

func (s *Service) createConnector(c *call) (any, error) {
	var req createConnector
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	req, err := validateCreate(req, s.cfg.LocalMode)
	if err != nil {
		return nil, err
	}
	secret, generated, err := connectorSecret(req.HTTPConfig.SignatureSecret)
	if err != nil {
		return nil, err
	}
	ctx, db := c.r.Context(), s.db
	// Counted before the KMS call, so a full project costs none.
	if n, err := db.CountDataConnectors(ctx, c.project, maxConnectors); err != nil {
		return nil, errUnavailable(err)
	} else if n >= maxConnectors {
		return nil, errConflict(fmt.Sprintf("a project has at most %d data connectors", maxConnectors))
	}
	id := db.NewDataConnectorID()
	wrapped, err := s.wrapConnectorSecret(ctx, c.project, id, secret)
	if err != nil {
		return nil, err
	}
	d := newConnectorDoc(c.project, req, wrapped, s.deps.Now().UTC())
	if err := db.CreateDataConnector(ctx, id, d); err != nil {
		return nil, errUnavailable(err)
	}
	out := toConnector(c.project, id, d)
	if generated {
		out.HTTPConfig.SignatureSecret = secret
	}
	return out, nil
}

// connector reads the path's connector, which must be the project's.
func (s *Service) connector(c *call) (store.DataConnector, error) {
	d, err := s.db.DataConnector(c.r.Context(), c.r.PathValue("dataconnector"))
	switch {
	case store.IsNotFound(err):
		return d, errNotFound("data connector not found")
	case err != nil:
		return d, errUnavailable(err)
	case d.ProjectID != c.project:
		return d, errNotFound("data connector not found")
	}
	return d, nil
}

func (s *Service) getConnector(c *call) (any, error) {
	d, err := s.connector(c)
	if err != nil {
		return nil, err
	}
	return toConnector(c.project, c.r.PathValue("dataconnector"), d), nil
}

// updateConnector changes what the request names. Setting status ACTIVE
// with ?backfill=true also queues, from stored events, what the connector
// missed while it failed or was disabled.
func (s *Service) updateConnector(c *call) (any, error) {
	var req updateConnector
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	backfill, err := checkConnectorUpdate(req, c.r.URL.Query().Get("backfill"))
	if err != nil {
		return nil, err
	}
	// Read first, so that a missing or foreign connector costs no KMS
	// call for a new secret; the store checks it again as it writes.
	if _, err := s.connector(c); err != nil {
		return nil, err
	}
	if err := checkHTTPConfigUpdate(req.HTTPConfig, s.cfg.LocalMode); err != nil {
		return nil, err
	}
	ctx, id, now := c.r.Context(), c.r.PathValue("dataconnector"), s.deps.Now().UTC()
	edit := connectorEdit(req, now)
	if h := req.HTTPConfig; h != nil && h.SignatureSecret != nil {
		if edit.WrappedSecret, err = s.wrapConnectorSecret(ctx, c.project, id, *h.SignatureSecret); err != nil {
			return nil, err
		}
	}
	change := statusChange(req.Status, backfill, c.project, id, now, s.cfg.EventRetention)
	switch err := s.db.EditDataConnector(ctx, id, c.project, edit, change); {
	case store.IsNotFound(err):
		return nil, errNotFound("data connector not found")
	case err != nil:
		return nil, errUnavailable(err)
	}
	return s.getConnector(c)
}

func (s *Service) deleteConnector(c *call) (any, error) {
	if _, err := s.connector(c); err != nil {
		return nil, err
	}
	// Its queued deliveries are skipped by the sweep, and expire.
	if err := s.db.DeleteDataConnector(c.r.Context(), c.r.PathValue("dataconnector")); err != nil {
		if store.IsNotFound(err) {
			return nil, errNotFound("data connector not found")
		}
		return nil, errUnavailable(err)
	}
	return empty{}, nil
}

// connectorMetrics adds up the last 3 hours of delivery records.
func (s *Service) connectorMetrics(c *call) (any, error) {
	if _, err := s.connector(c); err != nil {
		return nil, err
	}
	since := s.deps.Now().Add(-metricsPeriod).Truncate(dataconnector.Window)
	ms, err := s.db.DeliveryMetricsSince(c.r.Context(), c.r.PathValue("dataconnector"), since)
	if err != nil {
		return nil, errUnavailable(err)
	}
	sum := dataconnector.Summarize(ms)
	var out connectorMetrics
	out.Metrics.SuccessCount, out.Metrics.ErrorCount = sum.Success, sum.Error
	out.Metrics.Latency99p = strconv.FormatFloat(sum.Latency99p.Seconds(), 'f', -1, 64) + "s"
	return out, nil
}

// syncConnector queues, for every device, the latest event of each type;
// the deliver sweep works through it.
func (s *Service) syncConnector(c *call) (any, error) {
	d, err := s.connector(c)
	if err != nil {
		return nil, err
	}
	if d.Status != dataconnector.Active {
		return nil, errConflict("the data connector is not ACTIVE")
	}
	now := s.deps.Now().UTC()
	j := newJob(c.project, c.r.PathValue("dataconnector"), dataconnector.Sync, now, now, s.cfg.EventRetention)
	if err := s.db.CreateDeliveryJob(c.r.Context(), j); err != nil {
		return nil, errUnavailable(err)
	}
	return empty{}, nil
}
