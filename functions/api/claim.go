package api

import (
	"context"
	"errors"
	"slices"

	"cloud.google.com/go/firestore"

	"github.com/sealedsense/sealedsense/shared/registry"
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

type kitDoc struct {
	DisplayName string   `firestore:"displayName"`
	DeviceIDs   []string `firestore:"deviceIds"`
}

// claim moves unclaimed devices, named or by kit, into the project. Each
// device is claimed in its own transaction, so two customers racing for one
// device cannot both have it; dryRun says what would happen and changes
// nothing.
func (s *Service) claim(c *call) (any, error) {
	var req claimRequest
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	dry := c.r.URL.Query().Get("dryRun") == "true"
	if n := len(req.DeviceIDs) + len(req.KitIDs); n == 0 || n > maxBatch {
		return nil, errBadRequest("deviceIds and kitIds must name 1 to %d items", maxBatch)
	}
	out := claimResult{ClaimedDevices: []claimedDevice{}, ClaimErrors: claimErrors{Devices: []claimError{}, Kits: []claimError{}}}
	ctx := c.r.Context()
	fs := s.deps.Firestore
	ids := slices.Clone(req.DeviceIDs)
	for _, kit := range req.KitIDs {
		snap, err := fs.Collection(registry.KitsCollection).Doc(kit).Get(ctx)
		if notFound(err) {
			out.ClaimErrors.Kits = append(out.ClaimErrors.Kits, claimError{KitID: kit, Code: codeNotFound, Message: "kit not found"})
			continue
		}
		if err != nil {
			return nil, errUnavailable(err)
		}
		var k kitDoc
		if err := snap.DataTo(&k); err != nil {
			return nil, err
		}
		ids = append(ids, k.DeviceIDs...)
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		ref := fs.Collection(registry.DevicesCollection).Doc(id)
		var d deviceDoc
		err := fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			snap, err := tx.Get(ref)
			if err != nil {
				return err
			}
			if err := snap.DataTo(&d); err != nil {
				return err
			}
			if d.ProjectID != "" {
				return errAlreadyClaimed
			}
			if dry {
				return nil
			}
			return tx.Update(ref, []firestore.Update{{Path: "projectId", Value: c.project}})
		})
		switch {
		case notFound(err):
			out.ClaimErrors.Devices = append(out.ClaimErrors.Devices, claimError{DeviceID: id, Code: codeNotFound, Message: "device not found"})
		case errors.Is(err, errAlreadyClaimed):
			out.ClaimErrors.Devices = append(out.ClaimErrors.Devices, claimError{DeviceID: id, Code: codeAlreadyClaimed, Message: "device already claimed"})
		case err != nil:
			return nil, errUnavailable(err)
		default:
			out.ClaimedDevices = append(out.ClaimedDevices, claimedDevice{DeviceID: id, DeviceType: d.Type, ProductNumber: d.ProductNumber})
		}
	}
	return out, nil
}

var errAlreadyClaimed = errors.New("already claimed")

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
	fs := s.deps.Firestore
	info := func(id string) (*claimInfoDevice, error) {
		snap, err := fs.Collection(registry.DevicesCollection).Doc(id).Get(ctx)
		if err != nil {
			return nil, err
		}
		var d deviceDoc
		if err := snap.DataTo(&d); err != nil {
			return nil, err
		}
		return &claimInfoDevice{DeviceID: id, DeviceType: d.Type, ProductNumber: d.ProductNumber, IsClaimed: d.ProjectID != ""}, nil
	}
	d, err := info(id)
	if err == nil {
		return claimInfo{Type: "DEVICE", Device: d}, nil
	}
	if !notFound(err) {
		return nil, errUnavailable(err)
	}
	k, err := getDoc[kitDoc](ctx, fs.Collection(registry.KitsCollection).Doc(id), "device or kit")
	if err != nil {
		return nil, err
	}
	kit := &claimInfoKit{KitID: id, DisplayName: k.DisplayName, Devices: []claimInfoDevice{}}
	for _, did := range k.DeviceIDs {
		d, err := info(did)
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
