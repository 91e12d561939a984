package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func TestValidRecord(t *testing.T) {
	t.Parallel()
	ok := Record{Kind: devicesCollection, ID: "dev-1", UpdateTime: t0, Fields: map[string]any{
		"s": "x", "i": int64(1), "f": 1.5, "b": []byte{1}, "t": t0, "n": nil, "ok": true,
		"a": []any{int64(1), "x"}, "m": map[string]any{"k": map[string]any{"v": t0}},
	}}
	deep := map[string]any{}
	for cur, i := deep, 0; i < maxDepth+1; i++ {
		next := map[string]any{}
		cur["x"] = next
		cur = next
	}
	cases := []struct {
		name string
		edit func(*Record)
		want string // a fragment of the error, "" for valid
	}{
		{"every registry value type", func(*Record) {}, ""},
		{"each registry kind", func(r *Record) { r.Kind = cloudCollection }, ""},
		{"another collection", func(r *Record) { r.Kind = "events" }, "not a registry collection"},
		{"a subcollection path", func(r *Record) { r.Kind = "devices/x/y" }, "not a registry collection"},
		{"empty id", func(r *Record) { r.ID = "" }, "not a document id"},
		{"dot id", func(r *Record) { r.ID = ".." }, "not a document id"},
		{"id with a slash", func(r *Record) { r.ID = "a/b" }, "path"},
		{"reserved id", func(r *Record) { r.ID = "__x__" }, "reserved"},
		{"long id", func(r *Record) { r.ID = strings.Repeat("a", 1501) }, "not a document id"},
		{"no update time", func(r *Record) { r.UpdateTime = time.Time{} }, "update time"},
		{"nil fields", func(r *Record) { r.Fields = nil }, "no fields"},
		{"an unsigned integer", func(r *Record) { r.Fields = map[string]any{"u": uint64(1)} }, "uint64"},
		{"a nested foreign type", func(r *Record) { r.Fields = map[string]any{"a": []any{int32(1)}} }, "int32"},
		{"an empty field name", func(r *Record) { r.Fields = map[string]any{"": "x"} }, "empty field name"},
		{"nested too deeply", func(r *Record) { r.Fields = deep }, "deeply"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := ok
			c.edit(&r)
			err := ValidRecord(r)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (!errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err = %v, want ErrBadRecord mentioning %q", err, c.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	rec := Record{UpdateTime: t0, Fields: map[string]any{"a": int64(1), "t": t0}}
	inParis := map[string]any{"a": int64(1), "t": t0.In(time.FixedZone("CEST", 7200))}
	cases := []struct {
		name   string
		stored time.Time
		fields map[string]any
		want   Outcome
	}{
		{"same update time", t0, map[string]any{"a": int64(2)}, Unchanged},
		{"same fields, restored later", t0.Add(time.Hour), inParis, Unchanged},
		{"newer and different", t0.Add(time.Microsecond), map[string]any{"a": int64(2)}, KeptNewer},
		{"older and different", t0.Add(-time.Hour), map[string]any{"a": int64(2)}, Replaced},
		{"older with a field missing", t0.Add(-time.Hour), map[string]any{"a": int64(1)}, Replaced},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := judge(c.stored, c.fields, rec); got != c.want {
				t.Fatalf("judge = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSameValue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		a, b any
		want bool
	}{
		{"equal bytes", []byte{1, 2}, []byte{1, 2}, true},
		{"different bytes", []byte{1, 2}, []byte{1, 3}, false},
		{"bytes and string", []byte("a"), "a", false},
		{"int and float", int64(1), 1.0, false},
		{"nil and nil", nil, nil, true},
		{"arrays", []any{int64(1), []byte{2}}, []any{int64(1), []byte{2}}, true},
		{"arrays of different length", []any{int64(1)}, []any{int64(1), int64(2)}, false},
		{"maps with another key", map[string]any{"a": nil}, map[string]any{"b": nil}, false},
		{"time in two zones", t0, t0.In(time.FixedZone("X", 3600)), true},
		{"time and another time", t0, t0.Add(time.Microsecond), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := sameValue(c.a, c.b); got != c.want {
				t.Fatalf("sameValue(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
			}
		})
	}
}

// exportAll gathers ExportRegistry's pages.
func exportAll(t *testing.T, db *DB, pageSize int) []Record {
	t.Helper()
	var all []Record
	err := db.ExportRegistry(context.Background(), pageSize, func(p []Record) error {
		if len(p) > pageSize {
			t.Errorf("page of %d records, page size %d", len(p), pageSize)
		}
		all = append(all, p...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestExportAndRestore: every registry collection is exported in pages,
// nothing else is; restoring into an empty project creates each record
// with its fields; restoring again changes nothing; a newer stored record
// is kept and a dry run writes nothing.
func TestExportAndRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	fields := map[string]any{"name": "x", "n": int64(-3), "f": 0.25, "b": []byte{0, 255}, "t": t0, "null": nil, "ok": true,
		"arr": []any{"a", int64(2), map[string]any{"k": []byte{1}}}, "map": map[string]any{"in": map[string]any{"t": t0}}}
	docs := map[string]map[string]any{
		"devices/d1": fields, "devices/d2": {"a": "b"}, "devices/d3": {}, "deviceKeys/h1": {"deviceId": "d1"},
		"cloud/keys": {"wrapKey": "k"}, "connectors/c1": {"revoked": true}, "kits/k1": {"deviceIds": []any{"d1"}},
		"events/e1": {"not": "backed up"},
	}
	for path, f := range docs {
		if _, err := src.fs.Doc(path).Create(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	recs := exportAll(t, src, 2)
	if len(recs) != len(docs)-1 {
		t.Fatalf("exported %d records, want %d (every registry document, no event)", len(recs), len(docs)-1)
	}

	dst := New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	restoreAll := func(dryRun bool, want Outcome) {
		t.Helper()
		for _, r := range recs {
			got, err := dst.RestoreRecord(ctx, r, dryRun)
			if err != nil || got != want {
				t.Fatalf("restore %s/%s (dry run %v) = %v, %v; want %v", r.Kind, r.ID, dryRun, got, err, want)
			}
		}
	}
	restoreAll(true, Created)
	if n := len(exportAll(t, dst, 10)); n != 0 {
		t.Fatalf("a dry run wrote %d documents", n)
	}
	restoreAll(false, Created)
	for _, r := range recs {
		snap, err := dst.fs.Collection(r.Kind).Doc(r.ID).Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !sameValue(snap.Data(), docs[r.Kind+"/"+r.ID]) {
			t.Fatalf("%s/%s restored as %v, want %v", r.Kind, r.ID, snap.Data(), docs[r.Kind+"/"+r.ID])
		}
	}
	restoreAll(false, Unchanged)

	// A record changed after the backup is never put back.
	if _, err := dst.fs.Doc("devices/d2").Set(ctx, map[string]any{"a": "newer"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID != "d2" {
			continue
		}
		if got, err := dst.RestoreRecord(ctx, r, false); err != nil || got != KeptNewer {
			t.Fatalf("restore over a newer record = %v, %v; want kept-newer", got, err)
		}
	}
	snap, err := dst.fs.Doc("devices/d2").Get(ctx)
	if err != nil || snap.Data()["a"] != "newer" {
		t.Fatalf("newer record after restore: %v, %v", snap.Data(), err)
	}

	if _, err := dst.RestoreRecord(ctx, Record{Kind: "events", ID: "e1", UpdateTime: t0, Fields: map[string]any{}}, false); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("restore of an event: %v, want ErrBadRecord", err)
	}
	if _, err := dst.fs.Doc("events/e1").Get(ctx); !IsNotFound(err) {
		t.Fatalf("the refused record was written: %v", err)
	}
}

// TestRestoreReplacesOlder: a stored record older than the backup's and
// different from it is replaced by the backup's.
func TestRestoreReplacesOlder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := New(platformtest.Firestore(t, platformtest.ProjectID(t)))
	ref := db.fs.Doc("kits/k")
	if _, err := ref.Create(ctx, map[string]any{"displayName": "old"}); err != nil {
		t.Fatal(err)
	}
	rec := Record{Kind: kitsCollection, ID: "k", UpdateTime: time.Now().Add(time.Hour), Fields: map[string]any{"displayName": "backed up"}}
	if got, err := db.RestoreRecord(ctx, rec, false); err != nil || got != Replaced {
		t.Fatalf("restore = %v, %v; want replaced", got, err)
	}
	k, err := get[Kit](ctx, ref, "kit")
	if err != nil || k.DisplayName != "backed up" {
		t.Fatalf("kit after restore: %+v, %v", k, err)
	}
}
