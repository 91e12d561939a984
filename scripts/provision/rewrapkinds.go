package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sealedsense/sealedsense/shared/apikey"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/dataconnector"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Kind names, as cursors carry them.
const (
	kindDevices        = "devices"
	kindAPIKeys        = "api-keys"
	kindPageTokenKey   = "api-page-token-key"
	kindDataConnectors = "data-connectors"
	kindCloudKeys      = "cloud-keys"
	kindSessionKEKs    = "session-keks"
)

// rewrapKinds is every kind of stored secret, in the order a run takes
// them, each with the CryptoKey that wraps it and the additional data
// its owner wraps it with.
func rewrapKinds(e *env, opts rewrapOpts) []secretKind {
	db := store.New(e.fs)
	return []secretKind{
		devicePSKs(db, custody.NewWrapper(e.kms, e.deviceKey)),
		apiKeySecrets(db, custody.NewWrapper(e.kms, opts.apiSecretsKey)),
		pageTokenKey(db, custody.NewWrapper(e.kms, opts.apiSecretsKey)),
		dataConnectorSecrets(db, custody.NewWrapper(e.kms, opts.webhookSecretsKey)),
		cloudKeys(db, kindCloudKeys, custody.NewWrapper(e.kms, e.deviceKey), store.RoleStatic, store.RoleChannel),
		cloudKeys(db, kindSessionKEKs, custody.NewWrapper(e.kms, e.kekKey), store.RoleKEK),
	}
}

// devicePSKs also records the CryptoKey in pskKey, which older devices
// lack.
func devicePSKs(db *store.DB, w *custody.Wrapper) secretKind {
	return secretKind{name: kindDevices, keys: w,
		page: func(ctx context.Context, after string, n int) ([]stored, error) {
			docs, err := db.DevicePSKs(ctx, after, n)
			out := make([]stored, len(docs))
			for i, d := range docs {
				out[i] = stored{id: d.ID, wrapped: d.Doc.WrappedPSK, aad: registry.PSKAAD(d.ID),
					outdated: d.Doc.PSKKey != w.KeyName(), version: d.Version}
			}
			return out, err
		},
		replace: func(ctx context.Context, s stored, wrapped []byte) error {
			return db.ReplaceDevicePSK(ctx, s.id, s.wrapped, wrapped, w.KeyName())
		},
	}
}

// apiKeySecrets binds keys minted before the account binding to their
// account as they are re-wrapped.
func apiKeySecrets(db *store.DB, w *custody.Wrapper) secretKind {
	return secretKind{name: kindAPIKeys, keys: w,
		page: func(ctx context.Context, after string, n int) ([]stored, error) {
			docs, err := db.KeySecrets(ctx, after, n)
			out := make([]stored, len(docs))
			for i, d := range docs {
				out[i] = stored{id: d.ID, wrapped: d.Doc.WrappedSecret,
					aad:    apikey.StoredSecretAAD(d.ID, d.Doc.Account, d.Doc.AccountBound),
					newAAD: apikey.SecretAAD(d.ID, d.Doc.Account), version: d.Version}
			}
			return out, err
		},
		replace: func(ctx context.Context, s stored, wrapped []byte) error {
			return db.ReplaceKeySecret(ctx, s.id, s.version, wrapped)
		},
	}
}

// pageTokenKey is a singleton, read as one page of one record.
func pageTokenKey(db *store.DB, w *custody.Wrapper) secretKind {
	const id = "key"
	return secretKind{name: kindPageTokenKey, keys: w,
		page: func(ctx context.Context, after string, _ int) ([]stored, error) {
			if after != "" {
				return nil, nil
			}
			wrapped, version, err := db.WrappedPageTokenKey(ctx)
			if store.IsNotFound(err) {
				return nil, nil // the API has not listed anything yet
			}
			if err != nil {
				return nil, err
			}
			return []stored{{id: id, wrapped: wrapped, aad: apikey.PageKeyAAD(), version: version}}, nil
		},
		replace: func(ctx context.Context, s stored, wrapped []byte) error {
			return db.ReplacePageTokenKey(ctx, s.version, wrapped)
		},
	}
}

func dataConnectorSecrets(db *store.DB, w *custody.Wrapper) secretKind {
	return secretKind{name: kindDataConnectors, keys: w,
		page: func(ctx context.Context, after string, n int) ([]stored, error) {
			docs, err := db.DataConnectorSecrets(ctx, after, n)
			out := make([]stored, len(docs))
			for i, d := range docs {
				out[i] = stored{id: d.ID, wrapped: d.Doc.WrappedSecret,
					aad: dataconnector.SecretAAD(d.Doc.ProjectID, d.ID), version: d.Version}
			}
			return out, err
		},
		replace: func(ctx context.Context, s stored, wrapped []byte) error {
			return db.ReplaceDataConnectorSecret(ctx, s.id, s.version, wrapped)
		},
	}
}

// cloudKeys are the versions of the cloud's own keys of roles, all
// wrapped by one CryptoKey: the static and channel keys by the device
// key, the session KEKs by the session-KEK key. They live in one document,
// read as one page; a record's id is role/version, and its write finds
// the wrapped bytes it read or changes nothing.
func cloudKeys(db *store.DB, name string, w *custody.Wrapper, roles ...store.KeyRole) secretKind {
	return secretKind{name: name, keys: w,
		page: func(ctx context.Context, after string, _ int) ([]stored, error) {
			if after != "" {
				return nil, nil
			}
			ck, err := db.CloudKeys(ctx)
			if store.IsNotFound(err) {
				return nil, nil // not bootstrapped yet
			}
			if err != nil {
				return nil, err
			}
			var out []stored
			for _, role := range roles {
				for _, k := range ck.Versions(role) {
					out = append(out, stored{id: fmt.Sprintf("%s/%d", role, k.Version), wrapped: k.Wrapped, aad: registry.CloudKeyAAD(role, k.Version)})
				}
			}
			return out, nil
		},
		replace: func(ctx context.Context, s stored, wrapped []byte) error {
			role, v, ok := strings.Cut(s.id, "/")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				return fmt.Errorf("cloud key record %q", s.id)
			}
			return db.ReplaceCloudKeyWrapped(ctx, store.KeyRole(role), n, s.wrapped, wrapped)
		},
	}
}
