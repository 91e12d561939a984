package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/egress"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/webhook"
)

// delivery is one attempt's work: the pair, its connector and the event
// (whose JSON the sweep reads from Firestore when it did not come with a
// Pub/Sub message).
type delivery struct {
	id       string
	c        connector
	ev       dataconnector.Event
	attempts int
	queued   time.Time
}

// outcome of one attempt. result never holds a response body or a secret.
type outcome struct {
	ok      bool
	result  string
	latency time.Duration
	// gone: the event itself is past retention, so no retry can succeed.
	gone bool
}

// attempt sends one delivery and records what happened.
func (s *Service) attempt(ctx context.Context, d delivery) {
	out := s.send(ctx, d)
	if err := s.record(ctx, d, out); err != nil {
		// The lease runs out and the sweep tries again: at least once.
		s.log.Error("delivery not recorded", "connectorId", d.c.id, "eventId", d.ev.ID, "error", err.Error())
	}
}

// send makes the signed request of a delivery and posts it.
func (s *Service) send(ctx context.Context, d delivery) outcome {
	if len(d.ev.JSON) == 0 {
		js, failed := s.eventJSON(ctx, d.ev.ID)
		if failed != nil {
			return *failed
		}
		d.ev.JSON = js
	}
	body, sig, result := s.signed(ctx, d)
	if result != "" {
		return outcome{result: result}
	}
	if s.deps.Check != nil {
		if err := s.deps.Check(d.c.URL); err != nil {
			return outcome{result: "refused"}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.c.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{result: "refused"}
	}
	// Custom headers first, ours last: the API refuses custom headers
	// that collide with ours, and this keeps ours even if one got in.
	for k, v := range d.c.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range sig {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "SealedSense-Webhooks/1")
	return s.post(req)
}

// eventJSON reads a stored event's JSON; failed says why it could not.
func (s *Service) eventJSON(ctx context.Context, id string) ([]byte, *outcome) {
	e, err := s.db.Event(ctx, id)
	switch {
	case store.IsNotFound(err):
		return nil, &outcome{result: "event gone", gone: true}
	case err != nil || e.JSON == nil:
		return nil, &outcome{result: "event unavailable"}
	}
	return e.JSON, nil
}

// signed is a delivery's body and signature headers; a non-empty result
// says why there are none.
func (s *Service) signed(ctx context.Context, d delivery) (body []byte, sig http.Header, result string) {
	dev, err := s.device(ctx, d.ev.Device)
	if err != nil {
		return nil, nil, "device unavailable"
	}
	body, err = d.c.Body(d.ev.JSON, dev.Labels, dataconnector.Metadata{DeviceID: d.ev.Device, ProjectID: d.ev.Project, DeviceType: dev.Type, ProductNumber: dev.ProductNumber})
	if err != nil {
		return nil, nil, "bad event"
	}
	secret, err := s.deps.Secrets.Unwrap(ctx, d.c.WrappedSecret, dataconnector.SecretAAD(d.ev.Project, d.c.id))
	if err != nil {
		s.log.Error("signature secret unavailable", "connectorId", d.c.id, "error", err.Error())
		return nil, nil, "secret unavailable"
	}
	key, err := s.signingKey(ctx)
	if err != nil {
		s.log.Error("signing key unavailable", "error", err.Error())
		return nil, nil, "signing key unavailable"
	}
	sig, err = webhook.Signer{Secret: secret, Key: key.priv, KeyID: key.kid, Issuer: s.cfg.Issuer,
		Connector: webhook.ConnectorName(d.ev.Project, d.c.id)}.Headers(d.ev.ID, body, s.deps.Now())
	if err != nil {
		return nil, nil, "signing failed"
	}
	return body, sig, ""
}

// post sends a delivery's request and reads what became of it.
func (s *Service) post(req *http.Request) outcome {
	start := time.Now()
	resp, err := s.deps.Client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, egress.ErrRefused):
			// Retried all the same: the customer may fix the URL or its
			// DNS within the retry limit.
			return outcome{result: "refused"}
		case errors.Is(err, context.DeadlineExceeded):
			return outcome{result: "timeout"}
		default:
			return outcome{result: "unreachable"}
		}
	}
	// Only a bounded prefix is read, so the connection can be reused
	// without a large or endless body holding the attempt.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, s.cfg.MaxResponse))
	resp.Body.Close()
	lat := time.Since(start)
	return outcome{ok: resp.StatusCode >= 200 && resp.StatusCode < 300, result: strconv.Itoa(resp.StatusCode), latency: lat}
}

// record writes the attempt's outcome, counts it for the metrics, and
// updates the connector's health.
func (s *Service) record(ctx context.Context, d delivery, out outcome) error {
	now := s.deps.Now()
	a := store.DeliveryAttempt{Attempts: d.attempts + 1, LastResult: out.result}
	switch {
	case out.ok:
		a.Status, a.DeliveredAt = dataconnector.Delivered, now
	case out.gone || now.Sub(d.queued) >= s.cfg.MaxAge:
		a.Status = dataconnector.Expired
		s.log.Warn("delivery given up", "connectorId", d.c.id, "eventId", d.ev.ID, "attempts", d.attempts+1, "result", out.result)
	default:
		a.Due = now.Add(s.backoff(d.attempts + 1))
	}
	if err := s.db.RecordDeliveryAttempt(ctx, d.id, a); err != nil {
		return fmt.Errorf("deliver: record: %w", err)
	}
	if s.count(d.c.id, now, out) {
		if err := s.flushMetrics(ctx); err != nil {
			s.log.Error("delivery metrics not written", "error", err.Error())
		}
	}
	level := s.log.Debug
	if !out.ok {
		level = s.log.Info
	}
	level("delivery attempt", "connectorId", d.c.id, "eventId", d.ev.ID, "attempt", d.attempts+1, "result", out.result, "latencyMs", out.latency.Milliseconds())
	return s.health(ctx, d.c, out.ok, now)
}

// health keeps a connector's failing streak, and disables a connector
// that has not succeeded for DisableAfter. It writes only when the state
// changes, so a healthy connector costs no connector writes.
func (s *Service) health(ctx context.Context, c connector, ok bool, now time.Time) error {
	switch {
	case ok && c.FailingSince == nil:
		return nil
	case !ok && c.FailingSince != nil && now.Sub(*c.FailingSince) < s.cfg.DisableAfter:
		return nil
	}
	// One change at a time per connector and instance: a burst of
	// failures would otherwise queue transactions on one document, and
	// the first records the streak for all.
	if !s.healthLock(c.id) {
		return nil
	}
	defer s.healthUnlock(c.id)
	defer s.forget(c.ProjectID)
	if ok {
		if err := s.db.ClearDataConnectorFailing(ctx, c.id); err != nil && !store.IsNotFound(err) {
			return err
		}
		return nil
	}
	disabled, err := s.failing(ctx, c.id, now)
	if err != nil {
		if store.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("deliver: connector health: %w", err)
	}
	if disabled {
		// Alertable: a log-based metric counts these lines.
		s.log.Error("data connector disabled", "alert", "webhook-disabled", "connectorId", c.id, "projectId", c.ProjectID,
			"disableAfter", s.cfg.DisableAfter.String(), "status", dataconnector.SystemDisabled)
	}
	return nil
}

// failing records a failure in the connector's document: it starts its
// failing streak, or disables it once the streak is DisableAfter long.
func (s *Service) failing(ctx context.Context, id string, now time.Time) (disabled bool, err error) {
	err = s.db.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		disabled = false
		cur, err := s.db.DataConnectorIn(tx, id)
		if err != nil {
			return err
		}
		switch {
		case cur.FailingSince == nil:
			return s.db.SetDataConnectorFailingIn(tx, id, now)
		case cur.Status == dataconnector.Active && now.Sub(*cur.FailingSince) >= s.cfg.DisableAfter:
			disabled = true
			return s.db.DisableDataConnectorIn(tx, id, dataconnector.SystemDisabled, now)
		}
		return nil
	})
	return disabled, err
}

func (s *Service) healthLock(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.healthBusy[id] {
		return false
	}
	s.healthBusy[id] = true
	return true
}

func (s *Service) healthUnlock(id string) {
	s.mu.Lock()
	delete(s.healthBusy, id)
	s.mu.Unlock()
}
