package platform

// fake-gcs-server serves a V4 signed URL without looking at its signature or
// its expiry, so locally an expired or forged download link would work where
// Cloud Storage refuses it. This file puts a gate in front of it that checks
// signed URLs as Cloud Storage does, with Cloud Storage's status codes and
// XML error bodies, and makes the one identity the gate trusts: a
// service-account-style key file that local functions sign URLs with.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// URLSignerEnv names the variable that holds the path of the local
// URL-signing credentials file. In GCP it is absent: there the storage
// client signs through IAM with the function's own service account.
const URLSignerEnv = "SEALEDSENSE_URL_SIGNER"

const (
	urlSignerFile = "url-signer.json"
	v4Algorithm   = "GOOG4-RSA-SHA256"
	v4DateLayout  = "20060102T150405Z"
	v4MaxExpires  = 7 * 24 * 60 * 60 // Cloud Storage's limit, in seconds
	unsignedBody  = "UNSIGNED-PAYLOAD"
	paramSig      = "X-Goog-Signature"
)

// v4Params are the query parameters of a V4 signed URL, in the order
// Cloud Storage names them when one is missing.
var v4Params = []string{"X-Goog-Algorithm", "X-Goog-Credential", paramSig, "X-Goog-Date", "X-Goog-SignedHeaders", "X-Goog-Expires"}

// serviceAccountFile is the subset of Google's service account key file
// that signing a URL needs, so that code reading it also reads a real one.
type serviceAccountFile struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
}

// urlSigner is the local stand-in for the service account that signs
// download URLs in GCP: one RSA key, the email it is known by, and the
// file that holds both.
type urlSigner struct {
	email string
	key   *rsa.PrivateKey
	path  string
}

// loadOrCreateURLSigner reuses the key a previous run wrote to dataDir, so
// that URLs signed then still verify, and otherwise makes a new one.
func loadOrCreateURLSigner(dataDir, project string) (*urlSigner, error) {
	path := filepath.Join(dataDir, urlSignerFile)
	email := "url-signer@" + project + ".iam.gserviceaccount.com"
	s, err := readURLSigner(path)
	switch {
	case err == nil && s.email == email:
		return s, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return createURLSigner(path, email)
}

func readURLSigner(path string) (*urlSigner, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("url signer: %w", err)
	}
	var f serviceAccountFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("url signer %s: %w", path, err)
	}
	block, _ := pem.Decode([]byte(f.PrivateKey))
	if f.Type != "service_account" || f.ClientEmail == "" || block == nil {
		return nil, fmt.Errorf("url signer %s: not a service account key file", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("url signer %s: %w", path, err)
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("url signer %s: the key is not RSA", path)
	}
	return &urlSigner{email: f.ClientEmail, key: key, path: path}, nil
}

func createURLSigner(path, email string) (*urlSigner, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("url signer key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("url signer key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("url signer key: %w", err)
	}
	id := sha256.Sum256(pub)
	b, err := json.MarshalIndent(serviceAccountFile{
		Type: "service_account", ClientEmail: email, PrivateKeyID: hex.EncodeToString(id[:20]),
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("url signer file: %w", err)
	}
	if err := writePrivateFile(path, b); err != nil {
		return nil, err
	}
	return &urlSigner{email: email, key: key, path: path}, nil
}

// writePrivateFile writes through a 0600 temporary file and a rename, so
// the key is never readable by others nor seen half written.
func writePrivateFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".url-signer-*")
	if err != nil {
		return fmt.Errorf("url signer file: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("url signer file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("url signer file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("url signer file: %w", err)
	}
	return nil
}

// signedURLGate passes unsigned requests to next untouched and lets a
// request carrying X-Goog-Signature through only if it is a V4 signed URL
// that the trusted key signed and whose validity window holds now.
type signedURLGate struct {
	next  http.Handler
	email string
	key   *rsa.PublicKey
	now   func() time.Time
	log   *slog.Logger
}

func newSignedURLGate(next http.Handler, s *urlSigner, log *slog.Logger) *signedURLGate {
	return &signedURLGate{next: next, email: s.email, key: &s.key.PublicKey, now: time.Now, log: log}
}

func (g *signedURLGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q, qerr := url.ParseQuery(r.URL.RawQuery)
	if !q.Has(paramSig) {
		g.next.ServeHTTP(w, r)
		return
	}
	err := malformedQuery("The query string is not well formed.")
	if qerr == nil {
		err = g.verify(r, q)
	}
	if err == nil {
		g.next.ServeHTTP(w, withoutSigning(r, q))
		return
	}
	gerr := &gcsError{status: http.StatusInternalServerError, Code: "InternalError", Message: err.Error()}
	errors.As(err, &gerr)
	g.log.Info("signed URL refused", "code", gerr.Code, "method", r.Method, "path", r.URL.Path, "reason", gerr.reason())
	gerr.write(w)
}

// verify checks in Cloud Storage's order: a malformed query first, then the
// validity window, then the signer and signature.
func (g *signedURLGate) verify(r *http.Request, q url.Values) error {
	p, err := parseV4Query(q)
	if err != nil {
		return err
	}
	if err := p.checkWindow(g.now()); err != nil {
		return err
	}
	var first error
	for _, host := range hostForms(r.Host) {
		canon := canonicalRequest(r, q, p.signedHeaders, host)
		sts := stringToSign(p, canon)
		sum := sha256.Sum256([]byte(sts))
		if p.email == g.email && rsa.VerifyPKCS1v15(g.key, crypto.SHA256, sum[:], p.signature) == nil {
			return nil
		}
		if first == nil {
			first = signatureMismatch(sts, canon)
		}
	}
	return first
}

// hostForms are the host header values a signer may have signed: the Host
// as sent and, when it has a port, the host alone, which is what the Go
// client signs (u.Hostname()) while other clients sign the port too.
func hostForms(host string) []string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return []string{host, h}
	}
	return []string{host}
}

// withoutSigning is r with the signing parameters taken out of its query,
// as fake-gcs-server would otherwise see parameters Cloud Storage consumes.
func withoutSigning(r *http.Request, q url.Values) *http.Request {
	q = maps.Clone(q)
	for _, name := range v4Params {
		delete(q, name)
	}
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	return r2
}

// v4Query is a parsed V4 signed URL query.
type v4Query struct {
	email         string
	scope         string // <yyyymmdd>/<region>/storage/goog4_request
	date          string // X-Goog-Date as sent, part of the string to sign
	start         time.Time
	expires       time.Duration
	signedHeaders []string
	signature     []byte
}

func parseV4Query(q url.Values) (v4Query, error) {
	for _, name := range v4Params {
		if v := q[name]; len(v) != 1 || v[0] == "" {
			return v4Query{}, malformedQuery("Query-string authentication version 4 requires the X-Goog-Algorithm, X-Goog-Credential, X-Goog-Signature, X-Goog-Date, X-Goog-SignedHeaders, and X-Goog-Expires parameters.")
		}
	}
	if a := q.Get("X-Goog-Algorithm"); a != v4Algorithm {
		return v4Query{}, malformedQuery(fmt.Sprintf("Invalid X-Goog-Algorithm %q: only %s is supported.", a, v4Algorithm))
	}
	p := v4Query{date: q.Get("X-Goog-Date")}
	var err error
	if p.start, err = time.Parse(v4DateLayout, p.date); err != nil {
		return v4Query{}, malformedQuery("Invalid X-Goog-Date: want the form yyyymmddThhmmssZ.")
	}
	if p.email, p.scope, err = parseCredential(q.Get("X-Goog-Credential"), p.date[:8]); err != nil {
		return v4Query{}, err
	}
	if p.expires, err = parseExpires(q.Get("X-Goog-Expires")); err != nil {
		return v4Query{}, err
	}
	if p.signedHeaders, err = parseSignedHeaders(q.Get("X-Goog-SignedHeaders")); err != nil {
		return v4Query{}, err
	}
	if p.signature, err = hex.DecodeString(q.Get(paramSig)); err != nil {
		return v4Query{}, malformedQuery("Invalid X-Goog-Signature: not hexadecimal.")
	}
	return p, nil
}

// parseCredential splits <email>/<yyyymmdd>/<region>/storage/goog4_request;
// the scope's date must be X-Goog-Date's day.
func parseCredential(cred, day string) (email, scope string, err error) {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[0] == "" || parts[2] == "" || parts[3] != "storage" || parts[4] != "goog4_request" {
		return "", "", malformedQuery("Invalid X-Goog-Credential: want <email>/<yyyymmdd>/<region>/storage/goog4_request.")
	}
	if parts[1] != day {
		return "", "", malformedQuery("Invalid X-Goog-Credential: its date is not the day of X-Goog-Date.")
	}
	return parts[0], strings.Join(parts[1:], "/"), nil
}

func parseExpires(s string) (time.Duration, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > v4MaxExpires {
		return 0, malformedQuery(fmt.Sprintf("Invalid X-Goog-Expires: want whole seconds from 1 to %d.", v4MaxExpires))
	}
	return time.Duration(n) * time.Second, nil
}

// parseSignedHeaders wants lowercase names, sorted, without repeats, with
// host among them: the form the spec gives and every client produces.
func parseSignedHeaders(s string) ([]string, error) {
	names := strings.Split(s, ";")
	for i, n := range names {
		if n == "" || n != strings.ToLower(n) || i > 0 && names[i-1] >= n {
			return nil, malformedQuery("Invalid X-Goog-SignedHeaders: want lowercase header names, sorted, separated by ';'.")
		}
	}
	if !slices.Contains(names, "host") {
		return nil, malformedQuery("Invalid X-Goog-SignedHeaders: the host header must be signed.")
	}
	return names, nil
}

// checkWindow refuses a URL used before X-Goog-Date or once X-Goog-Expires
// seconds have passed since.
func (p v4Query) checkWindow(now time.Time) error {
	if now.Before(p.start) {
		return expiredToken("Request is not yet valid.")
	}
	if end := p.start.Add(p.expires); !now.Before(end) {
		return expiredToken(fmt.Sprintf("Request has expired: %d", end.Unix()))
	}
	return nil
}

// canonicalRequest is the request as its signer described it: method,
// path, query without the signature, the signed headers, their names and
// the payload hash, one per line (Cloud Storage's canonical-requests spec).
func canonicalRequest(r *http.Request, q url.Values, signed []string, host string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	b.WriteString(canonicalPath(r.URL.Path) + "\n")
	b.WriteString(canonicalQuery(q) + "\n")
	for _, name := range signed {
		b.WriteString(name + ":" + headerValue(r, name, host) + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n")
	if slices.Contains(signed, "x-goog-content-sha256") {
		b.WriteString(headerValue(r, "x-goog-content-sha256", host))
	} else {
		b.WriteString(unsignedBody)
	}
	return b.String()
}

// canonicalPath percent-encodes each segment of the decoded path, with
// %20 for a space, as the client's pathEncodeV4 does.
func canonicalPath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	}
	return strings.Join(segs, "/")
}

// canonicalQuery is every parameter but the signature, sorted by name and
// percent-encoded with %20 for a space.
func canonicalQuery(q url.Values) string {
	c := maps.Clone(q)
	delete(c, paramSig)
	return strings.ReplaceAll(c.Encode(), "+", "%20")
}

// headerValue joins a header's values with commas, each trimmed and with
// runs of whitespace made one space.
func headerValue(r *http.Request, name, host string) string {
	if name == "host" {
		return host
	}
	vals := r.Header.Values(name)
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func stringToSign(p v4Query, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return v4Algorithm + "\n" + p.date + "\n" + p.scope + "\n" + hex.EncodeToString(sum[:])
}

// gcsError is Cloud Storage's XML error body, with the status it comes with.
type gcsError struct {
	XMLName          xml.Name `xml:"Error"`
	status           int
	Code             string `xml:"Code"`
	Message          string `xml:"Message"`
	Details          string `xml:"Details,omitempty"`
	StringToSign     string `xml:"StringToSign,omitempty"`
	CanonicalRequest string `xml:"CanonicalRequest,omitempty"`
}

func (e *gcsError) Error() string { return e.Code + ": " + e.reason() }

func (e *gcsError) reason() string {
	if e.Details != "" {
		return e.Details
	}
	return e.Message
}

func (e *gcsError) write(w http.ResponseWriter) {
	b, err := xml.Marshal(e)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// Literal newlines, as Cloud Storage sends, read better than &#xA;
	// and mean the same in element text.
	b = bytes.ReplaceAll(b, []byte("&#xA;"), []byte("\n"))
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write(append([]byte("<?xml version='1.0' encoding='UTF-8'?>"), b...))
}

func malformedQuery(msg string) error {
	return &gcsError{status: http.StatusBadRequest, Code: "AuthorizationQueryParametersError", Message: msg}
}

func expiredToken(details string) error {
	return &gcsError{status: http.StatusBadRequest, Code: "ExpiredToken", Message: "Invalid argument.", Details: details}
}

// signatureMismatch carries the string to sign and canonical request, as
// Cloud Storage does, so a signer can see where its form differs.
func signatureMismatch(sts, canonical string) error {
	return &gcsError{status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: "Access denied.",
		Details:      "The request signature we calculated does not match the signature you provided. Check your Google secret key and signing method.",
		StringToSign: sts, CanonicalRequest: canonical}
}
