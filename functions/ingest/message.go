package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/pushmsg"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// rejection is a message that can never succeed: it is logged with its
// reason (which log-based metrics count) and acknowledged, so it is not
// redelivered. classify sorts every other error.
type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.reason + ": " + r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason string, err error) error { return &rejection{reason: reason, err: err} }

// Handle is the CloudEvent entry point. It routes by the topic the message
// came from: connector status, or uplinks.
func (s *Service) Handle(ctx context.Context, e event.Event) error {
	m, topic, err := pushmsg.Decode(e)
	if err != nil {
		s.log.Warn("uplink rejected", "rejected", "malformed-event", "error", err.Error(), "eventId", e.ID())
		return nil
	}
	if topic == s.cfg.StatusTopic {
		return s.settle(s.handleStatus(ctx, m.Data), m.MessageID, topic)
	}
	envs, err := relay.SplitBatch(m.Data)
	if err != nil {
		return s.settle(reject("malformed-envelope", err), m.MessageID, topic)
	}
	published := publishTime(e, s.deps.Now())
	// A batch's copies are independent (a lone envelope is a batch of one):
	// each is settled on its own, and one that must be retried fails the
	// message, whose redelivery the others then meet as copies already
	// counted.
	var mu sync.Mutex
	var failed error
	var wg sync.WaitGroup
	sem := make(chan struct{}, batchConcurrency)
	for _, env := range envs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.settle(s.handleCopy(ctx, env, published), m.MessageID, topic); err != nil {
				mu.Lock()
				failed = errors.Join(failed, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}

// handleCopy handles one copy; a data packet's first copy is stored and
// answered later, once its copies are in (answerLater). When
// maxAnswering packets wait already, the push waits for one of them: the
// pushes Pub/Sub keeps open then slow its delivery to what Firestore
// stores, rather than piling up transactions that overwhelm it.
func (s *Service) handleCopy(ctx context.Context, env []byte, published time.Time) error {
	p, err := s.handleUplink(ctx, env, published)
	if p == nil {
		return err
	}
	select {
	case s.answering <- struct{}{}:
	case <-ctx.Done():
		s.claims.take(p.recID)
		return ctx.Err()
	}
	s.answerLater(p)
	return nil
}

// batchConcurrency bounds the copies of one batch handled at once: enough
// to overlap their Firestore round trips (a busy connector's batch carries
// tens of copies, and a push that handled them a few at a time would hold
// one of the subscription's few push slots for many round trips), few
// enough not to flood Firestore.
const batchConcurrency = 32

// classify sorts a handler's error. A permanent one, which no retry can
// fix, is acknowledged with the reason it is logged under: a rejection; a
// payload that does not decode or validate; a request Firestore refuses as
// invalid (InvalidArgument, OutOfRange) or cannot serve (Unimplemented);
// a stored document that does not decode. Everything else is transient
// (Unavailable, DeadlineExceeded, Aborted, ResourceExhausted, Internal,
// a cancelled context, a KMS or IAM failure, or an error nothing here
// knows) and is returned, so Pub/Sub redelivers it and dead-letters it
// only after its retries.
func classify(err error) (reason string, permanent bool) {
	var rej *rejection
	switch {
	case err == nil:
		return "", false
	case errors.As(err, &rej):
		return rej.reason, true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "", false
	case errors.Is(err, payload.ErrInvalid):
		return "bad-payload", true
	case errors.Is(err, store.ErrUndecodable):
		return "undecodable-document", true
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.OutOfRange:
		return "invalid-argument", true
	case codes.Unimplemented:
		return "unimplemented", true
	}
	return "", false
}

// settle turns a handler's outcome into the push answer: a permanent
// error is logged and acknowledged, a transient one is returned for
// redelivery.
func (s *Service) settle(err error, messageID, topic string) error {
	if reason, permanent := classify(err); permanent {
		msg := err.Error()
		var rej *rejection
		if errors.As(err, &rej) {
			msg = rej.err.Error()
		}
		attrs := []any{"rejected", reason, "error", msg, "messageId", messageID, "topic", topic}
		var bad *metadataError
		if errors.As(err, &bad) {
			attrs = append(attrs, "field", bad.field)
		}
		s.log.Warn("message rejected", attrs...)
		return nil
	}
	if err != nil {
		s.log.Error("message failed; Pub/Sub will redeliver", "error", err.Error(), "messageId", messageID, "topic", topic)
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

// publishTime is when Pub/Sub published the pushed message, which the
// functions framework (from the push's publishTime) and Eventarc set as
// the CloudEvent's time: Pub/Sub's clock, not the connector's, so the
// reception times the connector claims are checked against it. A push
// without one (only tests build such) counts as published now.
func publishTime(e event.Event, now time.Time) time.Time {
	if t := e.Time(); !t.IsZero() {
		return t
	}
	return now
}
