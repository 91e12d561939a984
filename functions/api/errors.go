package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// apiError is an error a caller may see. Only its message and code reach
// the response; anything wrapped stays in the logs.
type apiError struct {
	code       int
	msg        string
	retryAfter time.Duration
	cause      error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %v", e.code, e.msg, e.cause)
	}
	return fmt.Sprintf("%d %s", e.code, e.msg)
}

func (e *apiError) Unwrap() error { return e.cause }

func errBadRequest(format string, a ...any) error {
	return &apiError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}
func errUnauthenticated(msg string) error {
	return &apiError{code: http.StatusUnauthorized, msg: msg}
}
func errForbidden(msg string) error { return &apiError{code: http.StatusForbidden, msg: msg} }
func errNotFound(msg string) error  { return &apiError{code: http.StatusNotFound, msg: msg} }
func errConflict(msg string) error  { return &apiError{code: http.StatusConflict, msg: msg} }
func errUnavailable(cause error) error {
	return &apiError{code: http.StatusServiceUnavailable, msg: "temporarily unavailable, retry", cause: cause}
}

// errorBody is DT's error shape, which its clients parse.
type errorBody struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
	Help  string `json:"help"`
}

// writeError answers with err's code and message; an error that is not an
// apiError is internal, and its text never reaches the caller.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{code: http.StatusInternalServerError, msg: "internal error"}
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ae.retryAfter+time.Second-1)/time.Second)))
	}
	if ae.code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sealedsense"`)
	}
	writeJSON(w, ae.code, errorBody{Error: ae.msg, Code: ae.code, Help: "https://docs.sealedsense.eu/api/errors#" + strconv.Itoa(ae.code)})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error","code":500,"help":""}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
