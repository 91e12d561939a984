package store

import (
	"context"
	"errors"

	"cloud.google.com/go/firestore"
)

// What erasing a project does to each collection that holds its data.
// The steps run in this order, each a page at a time until it finds
// nothing more, and the whole list runs twice: a change that raced the
// first pass (a request that passed the erasing check just before it was
// set) is caught by the second.
//
// The order matters: data connectors go first, so that nothing more is
// delivered; devices leave the project next, so that ingest stores
// nothing more for them (it stores no event of an unclaimed device);
// the audit log goes last but one, and the project's document last.

// EraseStep is one collection's part of erasing a project.
type EraseStep struct {
	Name string
	// Page erases up to limit of the project's documents and says how
	// many it found; 0 means the step is done.
	Page func(ctx context.Context, db *DB, project string, limit int) (int, error)
}

// EraseSteps lists the steps of erasing a project, in order.
func EraseSteps() []EraseStep {
	return []EraseStep{
		{"dataConnectors", eraseDataConnectors},
		{"deliveries", deleteWhere(deliveriesCollection, "projectId")},
		{"deliveryJobs", deleteWhere(deliveryJobsCollection, "projectId")},
		{"devices", releaseDevices},
		{"connectors", unregisterConnectors},
		{"events", deleteWhere(eventsCollection, "projectId")},
		{"receptions", deleteWhere(receptionsCollection, "projectId")},
		{"sessions", deleteWhere(sessionsCollection, "projectId")},
		{"rollouts", deleteWhere(rolloutsCollection, "projectId")},
		{"serviceAccountKeys", deleteWhere(keysCollection, "projectId")},
		{"serviceAccounts", deleteWhere(accountsCollection, "projectId")},
		{"members", eraseMembers},
		{"auditLog", deleteWhere(auditCollection, "projectId")},
	}
}

// deleteWhere is a step deleting the documents of collection whose field
// names the project.
func deleteWhere(collection, field string) func(context.Context, *DB, string, int) (int, error) {
	return func(ctx context.Context, db *DB, project string, limit int) (int, error) {
		q := db.fs.Collection(collection).Where(field, "==", project).Select().Limit(limit)
		refs, err := refsOf(ctx, q, "erase "+collection)
		if err != nil {
			return 0, err
		}
		return len(refs), db.deleteAll(ctx, refs)
	}
}

// deleteAll deletes refs in one bulk write.
func (db *DB) deleteAll(ctx context.Context, refs []*firestore.DocumentRef) error {
	if len(refs) == 0 {
		return nil
	}
	bw := db.fs.BulkWriter(ctx)
	jobs := make([]*firestore.BulkWriterJob, 0, len(refs))
	for _, r := range refs {
		j, err := bw.Delete(r)
		if err != nil {
			bw.End()
			return wrap("erase", err)
		}
		jobs = append(jobs, j)
	}
	bw.End()
	var errs []error
	for _, j := range jobs {
		if _, err := j.Results(); err != nil {
			errs = append(errs, err)
		}
	}
	return wrap("erase", errors.Join(errs...))
}

// eraseDataConnectors deletes the project's data connectors with their
// delivery metrics (named by connector, not project).
func eraseDataConnectors(ctx context.Context, db *DB, project string, limit int) (int, error) {
	q := db.fs.Collection(dataConnectorsCollection).Where("projectId", "==", project).Select().Limit(limit)
	refs, err := refsOf(ctx, q, "erase data connectors")
	if err != nil {
		return 0, err
	}
	for _, r := range refs {
		m, err := refsOf(ctx, db.fs.Collection(deliveryMetricsCollection).Where("connectorId", "==", r.ID).Select(), "erase delivery metrics")
		if err != nil {
			return 0, err
		}
		if err := db.deleteAll(ctx, m); err != nil {
			return 0, err
		}
	}
	return len(refs), db.deleteAll(ctx, refs)
}

// releaseDevices returns the project's sensors to the unclaimed
// inventory, with nothing the customer set or the sensor reported left
// on them, and deletes its emulated devices and the devices of its Cloud
// Connectors (their
// registrations are unregisterConnectors').
func releaseDevices(ctx context.Context, db *DB, project string, limit int) (int, error) {
	docs, err := db.fs.Collection(devicesCollection).Where("projectId", "==", project).Select("type").Limit(limit).Documents(ctx).GetAll()
	if err != nil {
		return 0, wrap("erase devices", err)
	}
	for _, d := range docs {
		if err := db.releaseDevice(ctx, d.Ref, project); err != nil {
			return 0, err
		}
	}
	return len(docs), nil
}

// releaseDevice releases one device in a transaction, so that a packet's
// transaction that read it claimed is retried and finds it unclaimed.
func (db *DB) releaseDevice(ctx context.Context, ref *firestore.DocumentRef, project string) error {
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		d, err := getIn[Device](tx, ref)
		if err != nil || d.ProjectID != project {
			return err
		}
		if d.Type == ConnectorType || d.Emulated {
			return tx.Delete(ref)
		}
		return tx.Update(ref, []firestore.Update{
			{Path: "projectId", Value: ""},
			{Path: "labels", Value: map[string]string{}},
			{Path: "reported", Value: firestore.Delete},
			{Path: "configuration", Value: firestore.Delete},
			{Path: "health", Value: firestore.Delete},
			{Path: "software", Value: firestore.Delete},
			{Path: "lastNetworkStatus", Value: firestore.Delete},
		})
	})
	if IsNotFound(err) {
		return nil
	}
	return wrap("release device "+ref.ID, err)
}

// unregisterConnectors takes the project's Cloud Connectors out of it:
// they keep relaying (they serve every sensor in range), and their status
// events belong to no project until one registers them again.
func unregisterConnectors(ctx context.Context, db *DB, project string, limit int) (int, error) {
	q := db.fs.Collection(connectorsCollection).Where("projectId", "==", project).Select().Limit(limit)
	refs, err := refsOf(ctx, q, "erase connectors")
	if err != nil {
		return 0, err
	}
	for _, r := range refs {
		if _, err := r.Update(ctx, []firestore.Update{{Path: "projectId", Value: ""}}); err != nil && !IsNotFound(err) {
			return 0, wrap("unregister connector "+r.ID, err)
		}
	}
	return len(refs), nil
}

// eraseMembers deletes the grants on the project.
func eraseMembers(ctx context.Context, db *DB, project string, limit int) (int, error) {
	q := db.fs.Collection(membersCollection).Where("scope", "==", ProjectScope(project)).Select().Limit(limit)
	refs, err := refsOf(ctx, q, "erase members")
	if err != nil {
		return 0, err
	}
	return len(refs), db.deleteAll(ctx, refs)
}

// StartErasure marks project as erasing under a new ERASE_PROJECT job,
// in one transaction, and says the job's id. A project already being
// erased is ErrExists, with the running job's id.
func (db *DB) StartErasure(ctx context.Context, project string, j DataJob) (string, error) {
	ref := db.fs.Collection(dataJobsCollection).NewDoc()
	running := ""
	err := db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		p, err := getIn[Project](tx, db.projectRef(project))
		if err != nil {
			return err
		}
		if p.Erasing != "" {
			running = p.Erasing
			return ErrExists
		}
		if err := tx.Update(db.projectRef(project), []firestore.Update{{Path: "erasing", Value: ref.ID}}); err != nil {
			return err
		}
		return tx.Create(ref, withExpiry(j))
	})
	if errors.Is(err, ErrExists) {
		return running, err
	}
	return ref.ID, wrap("erase project "+project, err)
}

// FinishErasure ends an erasure: the job and the project's document go,
// and the tombstone, the one record of the project left, is written.
func (db *DB) FinishErasure(ctx context.Context, project, jobID string, tombstone AuditEntry) error {
	id, err := auditID(tombstone.Time)
	if err != nil {
		return err
	}
	err = db.fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		if err := tx.Delete(db.projectRef(project)); err != nil {
			return err
		}
		if err := tx.Delete(db.dataJobRef(jobID)); err != nil {
			return err
		}
		return tx.Create(db.fs.Collection(auditCollection).Doc(id), tombstone)
	})
	return wrap("finish erasure of "+project, err)
}

// Tombstone reads the audit entry an erasure left, by the job's resource
// name.
func (db *DB) Tombstone(ctx context.Context, resource string) (AuditEntry, error) {
	docs, err := db.fs.Collection(auditCollection).Where("resource", "==", resource).Limit(1).Documents(ctx).GetAll()
	if err != nil {
		return AuditEntry{}, wrap("tombstone", err)
	}
	if len(docs) == 0 {
		return AuditEntry{}, wrap("tombstone "+resource, ErrNotFound)
	}
	return decode[AuditEntry](docs[0])
}

// EraseDeviceEvents deletes up to limit of one device's events in
// project, and says how many it found.
func (db *DB) EraseDeviceEvents(ctx context.Context, project, device string, limit int) (int, error) {
	q := db.fs.Collection(eventsCollection).Where("projectId", "==", project).Where("deviceId", "==", device).Select().Limit(limit)
	refs, err := refsOf(ctx, q, "erase events of "+device)
	if err != nil {
		return 0, err
	}
	return len(refs), db.deleteAll(ctx, refs)
}
