package api

import (
	"context"
	"errors"
	"slices"

	"github.com/sealedsense/sealedsense/shared/store"
)

type claimRequest struct {
	DeviceIDs []string `json:"deviceIds"`
	KitIDs    []string `json:"kitIds"`
}

type claimedDevice struct {
	DeviceID      string `json:"deviceId"`
	DeviceType    string `json:"deviceType"`
	ProductNumber string `json:"productNumber"`
}

type claimError struct {
	DeviceID string `json:"deviceId,omitempty"`
	KitID    string `json:"kitId,omitempty"`
	Code     string `json:"code"`
	Message  string `json:"message"`
}

type claimErrors struct {
	Devices []claimError `json:"devices"`
	Kits    []claimError `json:"kits"`
}

type claimResult struct {
	ClaimedDevices []claimedDevice `json:"claimedDevices"`
	ClaimErrors    claimErrors     `json:"claimErrors"`
}

const (
	codeAlreadyClaimed = "ALREADY_CLAIMED"
	codeNotFound       = "NOT_FOUND"
)

// claim moves unclaimed devices, named or by kit, into the project. Each
// device is claimed in its own transaction, so two customers racing for one
// device cannot both have it; dryRun says what would happen and changes
// nothing.
func (s *Service) claim(c *call) (any, error) {
	var req claimRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if n := len(req.DeviceIDs) + len(req.KitIDs); n == 0 || n > maxBatch {
		return nil, errBadRequest("deviceIds and kitIds must name 1 to %d items", maxBatch)
	}
	dry := c.r.URL.Query().Get("dryRun") == "true"
	out := claimResult{ClaimedDevices: []claimedDevice{}, ClaimErrors: claimErrors{Devices: []claimError{}, Kits: []claimError{}}}
	ids, err := s.kitDevices(c.r.Context(), req.KitIDs, &out.ClaimErrors)
	if err != nil {
		return nil, err
	}
	ids = append(slices.Clone(req.DeviceIDs), ids...)
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		d, err := s.db.ClaimDevice(c.r.Context(), id, c.project, dry)
		switch {
		case notFound(err):
			out.ClaimErrors.Devices = append(out.ClaimErrors.Devices, claimError{DeviceID: id, Code: codeNotFound, Message: "device not found"})
		case errors.Is(err, store.ErrNotSensor):
			// A Cloud Connector is in the project its registration
			// named from the start: claimed, as DT's clients see it.
			out.ClaimErrors.Devices = append(out.ClaimErrors.Devices, claimError{DeviceID: id, Code: codeAlreadyClaimed, Message: "a Cloud Connector belongs to the project it was registered into"})
		case errors.Is(err, store.ErrClaimed):
			out.ClaimErrors.Devices = append(out.ClaimErrors.Devices, claimError{DeviceID: id, Code: codeAlreadyClaimed, Message: "device already claimed"})
		case err != nil:
			return nil, errUnavailable(err)
		default:
			out.ClaimedDevices = append(out.ClaimedDevices, claimedDevice{DeviceID: id, DeviceType: d.Type, ProductNumber: d.ProductNumber})
		}
	}
	return out, nil
}

// kitDevices lists the devices of kits, and a claim error for each kit
// that does not exist.
func (s *Service) kitDevices(ctx context.Context, kits []string, errs *claimErrors) ([]string, error) {
	var ids []string
	for _, kit := range kits {
		k, err := s.db.Kit(ctx, kit)
		if notFound(err) {
			errs.Kits = append(errs.Kits, claimError{KitID: kit, Code: codeNotFound, Message: "kit not found"})
			continue
		}
		if err != nil {
			return nil, storeErr(err, "kit")
		}
		ids = append(ids, k.DeviceIDs...)
	}
	return ids, nil
}

type claimInfoDevice struct {
	DeviceID      string `json:"deviceId"`
	DeviceType    string `json:"deviceType"`
	ProductNumber string `json:"productNumber"`
	IsClaimed     bool   `json:"isClaimed"`
}

type claimInfoKit struct {
	KitID       string            `json:"kitId"`
	DisplayName string            `json:"displayName"`
	Devices     []claimInfoDevice `json:"devices"`
}

type claimInfo struct {
	Type   string           `json:"type"`
	Device *claimInfoDevice `json:"device,omitempty"`
	Kit    *claimInfoKit    `json:"kit,omitempty"`
}

// claimInfo says what an identifier printed on a device or kit names. It
// tells whether a device is claimed, never by whom.
func (s *Service) claimInfo(c *call) (any, error) {
	id := c.r.URL.Query().Get("identifier")
	if id == "" || len(id) > 64 {
		return nil, errBadRequest("identifier is required")
	}
	ctx := c.r.Context()
	d, err := s.claimInfoDevice(ctx, id)
	if err == nil {
		return claimInfo{Type: "DEVICE", Device: d}, nil
	}
	if !notFound(err) {
		return nil, errUnavailable(err)
	}
	k, err := s.db.Kit(ctx, id)
	if err != nil {
		return nil, storeErr(err, "device or kit")
	}
	kit := &claimInfoKit{KitID: id, DisplayName: k.DisplayName, Devices: []claimInfoDevice{}}
	for _, did := range k.DeviceIDs {
		d, err := s.claimInfoDevice(ctx, did)
		if notFound(err) {
			continue
		}
		if err != nil {
			return nil, errUnavailable(err)
		}
		kit.Devices = append(kit.Devices, *d)
	}
	return claimInfo{Type: "KIT", Kit: kit}, nil
}

func (s *Service) claimInfoDevice(ctx context.Context, id string) (*claimInfoDevice, error) {
	d, err := s.db.Device(ctx, id)
	if err != nil {
		return nil, err
	}
	return &claimInfoDevice{DeviceID: id, DeviceType: d.Type, ProductNumber: d.ProductNumber, IsClaimed: d.ProjectID != ""}, nil
}
