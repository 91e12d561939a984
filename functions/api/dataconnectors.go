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

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/event"
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
	URL             string            `json:"url"`
	SignatureSecret string            `json:"signatureSecret,omitempty"`
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

func toConnector(project, id string, d dataconnector.Connector) DataConnector {
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
func (s *Service) checkConnectorURL(raw string) error {
	if len(raw) > maxURLLen {
		return errBadRequest("httpConfig.url is longer than %d", maxURLLen)
	}
	d := &egress.Dialer{AllowLoopback: s.cfg.LocalMode}
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

func (s *Service) wrapConnectorSecret(ctx context.Context, project, id, secret string) ([]byte, error) {
	b, err := s.deps.WebhookSecrets.Wrap(ctx, custody.Secret(secret), dataconnector.SecretAAD(project, id))
	if err != nil {
		return nil, errUnavailable(err)
	}
	return b, nil
}

func (s *Service) listConnectors(c *call) (any, error) {
	q := s.deps.Firestore.Collection(dataconnector.Collection).Where("projectId", "==", c.project).OrderBy(firestore.DocumentID, firestore.Asc)
	docs, next, err := c.page(q, ordering{}, "")
	if err != nil {
		return nil, err
	}
	out := listConnectors{DataConnectors: []DataConnector{}, NextPageToken: next}
	for _, d := range docs {
		var dc dataconnector.Connector
		if err := d.DataTo(&dc); err != nil {
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
	if req.Type != "" && req.Type != "HTTP_PUSH" {
		return nil, errBadRequest("type must be HTTP_PUSH")
	}
	if req.Status == "" {
		req.Status = dataconnector.Active
	}
	if req.Status != dataconnector.Active && req.Status != dataconnector.UserDisabled {
		return nil, errBadRequest("status must be ACTIVE or USER_DISABLED")
	}
	if len(req.DisplayName) > maxDisplayNameLen {
		return nil, errBadRequest("displayName is longer than %d", maxDisplayNameLen)
	}
	if err := s.checkConnectorURL(req.HTTPConfig.URL); err != nil {
		return nil, err
	}
	if err := checkConnectorLists(req.Events, req.Labels); err != nil {
		return nil, err
	}
	if err := dataconnector.CheckHeaders(req.HTTPConfig.Headers); err != nil {
		return nil, errBadRequest("httpConfig.headers: %s", err)
	}
	secret, generated := req.HTTPConfig.SignatureSecret, false
	if secret == "" {
		// Every delivery is signed: without a secret of the customer's,
		// one is made and shown once.
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		secret, generated = base64.RawURLEncoding.EncodeToString(b), true
	} else if err := checkSecret(secret); err != nil {
		return nil, err
	}
	ctx := c.r.Context()
	existing, err := s.deps.Firestore.Collection(dataconnector.Collection).Where("projectId", "==", c.project).Select().Limit(maxConnectors).Documents(ctx).GetAll()
	if err != nil {
		return nil, errUnavailable(err)
	}
	if len(existing) >= maxConnectors {
		return nil, errConflict(fmt.Sprintf("a project has at most %d data connectors", maxConnectors))
	}
	ref := s.deps.Firestore.Collection(dataconnector.Collection).NewDoc()
	wrapped, err := s.wrapConnectorSecret(ctx, c.project, ref.ID, secret)
	if err != nil {
		return nil, err
	}
	now := s.deps.Now().UTC()
	d := dataconnector.Connector{ProjectID: c.project, DisplayName: req.DisplayName, Status: req.Status, Events: req.Events, Labels: req.Labels,
		URL: req.HTTPConfig.URL, Headers: req.HTTPConfig.Headers, WrappedSecret: wrapped, CreateTime: now, UpdateTime: now}
	if req.Status != dataconnector.Active {
		d.DisabledAt = &now
	}
	if _, err := ref.Create(ctx, d); err != nil {
		return nil, errUnavailable(err)
	}
	out := toConnector(c.project, ref.ID, d)
	if generated {
		out.HTTPConfig.SignatureSecret = secret
	}
	return out, nil
}

func (s *Service) connectorRef(c *call) *firestore.DocumentRef {
	return s.deps.Firestore.Collection(dataconnector.Collection).Doc(c.r.PathValue("dataconnector"))
}

// connector reads the path's connector, which must be the project's.
func (s *Service) connector(c *call) (dataconnector.Connector, error) {
	d, err := getDoc[dataconnector.Connector](c.r.Context(), s.connectorRef(c), "data connector")
	if err == nil && d.ProjectID != c.project {
		return d, errNotFound("data connector not found")
	}
	return d, err
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
	backfill := false
	if v := c.r.URL.Query().Get("backfill"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errBadRequest("backfill must be true or false")
		}
		backfill = b
	}
	if backfill && (req.Status == nil || *req.Status != dataconnector.Active) {
		return nil, errBadRequest("backfill needs status ACTIVE in the same request")
	}
	if req.Status != nil && *req.Status != dataconnector.Active && *req.Status != dataconnector.UserDisabled {
		return nil, errBadRequest("status must be ACTIVE or USER_DISABLED")
	}
	if req.DisplayName != nil && len(*req.DisplayName) > maxDisplayNameLen {
		return nil, errBadRequest("displayName is longer than %d", maxDisplayNameLen)
	}
	var events, labels []string
	if req.Events != nil {
		events = *req.Events
	}
	if req.Labels != nil {
		labels = *req.Labels
	}
	if err := checkConnectorLists(events, labels); err != nil {
		return nil, err
	}
	// Read first, so that a missing or foreign connector costs no KMS
	// call for a new secret; the transaction below checks it again.
	if _, err := s.connector(c); err != nil {
		return nil, err
	}
	ctx := c.r.Context()
	id := c.r.PathValue("dataconnector")
	now := s.deps.Now().UTC()
	upd := []firestore.Update{{Path: "updateTime", Value: now}}
	if req.DisplayName != nil {
		upd = append(upd, firestore.Update{Path: "displayName", Value: *req.DisplayName})
	}
	if req.Events != nil {
		upd = append(upd, firestore.Update{Path: "events", Value: events})
	}
	if req.Labels != nil {
		upd = append(upd, firestore.Update{Path: "labels", Value: labels})
	}
	if h := req.HTTPConfig; h != nil {
		if h.URL != nil {
			if err := s.checkConnectorURL(*h.URL); err != nil {
				return nil, err
			}
			upd = append(upd, firestore.Update{Path: "url", Value: *h.URL})
		}
		if h.Headers != nil {
			if err := dataconnector.CheckHeaders(*h.Headers); err != nil {
				return nil, errBadRequest("httpConfig.headers: %s", err)
			}
			upd = append(upd, firestore.Update{Path: "headers", Value: *h.Headers})
		}
		if h.SignatureSecret != nil {
			if err := checkSecret(*h.SignatureSecret); err != nil {
				return nil, err
			}
			wrapped, err := s.wrapConnectorSecret(ctx, c.project, id, *h.SignatureSecret)
			if err != nil {
				return nil, err
			}
			upd = append(upd, firestore.Update{Path: "wrappedSecret", Value: wrapped})
		}
	}
	ref := s.connectorRef(c)
	err := s.deps.Firestore.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if err != nil {
			return err
		}
		var cur dataconnector.Connector
		if err := snap.DataTo(&cur); err != nil {
			return err
		}
		if cur.ProjectID != c.project {
			return errNotFound("data connector not found")
		}
		upd := upd
		if req.Status != nil && *req.Status != cur.Status {
			upd = append(upd, firestore.Update{Path: "status", Value: *req.Status})
			if *req.Status == dataconnector.Active {
				// A fresh start: the failing streak that disabled it is
				// over, and its start is kept only in the backfill.
				upd = append(upd, firestore.Update{Path: "failingSince", Value: nil}, firestore.Update{Path: "disabledAt", Value: nil})
				if from, ok := cur.UndeliveredSince(); ok && backfill {
					if err := tx.Create(s.deps.Firestore.Collection(dataconnector.Jobs).NewDoc(), s.job(c.project, id, dataconnector.Backfill, from, now)); err != nil {
						return err
					}
				}
			} else {
				upd = append(upd, firestore.Update{Path: "disabledAt", Value: now})
			}
		}
		return tx.Update(ref, upd)
	})
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return nil, err
	case notFound(err):
		return nil, errNotFound("data connector not found")
	case err != nil:
		return nil, errUnavailable(err)
	}
	return s.getConnector(c)
}

// job is a backfill or sync of a connector; a backfill reaches back at
// most as far as events are kept.
func (s *Service) job(project, id, kind string, from, now time.Time) dataconnector.Job {
	if min := now.Add(-s.cfg.EventRetention); from.Before(min) {
		from = min
	}
	return dataconnector.Job{ProjectID: project, ConnectorID: id, Kind: kind, From: from, To: now, CreateTime: now, ExpireAt: now.Add(7 * 24 * time.Hour)}
}

func (s *Service) deleteConnector(c *call) (any, error) {
	if _, err := s.connector(c); err != nil {
		return nil, err
	}
	// Its queued deliveries are skipped by the sweep, and expire.
	if _, err := s.connectorRef(c).Delete(c.r.Context(), firestore.Exists); err != nil {
		if notFound(err) {
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
	docs, err := s.deps.Firestore.Collection(dataconnector.Metrics).Where("connectorId", "==", c.r.PathValue("dataconnector")).
		Where("window", ">=", since).Documents(c.r.Context()).GetAll()
	if err != nil {
		return nil, errUnavailable(err)
	}
	ms := make([]dataconnector.MetricDoc, 0, len(docs))
	for _, d := range docs {
		var m dataconnector.MetricDoc
		if err := d.DataTo(&m); err != nil {
			return nil, err
		}
		ms = append(ms, m)
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
	j := s.job(c.project, c.r.PathValue("dataconnector"), dataconnector.Sync, now, now)
	if _, err := s.deps.Firestore.Collection(dataconnector.Jobs).NewDoc().Create(c.r.Context(), j); err != nil {
		return nil, errUnavailable(err)
	}
	return empty{}, nil
}
