package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sealedsense/sealedsense/functions/datarights"
	"github.com/sealedsense/sealedsense/shared/store"
)

// The data-subject routes: a project's export, its erasure, one device's
// erasure and the event retention. Each starts a job the data-rights
// function works through (functions/datarights); these routes check,
// start and report.

// URLSigner signs a download URL of an object of the export bucket, valid
// until expires.
type URLSigner interface {
	SignedURL(ctx context.Context, object string, expires time.Time) (string, error)
}

type exportRequest struct {
	StartTime    *time.Time `json:"startTime,omitempty"`
	EndTime      *time.Time `json:"endTime,omitempty"`
	DeviceIDs    []string   `json:"deviceIds,omitempty"`
	LabelFilters []string   `json:"labelFilters,omitempty"`
}

// Export is an export job as the API answers it.
type Export struct {
	Name          string           `json:"name"`
	State         string           `json:"state"`
	CreateTime    time.Time        `json:"createTime"`
	DoneTime      *time.Time       `json:"doneTime,omitempty"`
	StartTime     *time.Time       `json:"startTime,omitempty"`
	EndTime       *time.Time       `json:"endTime,omitempty"`
	DeviceIDs     []string         `json:"deviceIds,omitempty"`
	Counts        map[string]int64 `json:"counts"`
	Files         []ExportFile     `json:"files,omitempty"`
	ManifestURL   string           `json:"manifestUrl,omitempty"`
	URLExpireTime *time.Time       `json:"urlExpireTime,omitempty"`
	Error         string           `json:"error,omitempty"`
}

// ExportFile is one file of a finished export, with its download URL.
type ExportFile struct {
	Kind   string `json:"kind"`
	Count  int64  `json:"count"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	URL    string `json:"url"`
}

type listExports struct {
	Exports []Export `json:"exports"`
}

type eraseRequest struct {
	// ConfirmProject must name the project erased, projects/<id>: an
	// erasure cannot be undone.
	ConfirmProject string `json:"confirmProject"`
}

type eraseDeviceRequest struct{}

// Erasure is an erasure job as the API answers it; once a project's
// erasure is done, it is answered from the tombstone.
type Erasure struct {
	Name       string           `json:"name"`
	State      string           `json:"state"`
	CreateTime *time.Time       `json:"createTime,omitempty"`
	DoneTime   *time.Time       `json:"doneTime,omitempty"`
	Counts     map[string]int64 `json:"counts,omitempty"`
	Summary    string           `json:"summary,omitempty"`
	Error      string           `json:"error,omitempty"`
}

// maxExportDevices bounds an export's device filter, which the job
// stores.
const maxExportDevices = 1000

// checkExport checks an export request (pure).
func checkExport(req exportRequest) ([][2]string, error) {
	if req.StartTime != nil && req.EndTime != nil && !req.StartTime.Before(*req.EndTime) {
		return nil, errBadRequest("startTime must be before endTime")
	}
	if len(req.DeviceIDs) > maxExportDevices {
		return nil, errBadRequest("at most %d deviceIds", maxExportDevices)
	}
	for _, id := range req.DeviceIDs {
		if !validDocID(id) {
			return nil, errBadRequest("deviceIds: %q is not a device id", id)
		}
	}
	var labels [][2]string
	for _, lf := range req.LabelFilters {
		sel, err := parseLabelSelector(lf)
		if err != nil {
			return nil, errBadRequest("labelFilters must be key=value")
		}
		labels = append(labels, sel...)
	}
	return labels, nil
}

func (s *Service) startExport(c *call) (any, error) {
	var req exportRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	labels, err := checkExport(req)
	if err != nil {
		return nil, err
	}
	now := s.deps.Now().UTC()
	j := store.DataJob{ProjectID: c.project, Organization: c.org, Kind: store.JobExport, State: store.JobRunning, Actor: c.p.Email,
		CreateTime: now, Counts: map[string]int64{}}
	if req.StartTime != nil {
		j.From = req.StartTime.UTC()
	}
	if req.EndTime != nil {
		j.To = req.EndTime.UTC()
	}
	if len(req.DeviceIDs) > 0 || len(labels) > 0 {
		if j.DeviceIDs, err = s.exportDevices(c.r.Context(), c.project, req.DeviceIDs, labels); err != nil {
			return nil, err
		}
		j.Filtered = true
	}
	id, err := s.db.CreateDataJob(c.r.Context(), j)
	if err != nil {
		return nil, errUnavailable(err)
	}
	return s.toExport(c.r.Context(), id, j)
}

// exportDevices resolves an export's filter to the sorted ids of the
// project's devices it names: by id, and by every label pair.
func (s *Service) exportDevices(ctx context.Context, project string, ids []string, labels [][2]string) ([]string, error) {
	out := slices.Clone(ids)
	if len(labels) > 0 {
		docs, err := s.db.DevicesQuery(store.DeviceFilter{Project: project, LabelIs: labels}).Select().Limit(maxExportDevices + 1).Documents(ctx).GetAll()
		if err != nil {
			return nil, errUnavailable(err)
		}
		if len(docs) > maxExportDevices {
			return nil, errBadRequest("the labelFilters select more than %d devices", maxExportDevices)
		}
		for _, d := range docs {
			out = append(out, d.Ref.ID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (s *Service) getExport(c *call) (any, error) {
	id := c.r.PathValue("export")
	j, err := s.db.DataJob(c.r.Context(), id)
	if err != nil || j.ProjectID != c.project || j.Kind != store.JobExport {
		return nil, errNotFound("export not found")
	}
	return s.toExport(c.r.Context(), id, j)
}

func (s *Service) listExports(c *call) (any, error) {
	jobs, err := s.db.ProjectDataJobs(c.r.Context(), c.project, store.JobExport, 100)
	if err != nil {
		return nil, errUnavailable(err)
	}
	out := listExports{Exports: []Export{}}
	for _, j := range jobs {
		out.Exports = append(out.Exports, toExportNoURLs(j.ID, j.DataJob))
	}
	return out, nil
}

// toExport answers a job, with download URLs valid for ExportURLTTL
// when it is done.
func (s *Service) toExport(ctx context.Context, id string, j store.DataJob) (Export, error) {
	e := toExportNoURLs(id, j)
	if j.State != store.JobSucceeded {
		return e, nil
	}
	if s.deps.Exports == nil {
		return e, errUnavailable(errors.New("api: no export bucket"))
	}
	expires := s.deps.Now().Add(s.cfg.ExportURLTTL).UTC().Truncate(time.Second)
	e.URLExpireTime = &expires
	var err error
	for i, f := range j.Files {
		if e.Files[i].URL, err = s.deps.Exports.SignedURL(ctx, f.Name, expires); err != nil {
			return e, errUnavailable(err)
		}
	}
	if e.ManifestURL, err = s.deps.Exports.SignedURL(ctx, j.Manifest, expires); err != nil {
		return e, errUnavailable(err)
	}
	return e, nil
}

func toExportNoURLs(id string, j store.DataJob) Export {
	e := Export{Name: datarights.JobResource(j.ProjectID, j.Kind, id), State: j.State, CreateTime: j.CreateTime,
		DeviceIDs: j.DeviceIDs, Counts: j.Counts, Error: j.Error}
	if !j.DoneTime.IsZero() {
		e.DoneTime = &j.DoneTime
	}
	if !j.From.IsZero() {
		e.StartTime = &j.From
	}
	if !j.To.IsZero() {
		e.EndTime = &j.To
	}
	for _, f := range j.Files {
		e.Files = append(e.Files, ExportFile{Kind: f.Kind, Count: f.Count, Bytes: f.Bytes, SHA256: f.SHA256})
	}
	return e
}

// eraseProject starts the erasure of the whole project. From here on the
// project refuses changes (run), ingest stores nothing for its devices
// once the job released them, and the job's end deletes the project.
func (s *Service) eraseProject(c *call) (any, error) {
	var req eraseRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if req.ConfirmProject != "projects/"+c.project {
		return nil, errBadRequest("confirmProject must be projects/%s: an erasure cannot be undone", c.project)
	}
	now := s.deps.Now().UTC()
	j := store.DataJob{ProjectID: c.project, Organization: c.org, Kind: store.JobErase, State: store.JobRunning, Actor: c.p.Email,
		CreateTime: now, Counts: map[string]int64{}}
	id, err := s.db.StartErasure(c.r.Context(), c.project, j)
	switch {
	case store.IsExists(err):
		return nil, errConflict("the project is already being erased by projects/" + c.project + "/erasures/" + id)
	case err != nil:
		return nil, storeErr(err, "project")
	}
	return toErasure(id, j), nil
}

func (s *Service) eraseDevice(c *call) (any, error) {
	var req eraseDeviceRequest
	if c.r.ContentLength != 0 {
		if err := decode(c, &req); err != nil {
			return nil, err
		}
	}
	now := s.deps.Now().UTC()
	j := store.DataJob{ProjectID: c.project, Organization: c.org, Kind: store.JobEraseDevice, State: store.JobRunning, Actor: c.p.Email,
		CreateTime: now, DeviceIDs: []string{c.r.PathValue("device")}, Counts: map[string]int64{}}
	id, err := s.db.CreateDataJob(c.r.Context(), j)
	if err != nil {
		return nil, errUnavailable(err)
	}
	return toErasure(id, j), nil
}

// getErasure answers an erasure while it runs and, for a project's, after
// it from its tombstone: the project is gone then, so only an
// organization admin of the organization the tombstone names may read it.
func (s *Service) getErasure(c *call) (any, error) {
	id := c.r.PathValue("erasure")
	ctx := c.r.Context()
	j, err := s.db.DataJob(ctx, id)
	if store.IsNotFound(err) {
		// A project's erasure, done, left only its tombstone (the
		// project may still look present to this instance for a while).
		t, err := s.db.Tombstone(ctx, datarights.JobResource(c.project, store.JobErase, id))
		if err != nil || !slices.Contains(c.p.orgAdminOf(), t.Organization) {
			return nil, errNotFound("erasure not found")
		}
		done := t.Time
		return Erasure{Name: t.Resource, State: store.JobSucceeded, DoneTime: &done, Summary: t.Reason}, nil
	}
	if err != nil || j.ProjectID != c.project || (j.Kind != store.JobErase && j.Kind != store.JobEraseDevice) {
		return nil, errNotFound("erasure not found")
	}
	perm := permDeviceErase
	if j.Kind == store.JobErase {
		perm = permProjectErase
	}
	if !c.p.can(perm, c.project, c.org) {
		return nil, errForbidden("missing permission " + perm + " on projects/" + c.project)
	}
	return toErasure(id, j), nil
}

func toErasure(id string, j store.DataJob) Erasure {
	e := Erasure{Name: datarights.JobResource(j.ProjectID, j.Kind, id), State: j.State, Counts: j.Counts, Error: j.Error}
	if !j.CreateTime.IsZero() {
		e.CreateTime = &j.CreateTime
	}
	if !j.DoneTime.IsZero() {
		e.DoneTime = &j.DoneTime
	}
	return e
}

// refuseWhileErasing answers 409 to a change of a project being erased:
// what it wrote could outlive the erasure. The project it reads is kept on
// the call for the handler (its event retention).
func (s *Service) refuseWhileErasing(c *call) error {
	if c.r.Method == http.MethodGet || c.project == "" || c.project == "-" || c.org == "" {
		return nil
	}
	p, err := s.db.Project(c.r.Context(), c.project)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return errUnavailable(err)
	}
	if p.Erasing != "" {
		return errConflict(fmt.Sprintf("the project is being erased (projects/%s/erasures/%s)", c.project, p.Erasing))
	}
	c.proj = &p
	return nil
}

// eventRetention is the retention of the events a change of the call's
// project makes.
func (c *call) eventRetention() time.Duration {
	if c.proj == nil {
		return c.s.cfg.EventRetention
	}
	return c.proj.EventRetention(c.s.cfg.EventRetention)
}

// Event retention bounds: a day, and the platform's maximum.
const (
	minEventRetention = 24 * time.Hour
	maxEventRetention = 365 * 24 * time.Hour
)

// parseRetention reads a retention as a Google duration ("86400s") within
// the bounds (pure).
func parseRetention(v string) (time.Duration, error) {
	secs, ok := strings.CutSuffix(v, "s")
	var n int64
	if _, err := fmt.Sscanf(secs, "%d", &n); !ok || err != nil || fmt.Sprint(n) != secs {
		return 0, errBadRequest("eventRetention must be whole seconds, e.g. \"86400s\"")
	}
	// Bounded in seconds first: a huge count would overflow a Duration.
	d := time.Duration(n) * time.Second
	if n < int64(minEventRetention/time.Second) || n > int64(maxEventRetention/time.Second) {
		return 0, errBadRequest("eventRetention must be from %ds (1 day) to %ds (365 days)", int64(minEventRetention.Seconds()), int64(maxEventRetention.Seconds()))
	}
	return d, nil
}
