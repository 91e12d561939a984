package api

import (
	"github.com/sealedsense/sealedsense/shared/event"
)

// Label is DT's label resource: one key of a device's labels.
type Label struct {
	Name  string `json:"name"` // projects/{p}/devices/{d}/labels/{key}
	Value string `json:"value"`
}

type createLabel struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

type updateLabel struct {
	Value string `json:"value"`
}

// maxLabelValue bounds a label's value, as batchUpdate does.
const maxLabelValue = 255

// checkLabel checks a label's key and value (pure).
func checkLabel(key, value string) error {
	if !event.ValidLabelKey(key) || len(value) > maxLabelValue {
		return errBadRequest("label keys are 1 to 63 of A-Z a-z 0-9 _ - . and values at most 255 bytes")
	}
	return nil
}

func labelName(project, device, key string) string {
	return "projects/" + project + "/devices/" + device + "/labels/" + key
}

// createLabel adds a label the device does not have; one it has is a
// conflict, as in DT.
func (s *Service) createLabel(c *call) (any, error) {
	var req createLabel
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkLabel(req.Key, req.Value); err != nil {
		return nil, err
	}
	return s.changeLabel(c, req.Key, req.Value, false)
}

func (s *Service) updateLabel(c *call) (any, error) {
	var req updateLabel
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	key := c.r.PathValue("label")
	if err := checkLabel(key, req.Value); err != nil {
		return nil, err
	}
	return s.changeLabel(c, key, req.Value, true)
}

// changeLabel sets one label, which must (exists) or must not exist.
func (s *Service) changeLabel(c *call, key, value string, exists bool) (any, error) {
	id := c.r.PathValue("device")
	d, err := s.device(c.r.Context(), c.project, id)
	if err != nil {
		return nil, err
	}
	if _, has := d.Labels[key]; has != exists {
		if exists {
			return nil, errNotFound("label not found")
		}
		return nil, errConflict("the device already has label " + key)
	}
	if err := s.setLabels(c, id, map[string]string{key: value}, nil); err != nil {
		return nil, storeErr(err, "device")
	}
	return Label{Name: labelName(c.project, id, key), Value: value}, nil
}

func (s *Service) deleteLabel(c *call) (any, error) {
	id, key := c.r.PathValue("device"), c.r.PathValue("label")
	d, err := s.device(c.r.Context(), c.project, id)
	if err != nil {
		return nil, err
	}
	if _, has := d.Labels[key]; !has {
		return nil, errNotFound("label not found")
	}
	if err := s.setLabels(c, id, nil, []string{key}); err != nil {
		return nil, storeErr(err, "device")
	}
	return empty{}, nil
}
