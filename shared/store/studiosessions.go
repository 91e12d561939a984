package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// studioSessionsCollection holds Studio's server-side sessions, one
// document per signed-in browser. A document is named by the SHA-256 of
// the session's token, never the token: someone who can read Firestore
// cannot sign in with what they read. Its expireAt is a TTL field.
const studioSessionsCollection = "studioSessions"

// Neither the sessions' last use nor their expiry is queried.
var _ = rising(studioSessionsCollection, "lastSeen", "expireAt")

// StudioSession is a person's signed-in session in Studio.
type StudioSession struct {
	Email    string    `firestore:"email"`   // verified, from the issuer
	Subject  string    `firestore:"subject"` // the issuer's id of the person
	Issuer   string    `firestore:"issuer"`
	CSRFHash string    `firestore:"csrfHash"` // SHA-256 of the session's CSRF token
	Created  time.Time `firestore:"created"`
	LastSeen time.Time `firestore:"lastSeen"`
	// ExpireAt is the absolute end of the session (and its TTL).
	ExpireAt time.Time `firestore:"expireAt"`
}

// ErrSessionEnded refuses a session that is unknown, signed out, idle
// too long or past its absolute end: the person signs in again.
var ErrSessionEnded = errors.New("store: the session has ended")

// SessionLimits bound a session's life.
type SessionLimits struct {
	Idle     time.Duration // since its last use
	Absolute time.Duration // since sign-in
}

// Live says whether s may still be used at now (pure).
func (s StudioSession) Live(now time.Time, l SessionLimits) error {
	switch {
	case !now.Before(s.ExpireAt) || !now.Before(s.Created.Add(l.Absolute)):
		return fmt.Errorf("%w: past its absolute end", ErrSessionEnded)
	case !now.Before(s.LastSeen.Add(l.Idle)):
		return fmt.Errorf("%w: idle since %s", ErrSessionEnded, s.LastSeen.UTC().Format(time.RFC3339))
	}
	return nil
}

// newToken is a random 256-bit token, base64url.
func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// TokenHash is the SHA-256 of a token, hex: what is stored of a session
// or CSRF token.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func (db *DB) studioSessionRef(token string) *firestore.DocumentRef {
	return db.fs.Collection(studioSessionsCollection).Doc(TokenHash(token))
}

// CreateStudioSession stores a new session for a person signed in at
// now, and returns its token and CSRF token, which only the person's
// browser is given.
func (db *DB) CreateStudioSession(ctx context.Context, email, subject, issuer string, now time.Time, l SessionLimits) (token, csrf string, err error) {
	if token, err = newToken(); err != nil {
		return "", "", err
	}
	if csrf, err = newToken(); err != nil {
		return "", "", err
	}
	s := StudioSession{Email: email, Subject: subject, Issuer: issuer, CSRFHash: TokenHash(csrf),
		Created: now, LastSeen: now, ExpireAt: now.Add(l.Absolute)}
	if _, err := db.studioSessionRef(token).Create(ctx, s); err != nil {
		return "", "", wrap("create studio session", err)
	}
	return token, csrf, nil
}

// UseStudioSession reads the session of token and, if it is live, marks
// it used at now; a session that is not is ErrSessionEnded. The mark is
// written only once a minute, so a busy page costs no write per request.
func (db *DB) UseStudioSession(ctx context.Context, token string, now time.Time, l SessionLimits) (StudioSession, error) {
	ref := db.studioSessionRef(token)
	s, err := get[StudioSession](ctx, ref, "studio session")
	if IsNotFound(err) {
		return StudioSession{}, fmt.Errorf("%w: unknown or signed out", ErrSessionEnded)
	}
	if err != nil {
		return StudioSession{}, err
	}
	if err := s.Live(now, l); err != nil {
		return StudioSession{}, err
	}
	if now.Sub(s.LastSeen) >= time.Minute {
		s.LastSeen = now
		if _, err := ref.Update(ctx, []firestore.Update{{Path: "lastSeen", Value: now}}); err != nil {
			return StudioSession{}, wrap("studio session", err)
		}
	}
	return s, nil
}

// EndStudioSession deletes the session of token: signing out, or a
// revocation. Ending one that is gone is no error.
func (db *DB) EndStudioSession(ctx context.Context, token string) error {
	_, err := db.studioSessionRef(token).Delete(ctx)
	return wrap("end studio session", err)
}

// studioLoginsCollection holds sign-ins under way: what Studio must
// check when the identity provider sends the person back. A document is
// named by the SHA-256 of the sign-in's state, used once, and expires.
const studioLoginsCollection = "studioLogins"

var _ = rising(studioLoginsCollection, "expireAt")

// StudioLogin is a sign-in under way.
type StudioLogin struct {
	// Verifier is the PKCE code verifier: only this server and the
	// token exchange ever see it.
	Verifier string    `firestore:"verifier"`
	Nonce    string    `firestore:"nonce"`
	ExpireAt time.Time `firestore:"expireAt"`
}

// ErrLoginUnknown refuses a callback whose sign-in is unknown, used or
// expired.
var ErrLoginUnknown = errors.New("store: no such sign-in under way")

// BeginStudioLogin stores a sign-in under way for state.
func (db *DB) BeginStudioLogin(ctx context.Context, state string, l StudioLogin) error {
	_, err := db.fs.Collection(studioLoginsCollection).Doc(TokenHash(state)).Create(ctx, l)
	return wrap("begin studio login", err)
}

// EndStudioLogin reads and deletes the sign-in of state in one
// transaction, so a callback replayed or raced gets ErrLoginUnknown.
func (db *DB) EndStudioLogin(ctx context.Context, state string, now time.Time) (StudioLogin, error) {
	ref := db.fs.Collection(studioLoginsCollection).Doc(TokenHash(state))
	var l StudioLogin
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snap, err := tx.Get(ref)
		if IsNotFound(err) {
			return ErrLoginUnknown
		}
		if err != nil {
			return err
		}
		if err := snap.DataTo(&l); err != nil {
			return err
		}
		return tx.Delete(ref)
	})
	if errors.Is(err, ErrLoginUnknown) {
		return StudioLogin{}, err
	}
	if err != nil {
		return StudioLogin{}, wrap("end studio login", err)
	}
	if !now.Before(l.ExpireAt) {
		return StudioLogin{}, fmt.Errorf("%w: it expired", ErrLoginUnknown)
	}
	return l, nil
}
