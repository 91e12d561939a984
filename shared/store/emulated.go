package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"cloud.google.com/go/firestore"
)

// EmulatedProductNumber is the product number of every emulated device:
// with the "emu" id, it tells its events from real sensor data, as DT's
// emulated devices are told apart.
const EmulatedProductNumber = "EMULATED"

// ErrEmulated refuses to an emulated device what only a sensor takes: a
// configuration, which no radio would ever confirm.
var ErrEmulated = errors.New("store: an emulated device, not a sensor")

// ErrTooMany refuses an emulated device beyond a project's bound.
var ErrTooMany = errors.New("store: too many emulated devices")

// CreateEmulatedDevice creates emulated device id in a project that has
// fewer than limit of them. The count and the create are not one
// transaction: two racing creates can pass the bound by one each, which
// the bound allows for.
func (db *DB) CreateEmulatedDevice(ctx context.Context, id, project, typ string, labels map[string]string, limit int, at time.Time) (Device, error) {
	n, err := count(ctx, db.fs.Collection(devicesCollection).Where("projectId", "==", project).Where("emulated", "==", true).Limit(limit),
		"count emulated devices of "+project)
	if err != nil {
		return Device{}, err
	}
	if n >= int64(limit) {
		return Device{}, fmt.Errorf("%w: the project has %d", ErrTooMany, n)
	}
	if labels == nil {
		labels = map[string]string{}
	}
	d := Device{Type: typ, ProductNumber: EmulatedProductNumber, ProjectID: project, Labels: labels, Emulated: true, CreateTime: at}
	_, err = db.deviceRef(id).Create(ctx, d)
	return d, wrap("create emulated device "+id, err)
}

// DeleteEmulatedDevice deletes an emulated device of project; a real
// sensor, a Cloud Connector or another project's device is ErrNotFound.
// Its events stay until they expire, as a real device's do.
func (db *DB) DeleteEmulatedDevice(ctx context.Context, id, project string) error {
	ref := db.deviceRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if _, err := emulatedIn(tx, ref, project); err != nil {
			return err
		}
		return tx.Delete(ref)
	})
	return wrap("delete emulated device "+id, err)
}

// EmulatedEvent makes the event an emulated device publishes, given the
// device as read in the publish's transaction; an error refuses it.
type EmulatedEvent func(d Device) (id string, e Event, err error)

// PublishEmulated stores an emulated device's event and makes its data
// the device's reported state for its type, in one transaction. A device
// that is not project's emulated device is ErrNotFound.
func (db *DB) PublishEmulated(ctx context.Context, id, project string, make EmulatedEvent) error {
	ref := db.deviceRef(id)
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, err := emulatedIn(tx, ref, project)
		if err != nil {
			return err
		}
		evID, ev, err := make(d)
		if err != nil {
			return err
		}
		var data map[string]map[string]any
		if err := json.Unmarshal(ev.JSON, &struct {
			Data *map[string]map[string]any `json:"data"`
		}{&data}); err != nil {
			return fmt.Errorf("store: the event's data: %w", err)
		}
		if err := db.CreateEvent(tx, evID, ev); err != nil {
			return err
		}
		return tx.Update(ref, []firestore.Update{{FieldPath: firestore.FieldPath{"reported", ev.EventType}, Value: data[ev.EventType]}})
	})
	return wrap("publish as "+id, err)
}

// emulatedIn reads project's emulated device in tx; any other device is
// ErrNotFound, so an emulator call never reaches a real sensor.
func emulatedIn(tx *firestore.Transaction, ref *firestore.DocumentRef, project string) (Device, error) {
	d, err := getIn[Device](tx, ref)
	if err != nil {
		return Device{}, err
	}
	if !d.Emulated || d.ProjectID != project {
		return Device{}, ErrNotFound
	}
	return d, nil
}
