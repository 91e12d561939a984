package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/store"
)

// ErrPersonnelDenied means the project does not let platform personnel
// read its data.
var ErrPersonnelDenied = errors.New("api: the project denies personnel access")

// PersonnelDevices is how platform personnel read a project's devices: with
// a reason, only if the project allows it, and always with an audit entry
// the customer sees, refused or not.
func (st *Store) PersonnelDevices(ctx context.Context, operator, project, reason string) ([]Device, error) {
	if strings.TrimSpace(operator) == "" || len(strings.TrimSpace(reason)) < 10 {
		return nil, errors.New("api: personnel access needs the operator's identity and a reason of at least 10 characters")
	}
	p, err := st.db.Project(ctx, project)
	if store.IsNotFound(err) {
		return nil, fmt.Errorf("api: project %s: %w", project, registry.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	entry := store.AuditEntry{ProjectID: project, Time: st.now(), ActorType: "PERSONNEL", Actor: operator,
		Action: "PERSONNEL list devices", Resource: "projects/" + project + "/devices", Reason: reason}
	if p.PersonnelAccess != PersonnelAllowWithReason {
		entry.Code = 403
		if err := st.db.AppendAudit(ctx, entry); err != nil {
			return nil, err
		}
		return nil, ErrPersonnelDenied
	}
	entry.Code = 200
	// Audited before the read: data that cannot be audited is not shown.
	if err := st.db.AppendAudit(ctx, entry); err != nil {
		return nil, err
	}
	devs, err := st.db.ProjectDevices(ctx, project)
	if err != nil {
		return nil, err
	}
	out := []Device{}
	for _, id := range slices.Sorted(maps.Keys(devs)) {
		out = append(out, toDevice(id, devs[id]))
	}
	return out, nil
}
