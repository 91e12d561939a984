package store

import "context"

// StudioSessionDocs reads every session document as stored, for the tests that
// check what Firestore holds (a test-only export).
func (db *DB) StudioSessionDocs(ctx context.Context) ([]map[string]any, error) {
	docs, err := db.fs.Collection(studioSessionsCollection).Documents(ctx).GetAll()
	if err != nil {
		return nil, wrap("studio sessions", err)
	}
	out := make([]map[string]any, len(docs))
	for i, d := range docs {
		out[i] = d.Data()
		out[i]["id"] = d.Ref.ID
	}
	return out, nil
}
