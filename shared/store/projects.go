package store

import (
	"context"
	"time"

	"cloud.google.com/go/firestore"
)

// projectsCollection holds one document per customer project, named by
// its id. Devices, service accounts, events and data connectors name
// their project in a projectId field rather than living under it, so
// moving a device is an update; grants name it as "projects/<id>".
const projectsCollection = "projects"

// Project is a customer project.
type Project struct {
	DisplayName  string `firestore:"displayName"`
	Organization string `firestore:"organization"`
	// PersonnelAccess says whether platform personnel may read the
	// project's data (DENY or ALLOW_WITH_REASON).
	PersonnelAccess string    `firestore:"personnelAccess"`
	CreateTime      time.Time `firestore:"createTime"`
	// EventRetentionSeconds is how long the project's events are kept
	// (0: the platform's default); each event's expiry is written when it
	// is stored, so a change reaches older events by a RETENTION job.
	EventRetentionSeconds int64 `firestore:"eventRetentionSeconds,omitempty"`
	// Erasing names the ERASE_PROJECT job under way: the project then
	// refuses every change, and its document goes when the job is done.
	Erasing string `firestore:"erasing,omitempty"`
}

// EventRetention is how long the project keeps events, def if it set
// none.
func (p Project) EventRetention(def time.Duration) time.Duration {
	if p.EventRetentionSeconds <= 0 {
		return def
	}
	return time.Duration(p.EventRetentionSeconds) * time.Second
}

// ProjectUpdate changes the fields that are not nil.
type ProjectUpdate struct {
	DisplayName     *string
	PersonnelAccess *string
	EventRetention  *time.Duration
	// RetentionJob, with a new EventRetention, is created with the
	// change: the job that brings the stored events to it.
	RetentionJob *DataJob
}

func (u ProjectUpdate) updates() []firestore.Update {
	var upd []firestore.Update
	if u.DisplayName != nil {
		upd = append(upd, firestore.Update{Path: "displayName", Value: *u.DisplayName})
	}
	if u.PersonnelAccess != nil {
		upd = append(upd, firestore.Update{Path: "personnelAccess", Value: *u.PersonnelAccess})
	}
	if u.EventRetention != nil {
		upd = append(upd, firestore.Update{Path: "eventRetentionSeconds", Value: int64(u.EventRetention.Seconds())})
	}
	return upd
}

func (db *DB) projectRef(id string) *firestore.DocumentRef {
	return db.fs.Collection(projectsCollection).Doc(id)
}

// CreateProject stores a new project; an id in use is ErrExists.
func (db *DB) CreateProject(ctx context.Context, id string, p Project) error {
	_, err := db.projectRef(id).Create(ctx, p)
	return wrap("create project "+id, err)
}

// Project reads one project.
func (db *DB) Project(ctx context.Context, id string) (Project, error) {
	return get[Project](ctx, db.projectRef(id), "project "+id)
}

// Projects reads the projects of ids that exist, in one round trip, keyed
// by id.
func (db *DB) Projects(ctx context.Context, ids []string) (map[string]Project, error) {
	return getByID[Project](ctx, db.fs, projectsCollection, ids)
}

// OrganizationProjects lists the ids of an organization's projects.
func (db *DB) OrganizationProjects(ctx context.Context, org string) ([]string, error) {
	docs, err := db.fs.Collection(projectsCollection).Where("organization", "==", org).Select().Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("projects of organization "+org, err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.Ref.ID
	}
	return ids, nil
}

// UpdateProject changes a project; a missing one is ErrNotFound. An
// update that changes nothing writes nothing.
func (db *DB) UpdateProject(ctx context.Context, id string, u ProjectUpdate) error {
	upd := u.updates()
	if len(upd) == 0 {
		return nil
	}
	if u.RetentionJob == nil {
		_, err := db.projectRef(id).Update(ctx, upd)
		return wrap("update project "+id, err)
	}
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if err := tx.Update(db.projectRef(id), upd); err != nil {
			return err
		}
		return tx.Create(db.fs.Collection(dataJobsCollection).NewDoc(), withExpiry(*u.RetentionJob))
	})
	return wrap("update project "+id, err)
}

// DeleteProject deletes a project with its memberships in one
// transaction, so no grant outlives its project (a later project of the
// same id would inherit it). Its audit log stays. Whether the project is
// empty is the caller's to check first.
func (db *DB) DeleteProject(ctx context.Context, id string) error {
	members, err := db.scopeMemberRefs(ctx, ProjectScope(id))
	if err != nil {
		return err
	}
	err = db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		for _, m := range members {
			if err := tx.Delete(m); err != nil {
				return err
			}
		}
		return tx.Delete(db.projectRef(id))
	})
	return wrap("delete project "+id, err)
}
