package keybackup_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/keybackup"
	"github.com/sealedsense/sealedsense/shared/store"
)

// world is one test's project: its Firestore, KMS keys and buckets.
type world struct {
	t       *testing.T
	project string
	fs      *firestore.Client
	keys    stack.Keys
	deps    keybackup.Deps
	logs    *bytes.Buffer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	project := platformtest.ProjectID(t)
	kc := platformtest.KMS(t)
	keys, err := stack.EnsureKMS(ctx, kc, "projects/"+project+"/locations/europe/keyRings/ring")
	if err != nil {
		t.Fatal(err)
	}
	fs := platformtest.Firestore(t, project)
	logs := &bytes.Buffer{}
	return &world{t: t, project: project, fs: fs, keys: keys, logs: logs, deps: keybackup.Deps{
		DB: store.New(fs), KEK: custody.NewWrapper(kc, keys.Backup), Storage: platformtest.Storage(t),
		Project: project, Log: slog.New(slog.NewJSONHandler(logs, nil)),
	}}
}

// bucket creates a bucket only this test uses.
func (w *world) bucket(suffix string) string {
	w.t.Helper()
	name := w.project + "-" + suffix
	if err := w.deps.Storage.Bucket(name).Create(context.Background(), "test", nil); err != nil {
		w.t.Fatal(err)
	}
	return name
}

func (w *world) put(path string, fields map[string]any) {
	w.t.Helper()
	if _, err := w.fs.Doc(path).Set(context.Background(), fields); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) read(bucket, object string) []byte {
	w.t.Helper()
	r, err := w.deps.Storage.Bucket(bucket).Object(object).NewReader(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) write(bucket, object string, data []byte) {
	w.t.Helper()
	o := w.deps.Storage.Bucket(bucket).Object(object).NewWriter(context.Background())
	if _, err := o.Write(data); err != nil {
		w.t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		w.t.Fatal(err)
	}
}

// docs reads every document of the backup kinds, by path.
func (w *world) docs() map[string]map[string]any {
	w.t.Helper()
	out := map[string]map[string]any{}
	for _, kind := range store.BackupKinds() {
		snaps, err := w.fs.Collection(kind).Documents(context.Background()).GetAll()
		if err != nil {
			w.t.Fatal(err)
		}
		for _, s := range snaps {
			out[kind+"/"+s.Ref.ID] = s.Data()
		}
	}
	return out
}

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 123456000, time.UTC)

// every Firestore value type the registry stores.
var allTypes = map[string]any{
	"string": "s", "int": int64(-1 << 40), "float": 2.5, "wholeFloat": 3.0, "bytes": []byte{0, 1, 255}, "time": t0,
	"null": nil, "bool": true, "emptyMap": map[string]any{}, "emptyArray": []any{},
	"array": []any{"a", int64(1), 1.5, []byte{9}, t0, nil, false, map[string]any{"in": int64(2)}},
	"map":   map[string]any{"nested": map[string]any{"time": t0, "bytes": []byte{7}, "list": []any{int64(3)}}},
}

// TestEveryValueTypeRoundTrips: a record holding each Firestore value
// type the registry uses comes back from a backup with the same types and
// values, written into a fresh project.
func TestEveryValueTypeRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.put("devices/d1", allTypes)
	b := w.bucket("a")
	res, err := keybackup.Run(ctx, w.deps, []string{b})
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := keybackup.Load(ctx, w.deps, b, res.Object)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.fs.Doc("devices/d1").Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := keybackup.Restore(ctx, w.deps, recs, false); err != nil {
		t.Fatal(err)
	}
	snap, err := w.fs.Doc("devices/d1").Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := snap.Data()
	for k, want := range allTypes {
		if !same(got[k], want) {
			t.Errorf("field %s: got %#v, want %#v", k, got[k], want)
		}
	}
}

// same compares Firestore values with their exact Go types.
func same(a, b any) bool {
	switch b := b.(type) {
	case time.Time:
		a, ok := a.(time.Time)
		return ok && a.Equal(b)
	case []byte:
		a, ok := a.([]byte)
		return ok && bytes.Equal(a, b)
	case []any:
		a, ok := a.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range b {
			if !same(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		a, ok := a.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k := range b {
			if !same(a[k], b[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestRunWritesEveryBucketOnItsOwn: a first bucket that does not exist
// fails and is reported, and the second still receives the backup.
func TestRunWritesEveryBucketOnItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.put("devices/d1", map[string]any{"pskKey": w.keys.Device})
	missing := w.project + "-missing"
	good := w.bucket("b")
	res, err := keybackup.Run(ctx, w.deps, []string{missing, good})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Run = %v, want an error naming %s", err, missing)
	}
	if len(res.Written) != 1 || res.Written[0] != good {
		t.Fatalf("written to %v, want [%s]", res.Written, good)
	}
	if _, _, err := keybackup.Load(ctx, w.deps, good, res.Object); err != nil {
		t.Fatalf("the second bucket's backup does not open: %v", err)
	}
	logs := w.logs.String()
	for _, want := range []string{`"msg":"key backup failed","alert":"key-backup-failed","bucket":"` + missing, `"msg":"key backup written","bucket":"` + good, `"devices":1`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// TestBadBackupsAreRefused: each damaged or foreign object is refused with
// its own error, and nothing is written.
func TestBadBackupsAreRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.put("devices/d1", map[string]any{"pskKey": w.keys.Device, "wrappedPsk": []byte{1, 2, 3}})
	w.put("connectors/c1", map[string]any{"publicKey": []byte{4}})
	b := w.bucket("c")
	res, err := keybackup.Run(ctx, w.deps, []string{b})
	if err != nil {
		t.Fatal(err)
	}
	good := w.read(b, res.Object)
	m, _, err := keybackup.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	manifestEnd := len(good) - m.BodyBytes
	flip := func(i int) []byte { c := bytes.Clone(good); c[i] ^= 1; return c }
	valueAt := func(field string) int { return bytes.Index(good, []byte(`"`+field+`":`)) + len(field) + 4 }
	reframe := func(edit func(*keybackup.Manifest)) []byte {
		m := m
		m.WrappedKey = bytes.Clone(m.WrappedKey)
		edit(&m)
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out := binary.LittleEndian.AppendUint32([]byte(keybackup.Magic+"\x01"), uint32(len(j)))
		return append(append(out, j...), good[manifestEnd:]...)
	}

	// Another project's backup, and one wrapped by another key.
	other := newWorld(t)
	other.put("devices/d9", map[string]any{"x": "y"})
	otherBucket := other.bucket("c")
	foreign, err := keybackup.Run(ctx, other.deps, []string{otherBucket})
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := w.deps
	wrongKey.KEK = custody.NewWrapper(platformtest.KMS(t), w.keys.Device)
	wrongObj, err := keybackup.Run(ctx, wrongKey, []string{b})
	if err != nil {
		t.Fatal(err)
	}

	// The registry is wiped, so a refused restore that wrote would show.
	for path := range w.docs() {
		if _, err := w.fs.Doc(path).Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		object string // "": the original's name, in a bucket of its own
		data   []byte // nil: the object as stored
		want   error
	}{
		{"truncated", "", good[:len(good)-100], keybackup.ErrTruncated},
		{"truncated in the header", "", good[:7], keybackup.ErrTruncated},
		{"a byte of the body flipped", "", flip(len(good) - 20), keybackup.ErrTampered},
		{"the manifest's project flipped", "", flip(valueAt("project")), keybackup.ErrForeignProject},
		{"the manifest's counts flipped", "", flip(bytes.Index(good, []byte(`"devices":1`)) + len(`"devices":`)), keybackup.ErrTampered},
		{"the manifest's wrapped key flipped", "", reframe(func(m *keybackup.Manifest) { m.WrappedKey[10] ^= 1 }), keybackup.ErrTampered},
		{"the manifest's time flipped", "", flip(valueAt("created") + 3), keybackup.ErrTampered},
		{"the manifest's hash changed", "", reframe(func(m *keybackup.Manifest) { m.BodySHA256 = strings.Repeat("0", 64) }), keybackup.ErrTampered},
		{"the manifest's key version changed", "", reframe(func(m *keybackup.Manifest) { m.KMSVersion = w.keys.Device + "/cryptoKeyVersions/1" }), keybackup.ErrKMSVersion},
		{"copied under another name", "keybackups/renamed.ssbk", good, keybackup.ErrMisnamed},
		{"another project's backup", foreign.Object, other.read(otherBucket, foreign.Object), keybackup.ErrForeignProject},
		{"wrapped by another KMS key", wrongObj.Object, nil, keybackup.ErrKMSVersion},
		{"not a backup", "keybackups/readme.ssbk", []byte("hello, this is not a backup at all"), keybackup.ErrNotBackup},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bucket := b
			if c.object == "" {
				bucket, c.object = w.bucket(fmt.Sprint("t", i)), res.Object
			}
			if c.data != nil {
				w.write(bucket, c.object, c.data)
			}
			_, recs, err := keybackup.Load(ctx, w.deps, bucket, c.object)
			if !errors.Is(err, c.want) || recs != nil {
				t.Fatalf("Load = %d records, %v; want %v", len(recs), err, c.want)
			}
		})
	}
	if n := len(w.docs()); n != 0 {
		t.Fatalf("refused backups left %d documents", n)
	}
	// Whichever bit of the header and manifest is flipped, the backup is
	// refused.
	want := keybackup.Expect{Project: w.project, Object: res.Object, BackupKey: w.keys.Backup}
	for i := range manifestEnd {
		for _, bit := range []byte{0x01, 0x80} {
			c := bytes.Clone(good)
			c[i] ^= bit
			if _, _, err := keybackup.Open(ctx, c, want, w.deps.KEK); err == nil {
				t.Fatalf("flipping bit %#x of byte %d (%q) went unnoticed", bit, i, good[i])
			}
		}
	}
	if _, _, err := keybackup.Load(ctx, w.deps, b, res.Object); err != nil {
		t.Fatalf("the intact backup does not open: %v", err)
	}
}

// TestRunLeavesConnectorDevicesOut: a Cloud Connector's device holds no
// key, so a backup holds the connector's record and not its device, and
// counts sensors only.
func TestRunLeavesConnectorDevicesOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	w.put("devices/d1", map[string]any{"type": "temperature", "pskKey": w.keys.Device})
	w.put("connectors/ccon-1", map[string]any{"projectId": "p", "publicKey": []byte{1}})
	w.put("devices/ccon-1", map[string]any{"type": store.ConnectorType, "projectId": "p"})
	b := w.bucket("b")
	res, err := keybackup.Run(ctx, w.deps, []string{b})
	if err != nil {
		t.Fatal(err)
	}
	m, recs, err := keybackup.Load(ctx, w.deps, b, res.Object)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Kind+"/"+r.ID)
	}
	if strings.Join(got, " ") != "devices/d1 connectors/ccon-1" || m.Counts["devices"] != 1 || m.Counts["connectors"] != 1 {
		t.Fatalf("backup holds %v, counts %v; want devices/d1 and connectors/ccon-1", got, m.Counts)
	}
}
