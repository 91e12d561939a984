package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sealedsense/sealedsense/shared/registry"
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
	snap, err := st.fs.Collection(projectsCollection).Doc(project).Get(ctx)
	if notFound(err) {
		return nil, fmt.Errorf("api: project %s: %w", project, registry.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var p projectDoc
	if err := snap.DataTo(&p); err != nil {
		return nil, err
	}
	entry := auditDoc{ProjectID: project, Time: st.now(), ActorType: "PERSONNEL", Actor: operator,
		Action: "PERSONNEL list devices", Resource: "projects/" + project + "/devices", Reason: reason}
	if p.PersonnelAccess != PersonnelAllowWithReason {
		entry.Code = 403
		if err := appendAudit(ctx, st.fs, entry); err != nil {
			return nil, err
		}
		return nil, ErrPersonnelDenied
	}
	entry.Code = 200
	// Audited before the read: data that cannot be audited is not shown.
	if err := appendAudit(ctx, st.fs, entry); err != nil {
		return nil, err
	}
	docs, err := st.fs.Collection(registry.DevicesCollection).Where("projectId", "==", project).Documents(ctx).GetAll()
	if err != nil {
		return nil, err
	}
	out := []Device{}
	for _, d := range docs {
		var dd deviceDoc
		if err := d.DataTo(&dd); err != nil {
			return nil, err
		}
		out = append(out, toDevice(d.Ref.ID, dd))
	}
	return out, nil
}
