package payload

import (
	"fmt"

	"github.com/sealedsense/sealedsense/shared/release"
)

// Software updates ride in the sealed payloads the sensor and the cloud
// already exchange, so connectors relay them without reading or altering
// them. The cloud offers a release's signed manifest, then its chunks, one
// per reply; the sensor says what it runs and which chunk it needs next.
// A sensor that has nothing else to send asks for the next chunk with an
// uplink that carries a report and no reading: a pull.
//
//	offer  {1: manifest bstr, 2: chunk bstr}           exactly one of the two
//	report {1: version uint, 2: release bstr(16), 3: next uint,
//	        4: state uint, 5: reason uint}              2, 3 and 5 optional

// ReleaseIDSize is the size of UpdateReport.Release when present.
const ReleaseIDSize = 16

// UpdateState is where a sensor's software update stands, as it reports
// it. The values are on the wire: never renumber them.
type UpdateState uint8

// Update states.
const (
	// UpdateFetching: the sensor accepted Release's manifest and needs
	// chunk Next.
	UpdateFetching UpdateState = 1
	// UpdateInstalled: the sensor runs Version; Release, when set, is the
	// release that installed it. A sensor that is updating nothing
	// reports this.
	UpdateInstalled UpdateState = 2
	// UpdateRefused: the sensor refused a manifest or a chunk for Reason
	// and runs Version. A refused manifest names its release when it
	// opened (not for BadSignature, UnknownKey, TooLarge or Malformed).
	// A refused chunk (WrongRelease, BadChunk, Malformed, with Release
	// named) leaves the download of Release going on, at chunk Next;
	// HashMismatch ends it.
	UpdateRefused UpdateState = 3
	// UpdateRolledBack: Release's image verified but did not boot
	// (Reason); the sensor runs Version, the one it ran before.
	UpdateRolledBack UpdateState = 4
)

var updateStateNames = [...]string{
	UpdateFetching:   "Fetching",
	UpdateInstalled:  "Installed",
	UpdateRefused:    "Refused",
	UpdateRolledBack: "RolledBack",
}

func (s UpdateState) String() string {
	if int(s) < len(updateStateNames) && updateStateNames[s] != "" {
		return updateStateNames[s]
	}
	return fmt.Sprintf("UpdateState(%d)", uint8(s))
}

// UpdateReport is a sensor's account of its software.
type UpdateReport struct {
	Version uint32         `cbor:"1,keyasint"`           // the software version it runs
	Release []byte         `cbor:"2,keyasint,omitempty"` // the release fetched, installed, refused or rolled back
	Next    uint32         `cbor:"3,keyasint,omitempty"` // the chunk it needs next, while fetching
	State   UpdateState    `cbor:"4,keyasint"`
	Reason  release.Reason `cbor:"5,keyasint,omitempty"` // when Refused or RolledBack
}

// Validate checks that a report has the fields its state needs and no
// others. Reasons are not checked against the names this build knows: a
// newer sensor may report one appended since.
func (r UpdateReport) Validate() error {
	hasRelease := r.Release != nil
	switch {
	case hasRelease && len(r.Release) != ReleaseIDSize:
		return fmt.Errorf("%w: update release id of %d bytes, want %d", ErrInvalid, len(r.Release), ReleaseIDSize)
	case r.State < UpdateFetching || r.State > UpdateRolledBack:
		return fmt.Errorf("%w: update state %d", ErrInvalid, r.State)
	case (r.State == UpdateRefused || r.State == UpdateRolledBack) != (r.Reason != 0):
		return fmt.Errorf("%w: update state %v with reason %d", ErrInvalid, r.State, r.Reason)
	case (r.State == UpdateFetching || r.State == UpdateRolledBack) && !hasRelease:
		return fmt.Errorf("%w: update state %v without a release", ErrInvalid, r.State)
	case r.Next != 0 && !(hasRelease && (r.State == UpdateFetching || r.State == UpdateRefused)):
		return fmt.Errorf("%w: next chunk %d in update state %v", ErrInvalid, r.Next, r.State)
	}
	return nil
}

// UpdateOffer is a piece of a release the cloud sends a sensor: the signed
// manifest (release.Seal) or one encoded chunk (release.Chunk.Marshal).
// The sensor verifies both; here they are only bytes within bounds.
type UpdateOffer struct {
	Manifest []byte `cbor:"1,keyasint,omitempty"`
	Chunk    []byte `cbor:"2,keyasint,omitempty"`
}

// Validate checks that exactly one of the two is set, within its bound.
// Set means present: an empty byte string is refused, not taken as absent.
func (o UpdateOffer) Validate() error {
	switch {
	case (o.Manifest == nil) == (o.Chunk == nil):
		return fmt.Errorf("%w: an update offer carries a manifest or a chunk, not %d of them", ErrInvalid, btoi(o.Manifest != nil)+btoi(o.Chunk != nil))
	case o.Manifest != nil && (len(o.Manifest) == 0 || len(o.Manifest) > release.MaxSigned):
		return fmt.Errorf("%w: offered manifest of %d bytes, want 1..%d", ErrInvalid, len(o.Manifest), release.MaxSigned)
	case o.Chunk != nil && (len(o.Chunk) == 0 || len(o.Chunk) > release.MaxChunkWire):
		return fmt.Errorf("%w: offered chunk of %d bytes, want 1..%d", ErrInvalid, len(o.Chunk), release.MaxChunkWire)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
