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
