package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/store"
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

func toDevice(id string, d store.Device) Device {
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	if d.Reported == nil {
		d.Reported = map[string]any{}
	}
	return Device{Name: "projects/" + d.ProjectID + "/devices/" + id, Type: d.Type, ProductNumber: d.ProductNumber, Labels: d.Labels, Reported: d.Reported}
}

// listParam reads a query parameter given repeated or comma-separated, as
// DT's clients send lists.
func listParam(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

// maxIn is Firestore's bound on the values of an "in" filter.
const maxIn = 30

// deviceListing is a checked listDevices request: what the query runs,
// what is filtered after it, and the filters a page token is bound to.
type deviceListing struct {
	filter  store.DeviceFilter
	keeps   []func(d store.Device, id string) bool
	filters []string
}

// parseDeviceListing checks listDevices' query parameters.
func parseDeviceListing(q url.Values) (deviceListing, error) {
	var l deviceListing
	if ids := listParam(q, "device_ids"); len(ids) > 0 {
		l.keeps = append(l.keeps, func(_ store.Device, id string) bool { return slices.Contains(ids, id) })
		l.filters = append(l.filters, "ids="+strings.Join(ids, ","))
	}
	if types := listParam(q, "device_types"); len(types) > 0 {
		l.keeps = append(l.keeps, func(d store.Device, _ string) bool { return slices.Contains(types, d.Type) })
		l.filters = append(l.filters, "types="+strings.Join(types, ","))
	}
	for _, lf := range q["label_filters"] {
		k, v, hasValue := strings.Cut(lf, "=")
		if !event.ValidLabelKey(k) {
			return deviceListing{}, errBadRequest("label_filters must be key or key=value")
		}
		if hasValue {
			l.filter.LabelIs = append(l.filter.LabelIs, [2]string{k, v})
		} else {
			l.keeps = append(l.keeps, func(d store.Device, _ string) bool { _, ok := d.Labels[k]; return ok })
		}
		l.filters = append(l.filters, "label="+lf)
	}
	if text := strings.ToLower(q.Get("query")); text != "" {
		l.keeps = append(l.keeps, func(d store.Device, id string) bool { return matchesText(d, id, text) })
		l.filters = append(l.filters, "query="+text)
	}
	if ob := q.Get("order_by"); ob != "" {
		field, desc := strings.CutPrefix(ob, "-")
		path, ok := store.DeviceOrderPath(field)
		if !ok {
			return deviceListing{}, errBadRequest("order_by must be type, productNumber, labels.<key> or reported.<eventType>.<field>, optionally with a leading -")
		}
		l.filter.Order, l.filter.Desc = path, desc
		l.filters = append(l.filters, "order="+ob)
	}
	return l, nil
}

// matchesText says whether a device's id, type or a label value holds
// text, which is lower case.
func matchesText(d store.Device, id, text string) bool {
	if strings.Contains(strings.ToLower(id), text) || strings.Contains(strings.ToLower(d.Type), text) {
		return true
	}
	for _, v := range d.Labels {
		if strings.Contains(strings.ToLower(v), text) {
			return true
		}
	}
	return false
}

// keep drops the devices the query could not filter out; nil when it
// filters all.
func (l deviceListing) keep() func(*firestore.DocumentSnapshot) bool {
	if len(l.keeps) == 0 {
		return nil
	}
	return func(snap *firestore.DocumentSnapshot) bool {
		var d store.Device
		if snap.DataTo(&d) != nil {
			return false
		}
		for _, keep := range l.keeps {
			if !keep(d, snap.Ref.ID) {
				return false
			}
		}
		return true
	}
}

// listedProjects is what project "-" lists: every project where the
// caller may read devices, within the organization asked for.
func (s *Service) listedProjects(c *call) ([]string, error) {
	org := strings.TrimPrefix(c.r.URL.Query().Get("organization"), "organizations/")
	projects, err := s.readableProjects(c, permDeviceRead, org)
	if err != nil {
		return nil, err
	}
	if len(projects) > maxIn {
		return nil, errBadRequest("the caller reads more than %d projects: name an organization or a project", maxIn)
	}
	return projects, nil
}

func (s *Service) listDevices(c *call) (any, error) {
	var projects, scope []string
	if c.project == "-" {
		var err error
		if projects, err = s.listedProjects(c); err != nil {
			return nil, err
		}
		if len(projects) == 0 {
			return listDevices{Devices: []Device{}}, nil
		}
		c.touched = projects
		scope = []string{"projects=" + strings.Join(projects, ",")}
	}
	l, err := parseDeviceListing(c.r.URL.Query())
	if err != nil {
		return nil, err
	}
	l.filter.Project, l.filter.Projects = c.project, projects
	o := ordering{Path: l.filter.Order, Keep: l.keep()}
	docs, next, err := c.page(s.db.DevicesQuery(l.filter), o, strings.Join(append(scope, l.filters...), "\x00"))
	if err != nil {
		return nil, err
	}
	out := listDevices{Devices: []Device{}, NextPageToken: next}
	if err := eachSnap(docs, func(id string, d store.Device) { out.Devices = append(out.Devices, toDevice(id, d)) }); err != nil {
		return nil, err
	}
	return out, nil
}

// device reads a device of the path's project; a device of another
// project, or none, is not found.
func (s *Service) device(ctx context.Context, project, id string) (store.Device, error) {
	d, err := s.db.Device(ctx, id)
	if err != nil {
		return store.Device{}, storeErr(err, "device")
	}
	if d.ProjectID == "" || d.ProjectID != project {
		return store.Device{}, errNotFound("device not found")
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

// checkBatchUpdate checks a batch of label changes.
func checkBatchUpdate(req batchUpdate) error {
	if len(req.Devices) == 0 || len(req.Devices) > maxBatch {
		return errBadRequest("devices must name 1 to %d devices", maxBatch)
	}
	if len(req.AddLabels)+len(req.RemoveLabels) == 0 || len(req.AddLabels) > 50 {
		return errBadRequest("give addLabels (at most 50) or removeLabels")
	}
	for k, v := range req.AddLabels {
		if !event.ValidLabelKey(k) || len(v) > 255 {
			return errBadRequest("label keys are 1 to 63 of A-Z a-z 0-9 _ - . and values at most 255 bytes")
		}
	}
	for _, k := range req.RemoveLabels {
		if !event.ValidLabelKey(k) {
			return errBadRequest("label keys are 1 to 63 of A-Z a-z 0-9 _ - .")
		}
		if _, both := req.AddLabels[k]; both {
			return errBadRequest("label %s is both added and removed", k)
		}
	}
	return nil
}

func (s *Service) batchUpdate(c *call) (any, error) {
	var req batchUpdate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkBatchUpdate(req); err != nil {
		return nil, err
	}
	out := batchResult{BatchErrors: []batchError{}}
	for _, name := range req.Devices {
		err := errNotFound("device not found")
		if p, id := deviceID(name); (p == "" || p == c.project) && id != "" {
			err = s.setLabels(c, id, req.AddLabels, req.RemoveLabels)
		}
		if notFound(err) || isCode(err, http.StatusNotFound) {
			out.BatchErrors = append(out.BatchErrors, batchError{Device: name, Status: errorStatus{"NOT_FOUND", "device not found"}})
		} else if err != nil {
			return nil, errUnavailable(err)
		}
	}
	return out, nil
}

// setLabels changes a device's labels with their labelsChanged event,
// stored with the change and published after it.
func (s *Service) setLabels(c *call, id string, set map[string]string, remove []string) error {
	now := s.deps.Now().UTC()
	m := &madeEvent{project: c.project, device: id, retention: c.eventRetention()}
	_, err := s.db.SetDeviceLabels(c.r.Context(), id, c.project, set, remove, func(ch event.LabelsChanged) (string, store.Event, error) {
		ev, err := event.LabelsChangedFor(c.project, id, now, ch)
		if err != nil {
			return "", store.Event{}, err
		}
		return m.doc(ev, now)
	})
	if err == nil {
		s.publish(c.r.Context(), m)
	}
	return err
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
// A Cloud Connector is refused: it stays where its registration put it.
func (s *Service) transfer(c *call) (any, error) {
	var req transferRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if len(req.Devices) == 0 || len(req.Devices) > maxBatch {
		return nil, errBadRequest("devices must name 1 to %d devices as projects/<p>/devices/<d>", maxBatch)
	}
	out := transferResult{TransferErrors: []transferError{}}
	for _, name := range req.Devices {
		err := s.transferOne(c, name)
		switch {
		case notFound(err) || isCode(err, http.StatusNotFound):
			out.TransferErrors = append(out.TransferErrors, transferError{Device: name, Status: errorStatus{"NOT_FOUND", "device not found"}})
		case errors.Is(err, store.ErrNotSensor):
			// Its status events go to the project its registration names.
			out.TransferErrors = append(out.TransferErrors, transferError{Device: name, Status: errorStatus{"INVALID_ARGUMENT", "a Cloud Connector stays in the project it was registered into"}})
		case err != nil:
			return nil, err
		}
	}
	return out, nil
}

// transferOne moves one device, named projects/<p>/devices/<d>, into the
// path's project, and counts its source project as touched.
func (s *Service) transferOne(c *call, name string) error {
	src, id := deviceID(name)
	if src == "" || id == "" {
		return errBadRequest("devices must be named projects/<p>/devices/<d>")
	}
	srcOrg, err := s.projectOrg(c.r.Context(), src)
	if err != nil {
		return err
	}
	// A device the caller may not move is answered as not found, so
	// another organization's devices cannot be probed.
	if srcOrg != c.org || !c.p.can(permDeviceTransfer, src, srcOrg) {
		return errNotFound("device not found")
	}
	err = s.db.MoveDevice(c.r.Context(), id, src, c.project)
	if notFound(err) || errors.Is(err, store.ErrNotSensor) {
		return err
	}
	if err != nil {
		return errUnavailable(err)
	}
	if src != c.project {
		c.touched = append(c.touched, src)
	}
	return nil
}

func isCode(err error, code int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.code == code
}
