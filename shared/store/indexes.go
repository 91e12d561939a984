package store

// Order is a composite index field's order, as Terraform spells it.
type Order string

// Index orders.
const (
	Asc  Order = "ASCENDING"
	Desc Order = "DESCENDING"
)

// Field is one field of a composite index; "__name__" is the document id.
type Field struct {
	Path  string
	Order Order
}

// Index is a composite index that a query of this package needs in GCP
// (the emulator needs none). terraform/firestore.tf declares each one,
// and a test there checks it against Indexes.
type Index struct {
	Collection string
	Fields     []Field
}

var declared []Index

// needs declares the index that the query beside it runs on.
func needs(collection string, fields ...Field) Index {
	ix := Index{Collection: collection, Fields: fields}
	declared = append(declared, ix)
	return ix
}

// Indexes lists every composite index this package's queries need.
func Indexes() []Index { return append([]Index(nil), declared...) }

// FieldRef names one field of a collection, as google_firestore_field
// does; a map field stands for its subfields too.
type FieldRef struct{ Collection, Path string }

var risingDeclared, singleQueried []FieldRef

// rising declares fields of a collection whose values rise with the time
// of the write: a server timestamp, a reception time, an expiry, a map
// of them. Firestore's automatic single-field index on such a field
// puts every write at the end of one key range, which Firestore documents
// as limited to about 500 writes a second for the collection. Unless a
// query uses that index (queriesField), terraform/firestore.tf exempts
// the field, and a test there checks it. Composite indexes that order on
// such a field after an equality prefix are apart: their limit is per
// value of the prefix, and each is declared with needs.
func rising(collection string, paths ...string) bool {
	for _, p := range paths {
		risingDeclared = append(risingDeclared, FieldRef{collection, p})
	}
	return true
}

// queriesField declares a query that filters or orders on path alone, so
// that it runs on the field's automatic single-field index.
func queriesField(collection, path string) bool {
	singleQueried = append(singleQueried, FieldRef{collection, path})
	return true
}

// RisingFields lists the fields declared rising.
func RisingFields() []FieldRef { return append([]FieldRef(nil), risingDeclared...) }

// SingleFieldQueries lists the fields that a query uses alone.
func SingleFieldQueries() []FieldRef { return append([]FieldRef(nil), singleQueried...) }
