package api

import (
	"context"
	"errors"
	"slices"
	"strings"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/registry"
)

// Device is DT's device resource.
type Device struct {
	Name          string            `json:"name"`
	Type          string            `json:"type"`
	ProductNumber string            `json:"productNumber"`
	Labels        map[string]string `json:"labels"`
	Reported      map[string]any    `json:"reported"`
}

type listDevices struct {
	Devices       []Device `json:"devices"`
	NextPageToken string   `json:"nextPageToken"`
}

// deviceDoc is what the API reads of a registry device: never its keys.
type deviceDoc struct {
	Type          string            `firestore:"type"`
	ProductNumber string            `firestore:"productNumber"`
	KitID         string            `firestore:"kitId"`
	ProjectID     string            `firestore:"projectId"`
	Labels        map[string]string `firestore:"labels"`
	Reported      map[string]any    `firestore:"reported"`
}

func toDevice(id string, d deviceDoc) Device {
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	if d.Reported == nil {
		d.Reported = map[string]any{}
	}
	return Device{Name: "projects/" + d.ProjectID + "/devices/" + id, Type: d.Type, ProductNumber: d.ProductNumber, Labels: d.Labels, Reported: d.Reported}
}

// listValues reads a query parameter given repeated or comma-separated, as
// DT's clients send lists.
func listValues(c *call, name string) []string {
	var out []string
	for _, v := range c.r.URL.Query()[name] {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

// orderPath is the Firestore path of an order_by field: type,
// productNumber, labels.<key> or reported.<eventType>.<field>.
func orderPath(field string) (firestore.FieldPath, bool) {
	letters := func(s string) bool {
		return len(s) > 0 && len(s) <= 32 && strings.IndexFunc(s, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) < 0
	}
	if field == "type" || field == "productNumber" {
		return firestore.FieldPath{field}, true
	}
	if k, ok := strings.CutPrefix(field, "labels."); ok && event.ValidLabelKey(k) {
		return firestore.FieldPath{"labels", k}, true
	}
	if rest, ok := strings.CutPrefix(field, "reported."); ok {
		typ, f, ok := strings.Cut(rest, ".")
		if ok && letters(typ) && letters(f) {
			return firestore.FieldPath{"reported", typ, f}, true
		}
	}
	return nil, false
}

// maxIn is Firestore's bound on the values of an "in" filter.
const maxIn = 30

func (s *Service) listDevices(c *call) (any, error) {
	fs := s.deps.Firestore
	q := fs.Collection(registry.DevicesCollection).Query
	var keeps []func(deviceDoc, string) bool
	filters := []string{}
	if c.project == "-" {
		org := strings.TrimPrefix(c.r.URL.Query().Get("organization"), "organizations/")
		projects, err := s.readableProjects(c, permDeviceRead, org)
		if err != nil {
			return nil, err
		}
		if len(projects) == 0 {
			return listDevices{Devices: []Device{}}, nil
		}
		if len(projects) > maxIn {
			return nil, errBadRequest("the caller reads more than %d projects: name an organization or a project", maxIn)
		}
		q = q.Where("projectId", "in", projects)
		c.touched = projects
		filters = append(filters, "projects="+strings.Join(projects, ","))
	} else {
		q = q.Where("projectId", "==", c.project)
	}
	if ids := listValues(c, "device_ids"); len(ids) > 0 {
		keeps = append(keeps, func(_ deviceDoc, id string) bool { return slices.Contains(ids, id) })
		filters = append(filters, "ids="+strings.Join(ids, ","))
	}
	if types := listValues(c, "device_types"); len(types) > 0 {
		keeps = append(keeps, func(d deviceDoc, _ string) bool { return slices.Contains(types, d.Type) })
		filters = append(filters, "types="+strings.Join(types, ","))
	}
	for _, lf := range c.r.URL.Query()["label_filters"] {
		k, v, hasValue := strings.Cut(lf, "=")
		if !event.ValidLabelKey(k) {
			return nil, errBadRequest("label_filters must be key or key=value")
		}
		if hasValue {
			q = q.WherePath(firestore.FieldPath{"labels", k}, "==", v)
		} else {
			keeps = append(keeps, func(d deviceDoc, _ string) bool { _, ok := d.Labels[k]; return ok })
		}
		filters = append(filters, "label="+lf)
	}
	if text := strings.ToLower(c.r.URL.Query().Get("query")); text != "" {
		keeps = append(keeps, func(d deviceDoc, id string) bool {
			if strings.Contains(strings.ToLower(id), text) || strings.Contains(strings.ToLower(d.Type), text) {
				return true
			}
			for _, v := range d.Labels {
				if strings.Contains(strings.ToLower(v), text) {
					return true
				}
			}
			return false
		})
		filters = append(filters, "query="+text)
	}
	o := ordering{}
	dir := firestore.Asc
	if ob := c.r.URL.Query().Get("order_by"); ob != "" {
		field, desc := strings.CutPrefix(ob, "-")
		path, ok := orderPath(field)
		if !ok {
			return nil, errBadRequest("order_by must be type, productNumber, labels.<key> or reported.<eventType>.<field>, optionally with a leading -")
		}
		if desc {
			dir = firestore.Desc
		}
		o.Field, o.Path = field, path
		// Firestore leaves out documents that lack the ordering field, as
		// DT's ordering by a reported value leaves out devices without one.
		q = q.OrderByPath(o.Path, dir)
		filters = append(filters, "order="+ob)
	}
	q = q.OrderBy(firestore.DocumentID, dir)
	if len(keeps) > 0 {
		o.Keep = func(snap *firestore.DocumentSnapshot) bool {
			var d deviceDoc
			if snap.DataTo(&d) != nil {
				return false
			}
			for _, keep := range keeps {
				if !keep(d, snap.Ref.ID) {
					return false
				}
			}
			return true
		}
	}
	docs, next, err := c.page(q, o, strings.Join(filters, "\x00"))
	if err != nil {
		return nil, err
	}
	out := listDevices{Devices: []Device{}, NextPageToken: next}
	for _, snap := range docs {
		var d deviceDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, err
		}
		out.Devices = append(out.Devices, toDevice(snap.Ref.ID, d))
	}
	return out, nil
}

// device reads a device of the path's project; a device of another
// project, or none, is not found.
func (s *Service) device(ctx context.Context, project, id string) (deviceDoc, error) {
	d, err := getDoc[deviceDoc](ctx, s.deps.Firestore.Collection(registry.DevicesCollection).Doc(id), "device")
	if err != nil {
		return deviceDoc{}, err
	}
	if d.ProjectID == "" || d.ProjectID != project {
		return deviceDoc{}, errNotFound("device not found")
	}
	return d, nil
}

func (s *Service) getDevice(c *call) (any, error) {
	id := c.r.PathValue("device")
	d, err := s.device(c.r.Context(), c.project, id)
	if err != nil {
		return nil, err
	}
	return toDevice(id, d), nil
}

type batchUpdate struct {
	Devices      []string          `json:"devices"`
	AddLabels    map[string]string `json:"addLabels"`
	RemoveLabels []string          `json:"removeLabels"`
}

type batchError struct {
	Device string      `json:"device"`
	Status errorStatus `json:"status"`
}

type errorStatus struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type batchResult struct {
	BatchErrors []batchError `json:"batchErrors"`
}

// maxBatch bounds the devices of one batch request.
const maxBatch = 100

// deviceID takes a device id from a full name ("projects/p/devices/d") of
// project p, or from a bare id.
func deviceID(name string) (project, id string) {
	if rest, ok := strings.CutPrefix(name, "projects/"); ok {
		p, d, _ := strings.Cut(rest, "/devices/")
		return p, d
	}
	return "", name
}

func (s *Service) batchUpdate(c *call) (any, error) {
	var req batchUpdate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if len(req.Devices) == 0 || len(req.Devices) > maxBatch {
		return nil, errBadRequest("devices must name 1 to %d devices", maxBatch)
	}
	if len(req.AddLabels)+len(req.RemoveLabels) == 0 || len(req.AddLabels) > 50 {
		return nil, errBadRequest("give addLabels (at most 50) or removeLabels")
	}
	var upd []firestore.Update
	for k, v := range req.AddLabels {
		if !event.ValidLabelKey(k) || len(v) > 255 {
			return nil, errBadRequest("label keys are 1 to 63 of A-Z a-z 0-9 _ - . and values at most 255 bytes")
		}
		upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"labels", k}, Value: v})
	}
	for _, k := range req.RemoveLabels {
		if !event.ValidLabelKey(k) {
			return nil, errBadRequest("label keys are 1 to 63 of A-Z a-z 0-9 _ - .")
		}
		if _, both := req.AddLabels[k]; both {
			return nil, errBadRequest("label %s is both added and removed", k)
		}
		upd = append(upd, firestore.Update{FieldPath: firestore.FieldPath{"labels", k}, Value: firestore.Delete})
	}
	out := batchResult{BatchErrors: []batchError{}}
	fs := s.deps.Firestore
	for _, name := range req.Devices {
		p, id := deviceID(name)
		if (p != "" && p != c.project) || id == "" {
			out.BatchErrors = append(out.BatchErrors, batchError{Device: name, Status: errorStatus{"NOT_FOUND", "device not found"}})
			continue
		}
		ref := fs.Collection(registry.DevicesCollection).Doc(id)
		err := fs.RunTransaction(c.r.Context(), func(ctx context.Context, tx *firestore.Transaction) error {
			snap, err := tx.Get(ref)
			if err != nil {
				return err
			}
			if pid, _ := snap.Data()["projectId"].(string); pid != c.project {
				return errNotFound("device not found")
			}
			return tx.Update(ref, upd)
		})
		if notFound(err) || isCode(err, 404) {
			out.BatchErrors = append(out.BatchErrors, batchError{Device: name, Status: errorStatus{"NOT_FOUND", "device not found"}})
		} else if err != nil {
			return nil, errUnavailable(err)
		}
	}
	return out, nil
}

type transferRequest struct {
	Devices []string `json:"devices"`
}

type transferError struct {
	Device string      `json:"device"`
	Status errorStatus `json:"status"`
}

type transferResult struct {
	TransferErrors []transferError `json:"transferErrors"`
}

// transfer moves devices into the path's project. The caller needs
// device.transfer on both projects, and both must be in one organization.
func (s *Service) transfer(c *call) (any, error) {
	var req transferRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if len(req.Devices) == 0 || len(req.Devices) > maxBatch {
		return nil, errBadRequest("devices must name 1 to %d devices as projects/<p>/devices/<d>", maxBatch)
	}
	out := transferResult{TransferErrors: []transferError{}}
	fs := s.deps.Firestore
	notFoundErr := func(name string) {
		out.TransferErrors = append(out.TransferErrors, transferError{Device: name, Status: errorStatus{"NOT_FOUND", "device not found"}})
	}
	for _, name := range req.Devices {
		src, id := deviceID(name)
		if src == "" || id == "" {
			return nil, errBadRequest("devices must be named projects/<p>/devices/<d>")
		}
		srcOrg, err := s.projectOrg(c.r.Context(), src)
		if err != nil {
			return nil, err
		}
		// A device the caller may not move is answered as not found, so
		// another organization's devices cannot be probed.
		if srcOrg != c.org || !c.p.can(permDeviceTransfer, src, srcOrg) {
			notFoundErr(name)
			continue
		}
		ref := fs.Collection(registry.DevicesCollection).Doc(id)
		err = fs.RunTransaction(c.r.Context(), func(ctx context.Context, tx *firestore.Transaction) error {
			snap, err := tx.Get(ref)
			if err != nil {
				return err
			}
			if pid, _ := snap.Data()["projectId"].(string); pid != src {
				return errNotFound("device not found")
			}
			return tx.Update(ref, []firestore.Update{{Path: "projectId", Value: c.project}})
		})
		if notFound(err) || isCode(err, 404) {
			notFoundErr(name)
		} else if err != nil {
			return nil, errUnavailable(err)
		} else if src != c.project {
			c.touched = append(c.touched, src)
		}
	}
	return out, nil
}

func isCode(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.code == code
}
