package main

import (
	"context"

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
			return db.ReplaceDevicePSK(ctx, s.id, s.version, wrapped, w.KeyName())
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
