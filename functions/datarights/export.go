package datarights

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/shared/store"
)

// exportSteps are what an export writes, in order; a filtered export (a
// request about some devices) holds only those devices and their events.
func exportSteps(j *store.DataJob) []string {
	if j.Filtered {
		return []string{"devices", "events", manifestStep}
	}
	return append(append([]string{"devices", "events"}, slices.DeleteFunc(store.ExportKinds(), func(k string) bool { return k == "devices" })...), manifestStep)
}

const manifestStep = "manifest"

// ExportPrefix is where a project's exports live in the bucket; erasing
// the project deletes everything under it.
func ExportPrefix(project string) string { return "projects/" + project + "/exports/" }

// ManifestName is the object name of an export's manifest.
func ManifestName(project, job string) string { return ExportPrefix(project) + job + "/manifest.json" }

// exportPage writes the next file of the current step.
func (s *Service) exportPage(ctx context.Context, id string, j *store.DataJob) (bool, error) {
	// A project being erased exports nothing more: its erasure empties
	// the bucket once and must not find files added after.
	p, err := s.db.Project(ctx, j.ProjectID)
	switch {
	case store.IsNotFound(err) || (err == nil && p.Erasing != ""):
		return false, fmt.Errorf("%w: the project is being erased", errPermanent)
	case err != nil:
		return false, err
	}
	steps := exportSteps(j)
	kind := steps[j.Step]
	if kind == manifestStep {
		return true, s.writeManifest(ctx, id, j)
	}
	n := 1
	for _, f := range j.Files {
		if f.Kind == kind {
			n++
		}
	}
	name := fmt.Sprintf("%s%s/%s-%05d.ndjson", ExportPrefix(j.ProjectID), id, kind, n)
	f, more, err := s.writeFile(ctx, name, kind, j)
	if err != nil {
		return false, err
	}
	if f.Count > 0 || n == 1 {
		j.Files = append(j.Files, f)
	}
	j.Counts[kind] += f.Count
	if !more {
		j.Step++
		j.CursorTime, j.CursorID = time.Time{}, ""
	}
	return false, nil
}

// writeFile streams up to FileDocs documents of kind after the job's
// cursor into the object name, hashing as it writes, and moves the
// cursor; more says whether documents are left. A file that fails is
// written again from the same cursor, under the same name.
func (s *Service) writeFile(ctx context.Context, name, kind string, j *store.DataJob) (store.ExportFile, bool, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel() // a file not closed is not written
	w := s.gcs.Bucket(s.bucket).Object(name).NewWriter(wctx)
	w.ContentType = "application/x-ndjson"
	w.ChunkSize = 1 << 20 // the buffer a worker holds per file
	h := sha256.New()
	cw := &counter{w: io.MultiWriter(w, h)}
	bw := bufio.NewWriterSize(cw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // events as stored, byte for byte
	var count int64
	more := true
	for count < int64(s.cfg.FileDocs) {
		n, m, err := s.writePage(ctx, enc, kind, j, min(s.cfg.PageSize, s.cfg.FileDocs-int(count)))
		if err != nil {
			return store.ExportFile{}, false, err
		}
		count += int64(n)
		if more = m; !more {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		return store.ExportFile{}, false, fmt.Errorf("export %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return store.ExportFile{}, false, fmt.Errorf("export %s: %w", name, err)
	}
	return store.ExportFile{Name: name, Kind: kind, Count: count, Bytes: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, more, nil
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writePage encodes one page of kind after the job's cursor, one JSON
// object a line, and moves the cursor past it.
func (s *Service) writePage(ctx context.Context, enc *json.Encoder, kind string, j *store.DataJob, limit int) (int, bool, error) {
	if kind == "events" {
		return s.writeEvents(ctx, enc, j, limit)
	}
	docs, err := s.db.ExportPage(ctx, kind, j.ProjectID, j.CursorID, j.DeviceIDs, limit)
	if err != nil {
		return 0, false, err
	}
	for _, d := range docs {
		if err := enc.Encode(exportLine(kind, d)); err != nil {
			return 0, false, err
		}
		j.CursorID = d.ID
	}
	return len(docs), len(docs) == limit, nil
}

// exportLine is one document as an export line: its resource name and
// its exported fields.
func exportLine(kind string, d store.ExportDoc) map[string]any {
	name := d.ID
	switch kind {
	case "devices":
		name = "devices/" + d.ID
	case "dataConnectors":
		name = "dataconnectors/" + d.ID
	case "serviceAccounts":
		name = "serviceaccounts/" + d.ID
	case "serviceAccountKeys":
		name = "keys/" + d.ID
	}
	out := make(map[string]any, len(d.Data)+1)
	for k, v := range d.Data {
		out[k] = v
	}
	out["name"] = name
	return out
}

// writeEvents encodes a page of events, each the DT event JSON as stored.
// A filtered export walks its devices one after another: the cursor's id
// is then "<device index>/<event id>".
func (s *Service) writeEvents(ctx context.Context, enc *json.Encoder, j *store.DataJob, limit int) (int, bool, error) {
	device, after := "", j.CursorID
	di := 0
	if j.Filtered {
		if len(j.DeviceIDs) == 0 {
			return 0, false, nil
		}
		if i, rest, ok := strings.Cut(j.CursorID, "/"); ok {
			n, err := strconv.Atoi(i)
			if err != nil || n < 0 || n >= len(j.DeviceIDs) {
				return 0, false, fmt.Errorf("%w: cursor %q", errPermanent, j.CursorID)
			}
			di, after = n, rest
		}
		device = j.DeviceIDs[di]
	}
	evs, err := s.db.ExportEvents(ctx, j.ProjectID, device, j.From, j.To, j.CursorTime, after, limit)
	if err != nil {
		return 0, false, err
	}
	for _, e := range evs {
		if err := enc.Encode(json.RawMessage(e.JSON)); err != nil {
			return 0, false, err
		}
		j.CursorTime, j.CursorID = e.Timestamp, e.ID
		if j.Filtered {
			j.CursorID = fmt.Sprintf("%d/%s", di, e.ID)
		}
	}
	if len(evs) == limit {
		return len(evs), true, nil
	}
	if j.Filtered && di+1 < len(j.DeviceIDs) {
		j.CursorTime, j.CursorID = time.Time{}, fmt.Sprintf("%d/", di+1)
		return len(evs), true, nil
	}
	return len(evs), false, nil
}

// Manifest is an export's manifest.json.
type Manifest struct {
	Project    string             `json:"project"`
	Export     string             `json:"export"`
	CreateTime time.Time          `json:"createTime"`
	StartTime  *time.Time         `json:"startTime,omitempty"`
	EndTime    *time.Time         `json:"endTime,omitempty"`
	DeviceIDs  []string           `json:"deviceIds,omitempty"`
	Counts     map[string]int64   `json:"counts"`
	Files      []store.ExportFile `json:"files"`
}

func (s *Service) writeManifest(ctx context.Context, id string, j *store.DataJob) error {
	m := Manifest{Project: "projects/" + j.ProjectID, Export: JobResource(j.ProjectID, j.Kind, id), CreateTime: j.CreateTime,
		Counts: j.Counts, Files: j.Files}
	if !j.From.IsZero() {
		m.StartTime = &j.From
	}
	if !j.To.IsZero() {
		m.EndTime = &j.To
	}
	if j.Filtered {
		m.DeviceIDs = j.DeviceIDs
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	name := ManifestName(j.ProjectID, id)
	w := s.gcs.Bucket(s.bucket).Object(name).NewWriter(ctx)
	w.ContentType = "application/json"
	if _, err := w.Write(b); err != nil {
		w.Close()
		return fmt.Errorf("export %s: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("export %s: %w", name, err)
	}
	j.Manifest = name
	return nil
}
