package store

import (
	"context"
	"time"
)

// devicesConfigPending is the sweep's query of configurations to expire:
// an equality on the status and a range on when it was requested, on
// different fields, need a composite index.
var _ = needs(devicesCollection, Field{"configuration.status", Asc}, Field{"configuration.requested", Asc})

// StaleConfigurations lists the ids of devices whose configuration is
// PENDING and was requested before cutoff: the ones to expire.
func (db *DB) StaleConfigurations(ctx context.Context, cutoff time.Time) ([]string, error) {
	docs, err := db.fs.Collection(devicesCollection).
		Where("configuration.status", "==", ConfigPending).Where("configuration.requested", "<", cutoff).
		Select().Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("stale configurations", err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Ref.ID
	}
	return ids, nil
}
