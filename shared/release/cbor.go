package release

import (
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// encMode is Core Deterministic encoding: what is signed has one form.
var encMode = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // constant options: cannot fail at run time
	}
	return m
}()

// decMode is strict: manifests and chunks reach a device through connectors
// and radio links that anyone may speak on.
var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4, // the least the decoder allows; ours are flat maps
		MaxArrayElements:  16,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err) // constant options: cannot fail at run time
	}
	return m
}()

// decode decodes exactly one CBOR item from b into v.
func decode(b []byte, v any) error {
	rest, err := decMode.UnmarshalFirst(b, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}
