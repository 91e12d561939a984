package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sealedsense/sealedsense/shared/devicetype"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

// The device emulator API is DT's, at its own base path: emulated devices
// of any type, whose events a customer publishes, for testing an
// integration without hardware. Their events take the real path (store,
// stream, webhooks) and are marked by the "emu" id and the product
// number store.EmulatedProductNumber.

// emulatorBase is the emulator API's base path, as DT's own is a base
// URL of its own.
const emulatorBase = "/emulator/v2"

// emulatedPrefix starts every emulated device id; with 20 characters
// after it, an emulated id is 23 long and no sensor's (20) can match it.
const emulatedPrefix = "emu"

// maxEmulatedDevices bounds a project's emulated devices.
const maxEmulatedDevices = 1000

type createEmulated struct {
	Type   string            `json:"type"`
	Labels map[string]string `json:"labels"`
}

// checkCreateEmulated checks an emulated device to create (pure).
func checkCreateEmulated(req createEmulated) error {
	if _, ok := devicetype.Lookup(req.Type); !ok {
		var names []string
		for _, t := range devicetype.All() {
			names = append(names, t.Name)
		}
		return errBadRequest("type must be one of %s", strings.Join(names, ", "))
	}
	if len(req.Labels) > 50 {
		return errBadRequest("at most 50 labels")
	}
	for k, v := range req.Labels {
		if err := checkLabel(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) createEmulated(c *call) (any, error) {
	var req createEmulated
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if err := checkCreateEmulated(req); err != nil {
		return nil, err
	}
	suffix, err := registry.NewID()
	if err != nil {
		return nil, errUnavailable(err)
	}
	id := emulatedPrefix + suffix
	d, err := s.db.CreateEmulatedDevice(c.r.Context(), id, c.project, req.Type, req.Labels, maxEmulatedDevices, s.deps.Now().UTC())
	if errors.Is(err, store.ErrTooMany) {
		return nil, errConflict(fmt.Sprintf("the project has %d emulated devices, the most it may have: delete some first", maxEmulatedDevices))
	}
	if err != nil {
		return nil, storeErr(err, "device")
	}
	s.log.Info("emulated device created", "projectId", c.project, "deviceId", id, "deviceType", req.Type)
	return toDevice(id, d), nil
}

func (s *Service) deleteEmulated(c *call) (any, error) {
	if err := s.db.DeleteEmulatedDevice(c.r.Context(), c.r.PathValue("device"), c.project); err != nil {
		return nil, storeErr(err, "emulated device")
	}
	return empty{}, nil
}

// publishEmulated stores and publishes one event as an emulated device:
// DT's body, {"<eventType>": {...}}, of a type the device's type emits.
func (s *Service) publishEmulated(c *call) (any, error) {
	if ok, wait := s.emuLimits.allow(c.project); !ok {
		return nil, &apiError{code: http.StatusTooManyRequests, msg: "the project's emulated events are rate limited", retryAfter: wait}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, event.MaxPublishBody))
	if err != nil {
		return nil, &apiError{code: http.StatusRequestEntityTooLarge, msg: "request body too large"}
	}
	id := c.r.PathValue("device")
	now := s.deps.Now().UTC()
	m := &madeEvent{project: c.project, device: id, retention: c.eventRetention()}
	err = s.db.PublishEmulated(c.r.Context(), id, c.project, func(d store.Device) (string, store.Event, error) {
		evID, err := event.RandomID()
		if err != nil {
			return "", store.Event{}, err
		}
		ev, err := event.FromPublished(c.project, id, evID, now, body)
		if err != nil {
			return "", store.Event{}, errBadRequest("%s", strings.TrimPrefix(err.Error(), "event: "))
		}
		if !devicetype.Emits(d.Type, ev.EventType) {
			return "", store.Event{}, errBadRequest("a %s device does not emit %s events", d.Type, ev.EventType)
		}
		return m.doc(ev, now)
	})
	if err != nil {
		return nil, storeErr(err, "emulated device")
	}
	s.publish(c.r.Context(), m)
	return empty{}, nil
}
