package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/sealedsense/sealedsense/functions/api/stream"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
)

// streamFrame documents a stream's frames: DT's {"result": {"event"}} and,
// before an error close, {"error": {"code", "message"}}.
type streamFrame struct {
	Result *streamResult `json:"result,omitempty"`
	Error  *streamError  `json:"error,omitempty"`
}

type streamResult struct {
	Event json.RawMessage `json:"event"`
}

type streamError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// streamDevices serves devices:stream: the caller was authorized for
// device.read on the project by run; the stream re-checks it every few
// seconds, so a revoked key, account or role, or an expired token, ends
// it.
func (s *Service) streamDevices(c *call) (any, error) {
	if s.streams == nil {
		return nil, errUnavailable(errors.New("api: no stream server"))
	}
	st, err := s.streams.Open(c.r.Context(), c.r, c.project)
	if err != nil {
		var se *stream.Error
		if !errors.As(err, &se) {
			return nil, err
		}
		ae := &apiError{code: se.Code, msg: se.Message, retryAfter: se.RetryAfter}
		if aerr := s.audit(c, c.rt, se.Code); aerr != nil {
			return nil, errUnavailable(aerr)
		}
		return nil, ae
	}
	c.written = true
	bearer := ""
	if scheme, cred, _ := strings.Cut(c.r.Header.Get("Authorization"), " "); strings.EqualFold(scheme, "bearer") {
		bearer = strings.TrimSpace(cred)
	}
	st.Serve(c.r.Context(), c.w, &streamCaller{s: s, p: c.p, bearer: bearer, project: c.project, org: c.org, path: requestPath(c.r)})
	return nil, nil
}

// streamCaller is a stream's caller as the API knows it.
type streamCaller struct {
	s                  *Service
	p                  *principal
	bearer             string // "" for Basic auth
	project, org, path string
}

// Check re-applies what authorized the stream: the token's signature and
// expiry, the key and account (read at most AccessTTL ago), and the role.
func (sc *streamCaller) Check(ctx context.Context) error {
	s := sc.s
	if sc.bearer != "" {
		_, err := s.deps.Verifier.Verify(ctx, sc.bearer, token.Expect{Issuer: s.cfg.BaseURL, Audience: s.cfg.BaseURL, Now: s.deps.Now})
		if errors.Is(err, token.ErrInvalid) {
			return &stream.Error{Code: http.StatusUnauthorized, Message: "the access token expired or is no longer valid"}
		}
		if err != nil {
			return nil // KMS briefly unreachable: keep the stream
		}
	}
	p, err := s.reload(ctx, sc.p)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.code == http.StatusUnauthorized:
		return &stream.Error{Code: http.StatusUnauthorized, Message: "the credentials were revoked"}
	case err != nil:
		return nil
	case p.Account != sc.p.Account:
		return &stream.Error{Code: http.StatusUnauthorized, Message: "the credentials were revoked"}
	case !p.can(permDeviceRead, sc.project, sc.org):
		return &stream.Error{Code: http.StatusForbidden, Message: "missing permission " + permDeviceRead + " on projects/" + sc.project}
	}
	// An erased project's stream ends with a final frame saying so, before
	// the erasure reaches the events it could still send.
	proj, err := s.db.Project(ctx, sc.project)
	switch {
	case store.IsNotFound(err):
		return &stream.Error{Code: http.StatusGone, Message: "the project was erased"}
	case err == nil && proj.Erasing != "":
		return &stream.Error{Code: http.StatusGone, Message: "the project is being erased (projects/" + sc.project + "/erasures/" + proj.Erasing + ")"}
	}
	return nil
}

// AuditStream records a stream's opening and closing in the project's
// audit log, with what it asked for and, on close, why it ended.
func (s *Service) AuditStream(ctx context.Context, rec stream.AuditRecord) {
	sc, ok := rec.Caller.(*streamCaller)
	if !ok {
		return
	}
	reason := "format=" + rec.Format
	if rec.Filters != "" {
		reason += " " + rec.Filters
	}
	if rec.Resumed {
		reason += " resumed"
	}
	if rec.Action == "stream.close" {
		reason += " closed=" + rec.Reason
	}
	err := s.db.AppendAudit(context.WithoutCancel(ctx), store.AuditEntry{
		ProjectID: sc.project, Time: s.deps.Now().UTC(), ActorType: sc.p.actorType(), Actor: sc.p.Email,
		Account: sc.p.Account, KeyID: sc.p.Key, Action: rec.Action, Resource: sc.path, Code: http.StatusOK, Reason: reason,
	})
	switch {
	case errors.Is(err, store.ErrProjectErased):
		s.log.Info("audit of an erased project", "project", sc.project, "actor", sc.p.Email, "action", rec.Action, "resource", sc.path)
	case err != nil:
		s.log.Error("stream audit failed", "project", sc.project, "action", rec.Action, "error", err.Error())
	}
}
