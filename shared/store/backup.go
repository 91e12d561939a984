package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/firestore"
)

// backupKinds are the registry collections a restore needs, in the order
// a restore writes them: a device before the lookup that names it. Events,
// sessions and the other collections rebuild themselves or belong to
// customers, so key backups leave them out.
var backupKinds = []string{
	kitsCollection,
	devicesCollection,
	deviceKeysCollection,
	cloudCollection,
	connectorsCollection,
}

// BackupKinds lists the collections a key backup holds, in restore order.
func BackupKinds() []string { return slices.Clone(backupKinds) }

// Record is one registry document as a key backup holds it: its
// collection (Kind), id, the time Firestore last changed it and its fields
// exactly as Firestore returned them, so that every field, including ones
// this package's structs do not name yet, survives a restore.
type Record struct {
	Kind       string
	ID         string
	UpdateTime time.Time
	Fields     map[string]any
}

// ErrBadRecord is a record a restore refuses: an unknown collection, an id
// that is not one document, or a field value of a type the registry never
// stores.
var ErrBadRecord = errors.New("store: record cannot be restored")

// maxDepth is Firestore's limit on nested maps and arrays.
const maxDepth = 20

// ValidRecord checks rec without touching Firestore, so that a restore can
// refuse a whole backup before it writes anything.
func ValidRecord(rec Record) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s/%s: %s", ErrBadRecord, rec.Kind, rec.ID, why)
	}
	switch {
	case !slices.Contains(backupKinds, rec.Kind):
		return bad("not a registry collection")
	case rec.ID == "" || rec.ID == "." || rec.ID == ".." || len(rec.ID) > 1500:
		return bad("not a document id")
	case strings.Contains(rec.ID, "/"):
		return bad("id names a path, not a document")
	case strings.HasPrefix(rec.ID, "__") && strings.HasSuffix(rec.ID, "__"):
		return bad("reserved document id")
	case rec.UpdateTime.IsZero():
		return bad("no update time")
	case rec.Fields == nil:
		return bad("no fields")
	}
	if err := validValue(rec.Fields, 0); err != nil {
		return bad(err.Error())
	}
	return nil
}

// validValue accepts the value types the registry's documents hold.
func validValue(v any, depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	switch v := v.(type) {
	case nil, bool, int64, float64, string, []byte, time.Time:
		return nil
	case []any:
		for _, e := range v {
			if err := validValue(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for k, e := range v {
			if k == "" {
				return errors.New("empty field name")
			}
			if err := validValue(e, depth+1); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	}
	return fmt.Errorf("field value of type %T", v)
}

// ExportRegistry reads every document of the backup kinds as of one read
// time, so that a device and its lookup are both in the export or both
// out of it, and hands them to emit a page at a time.
func (db *DB) ExportRegistry(ctx context.Context, pageSize int, emit func([]Record) error) error {
	readTime, err := db.serverTime(ctx)
	if err != nil {
		return err
	}
	for _, kind := range backupKinds {
		after := ""
		for {
			q := db.fs.Collection(kind).OrderBy(firestore.DocumentID, firestore.Asc).Limit(pageSize)
			if after != "" {
				q = q.StartAfter(after)
			}
			snaps, err := q.WithReadOptions(firestore.ReadTime(readTime)).Documents(ctx).GetAll()
			if err != nil {
				return wrap("export "+kind, err)
			}
			if len(snaps) == 0 {
				break
			}
			page := make([]Record, len(snaps))
			for i, s := range snaps {
				page[i] = Record{Kind: kind, ID: s.Ref.ID, UpdateTime: s.UpdateTime, Fields: s.Data()}
				if kind == devicesCollection {
					// A live session restored would roll its replay
					// window back: without it, the device's sensor
					// handshakes anew.
					delete(page[i].Fields, sessionField)
				}
				if err := ValidRecord(page[i]); err != nil {
					return fmt.Errorf("store: export: %w", err)
				}
			}
			if err := emit(page); err != nil {
				return err
			}
			if len(snaps) < pageSize {
				break
			}
			after = snaps[len(snaps)-1].Ref.ID
		}
	}
	return nil
}

// serverTime is Firestore's clock, read from a lookup of the cloud keys
// (found or not): a read time from this machine's clock could lie in
// Firestore's future, which it refuses.
func (db *DB) serverTime(ctx context.Context) (time.Time, error) {
	snaps, err := db.fs.GetAll(ctx, []*firestore.DocumentRef{db.fs.Collection(cloudCollection).Doc(cloudKeysDoc)})
	if err != nil {
		return time.Time{}, wrap("export: read time", err)
	}
	if len(snaps) != 1 || snaps[0].ReadTime.IsZero() {
		return time.Time{}, errors.New("store: export: Firestore gave no read time")
	}
	return snaps[0].ReadTime, nil
}

// Outcome is what restoring one record did, or in a dry run would do.
type Outcome int

// The outcomes of a restore.
const (
	Created   Outcome = iota + 1 // the document was missing
	Replaced                     // the stored document was older and differed
	KeptNewer                    // the stored document changed after the backup: never clobbered
	Unchanged                    // the stored document is the backed-up one
)

func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Replaced:
		return "replaced"
	case KeptNewer:
		return "kept-newer"
	case Unchanged:
		return "unchanged"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// judge decides a record's outcome against the stored document's update
// time and fields.
func judge(stored time.Time, storedFields map[string]any, rec Record) Outcome {
	switch {
	case stored.Equal(rec.UpdateTime) || sameValue(storedFields, rec.Fields):
		return Unchanged
	case stored.After(rec.UpdateTime):
		return KeptNewer
	}
	return Replaced
}

// MaxRestoreBatch is the most records RestoreRecords takes at once: one
// transaction's reads and writes, well under Firestore's 500 writes.
const MaxRestoreBatch = 200

// RestoreRecord writes rec back unless what is stored is newer; see
// RestoreRecords.
func (db *DB) RestoreRecord(ctx context.Context, rec Record, dryRun bool) (Outcome, error) {
	out, err := db.RestoreRecords(ctx, []Record{rec}, dryRun)
	if err != nil {
		return 0, err
	}
	return out[0], nil
}

// RestoreRecords writes back, in one transaction, each record that is
// missing (Created) or older than the record (Replaced), and leaves one
// that is newer (KeptNewer) or the same (Unchanged); a dry run only
// judges. A transaction per batch rather than per record is what makes a
// registry of thousands of devices restore in seconds.
func (db *DB) RestoreRecords(ctx context.Context, recs []Record, dryRun bool) ([]Outcome, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if len(recs) > MaxRestoreBatch {
		return nil, fmt.Errorf("store: restore %d records at once, limit %d", len(recs), MaxRestoreBatch)
	}
	refs := make([]*firestore.DocumentRef, len(recs))
	for i, rec := range recs {
		if err := ValidRecord(rec); err != nil {
			return nil, err
		}
		refs[i] = db.fs.Collection(rec.Kind).Doc(rec.ID)
	}
	var opts []firestore.TransactionOption
	if dryRun {
		opts = append(opts, firestore.ReadOnly)
	}
	out := make([]Outcome, len(recs))
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		for i, snap := range snaps {
			out[i] = Created
			if snap.Exists() {
				out[i] = judge(snap.UpdateTime, snap.Data(), recs[i])
			}
			if err := restoreWrite(tx, refs[i], recs[i], out[i], dryRun); err != nil {
				return err
			}
		}
		return nil
	}, opts...)
	if err != nil {
		return nil, wrap(fmt.Sprintf("restore %d records from %s/%s", len(recs), recs[0].Kind, recs[0].ID), err)
	}
	return out, nil
}

func restoreWrite(tx *firestore.Transaction, ref *firestore.DocumentRef, rec Record, out Outcome, dryRun bool) error {
	switch {
	case dryRun:
		return nil
	case out == Created:
		return tx.Create(ref, rec.Fields)
	case out == Replaced:
		return tx.Set(ref, rec.Fields)
	}
	return nil
}

// sameValue compares two field values as Firestore means them: times by
// instant, not by location.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Equal(b)
	case []byte:
		b, ok := b.([]byte)
		return ok && bytes.Equal(a, b)
	case []any:
		b, ok := b.([]any)
		return ok && slices.EqualFunc(a, b, sameValue)
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !sameValue(va, vb) {
				return false
			}
		}
		return true
	}
	return a == b
}

// WrapKeyOf is the KMS CryptoKey a record says wrapped the secrets it
// holds (a device's PSK, the cloud's keys), or "" if it names none; a
// backup's manifest lists them, since KMS ciphertext does not say.
func WrapKeyOf(rec Record) string {
	var field string
	switch {
	case rec.Kind == devicesCollection:
		field = "pskKey"
	case rec.Kind == cloudCollection && rec.ID == cloudKeysDoc:
		field = "wrapKey"
	default:
		return ""
	}
	s, _ := rec.Fields[field].(string)
	return s
}
