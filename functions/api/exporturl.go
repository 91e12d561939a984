package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"time"

	"cloud.google.com/go/storage"
)

// gcsSigner signs V4 download URLs of the export bucket's objects. In GCP
// the client library signs as the function's own service account
// through IAM's signBlob (the account may sign only as itself, and reads
// only the export bucket, so a URL grants no more than that). A local
// run gives a key file instead, and the storage emulator checks what it
// signs as Cloud Storage does.
type gcsSigner struct {
	bucket *storage.BucketHandle
	opts   storage.SignedURLOptions
}

// newURLSigner signs for bucket; keyFile, when set, is a service-account
// key file to sign with, and emulator the storage emulator's origin.
func newURLSigner(gcs *storage.Client, bucket, keyFile, emulator string) (*gcsSigner, error) {
	s := &gcsSigner{bucket: gcs.Bucket(bucket), opts: storage.SignedURLOptions{Scheme: storage.SigningSchemeV4, Method: "GET"}}
	if keyFile == "" {
		return s, nil
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("api: URL signer: %w", err)
	}
	var key struct {
		Email      string `json:"client_email"`
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &key); err != nil || key.Email == "" || key.PrivateKey == "" {
		return nil, fmt.Errorf("api: URL signer %s: not a service-account key file", keyFile)
	}
	s.opts.GoogleAccessID, s.opts.PrivateKey = key.Email, []byte(key.PrivateKey)
	if emulator != "" {
		u, err := url.Parse(emulator)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("api: storage emulator %q", emulator)
		}
		s.opts.Hostname, s.opts.Insecure = u.Host, u.Scheme == "http"
	}
	return s, nil
}

// SignedURL signs a GET of object valid until expires.
func (s *gcsSigner) SignedURL(_ context.Context, object string, expires time.Time) (string, error) {
	o := s.opts
	o.Expires = expires
	u, err := s.bucket.SignedURL(object, &o)
	if err != nil {
		return "", fmt.Errorf("api: sign export URL: %w", err)
	}
	return u, nil
}
