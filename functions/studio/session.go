package studio

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/sealedsense/sealedsense/shared/store"
)

// Cookies. The __Host- prefix makes the browser refuse them unless they
// are Secure, for the whole host and set by it: no sibling domain can
// plant or overwrite one. Browsers accept Secure cookies from loopback
// addresses over plain HTTP, so local runs use the same flags.
const (
	sessionCookie = "__Host-studio-session" // HttpOnly: scripts never read it
	csrfCookie    = "__Host-studio-csrf"    // read by Studio's script, sent back as csrfHeader
	loginCookie   = "__Host-studio-login"   // the state of a sign-in under way
	csrfHeader    = "X-CSRF-Token"
)

// setCookie sets a Secure, host-only cookie.
func setCookie(w http.ResponseWriter, name, value string, maxAge int, httpOnly bool, site http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: httpOnly, SameSite: site})
}

func clearCookie(w http.ResponseWriter, name string, httpOnly bool) {
	setCookie(w, name, "", -1, httpOnly, http.SameSiteStrictMode)
}

// sessionHandler is a handler for a signed-in person.
type sessionHandler func(http.ResponseWriter, *http.Request, store.StudioSession)

// withSession finds the request's live session, and for any method but
// GET and HEAD also checks its CSRF token, before calling h. Without one
// it answers 401, which Studio's script turns into the sign-in page.
func (s *Server) withSession(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil || c.Value == "" {
			writeJSONError(w, http.StatusUnauthorized, "sign in to Studio")
			return
		}
		sess, err := s.db.UseStudioSession(r.Context(), c.Value, s.deps.Now(), s.limits)
		switch {
		case errors.Is(err, store.ErrSessionEnded):
			s.log.Info("studio session refused", "reason", err.Error())
			clearCookie(w, sessionCookie, true)
			writeJSONError(w, http.StatusUnauthorized, "your session has ended: sign in again")
			return
		case err != nil:
			s.log.Error("studio session", "error", err.Error())
			writeJSONError(w, http.StatusServiceUnavailable, "sessions are unavailable: try again")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !csrfOK(r.Header.Get(csrfHeader), sess.CSRFHash) {
			s.log.Warn("studio write refused", "rejected", "csrf", "actor", sess.Email, "method", r.Method, "path", r.URL.Path)
			writeJSONError(w, http.StatusForbidden, "missing or wrong "+csrfHeader+" header")
			return
		}
		h(w, r, sess)
	}
}

// csrfOK says whether a request's CSRF token is its session's (pure).
func csrfOK(token, wantHash string) bool {
	if token == "" || wantHash == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(store.TokenHash(token)), []byte(wantHash)) == 1
}

type whoami struct {
	Email string `json:"email"`
}

func (s *Server) whoami(w http.ResponseWriter, _ *http.Request, sess store.StudioSession) {
	writeJSON(w, http.StatusOK, whoami{Email: sess.Email})
}

// logout ends the session here and in Firestore, so a copied cookie is
// worth nothing afterwards.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess store.StudioSession) {
	c, _ := r.Cookie(sessionCookie)
	if err := s.db.EndStudioSession(r.Context(), c.Value); err != nil {
		s.log.Error("studio sign-out", "error", err.Error())
		writeJSONError(w, http.StatusServiceUnavailable, "could not sign out: try again")
		return
	}
	clearCookie(w, sessionCookie, true)
	clearCookie(w, csrfCookie, false)
	s.log.Info("studio sign-out", "actor", sess.Email)
	writeJSON(w, http.StatusOK, struct{}{})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeJSONError answers as the API does, {"error": {code, message}}.
func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}
