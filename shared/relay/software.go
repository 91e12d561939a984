package relay

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/sealedsense/sealedsense/shared/release"
)

// A connector fetches its own software over its authenticated channel: it
// reports in its status which release it is fetching and the chunk it
// needs next (Status.Software), and the cloud answers with a Software
// envelope signed by the channel key and addressed to it, carrying the
// release's signed manifest or a run of its chunks. The channel key only
// says the cloud sent it; the release key's signature over the manifest,
// and the manifest's hash over the image, are what the connector installs
// on, so someone who could publish to the downlinks topic cannot make it
// run anything.
//
// A Software envelope is verified under a channel key the connector
// already trusts: it carries no endorsements, and a connector learns a new
// channel key from the announcements its heartbeats bring.

// Bounds of a Software envelope.
const (
	// MaxSoftwareChunks is how many chunks one envelope carries: with
	// 1 KiB chunks, 32 KiB per round trip of status and answer.
	MaxSoftwareChunks = 32
	// MaxSoftwareEnvelope bounds its encoded size.
	MaxSoftwareEnvelope = MaxSoftwareChunks*(release.MaxChunkWire+8) + release.MaxSigned + 256
)

// Software is a piece of a release for one connector: the signed manifest
// (release.Seal's output), or chunks of the image (release.Chunk, encoded),
// never both.
type Software struct {
	ConnectorID string    `cbor:"1,keyasint"`
	Expires     time.Time `cbor:"2,keyasint"`
	Manifest    []byte    `cbor:"3,keyasint,omitempty"`
	Chunks      [][]byte  `cbor:"4,keyasint,omitempty"`
}

func checkSoftware(s Software) error {
	if err := checkID(s.ConnectorID); err != nil {
		return err
	}
	switch {
	case (len(s.Manifest) == 0) == (len(s.Chunks) == 0):
		return fmt.Errorf("%w: software envelope needs a manifest or chunks, not both", ErrMalformed)
	case len(s.Manifest) > release.MaxSigned:
		return fmt.Errorf("%w: manifest of %d bytes", ErrMalformed, len(s.Manifest))
	case len(s.Chunks) > MaxSoftwareChunks:
		return fmt.Errorf("%w: %d chunks, limit %d", ErrMalformed, len(s.Chunks), MaxSoftwareChunks)
	}
	for _, c := range s.Chunks {
		if len(c) == 0 || len(c) > release.MaxChunkWire {
			return fmt.Errorf("%w: chunk of %d bytes", ErrMalformed, len(c))
		}
	}
	return nil
}

// SignSoftware makes the envelope the cloud publishes to one connector.
func SignSoftware(channelKey ed25519.PrivateKey, s Software) ([]byte, error) {
	if err := checkSoftware(s); err != nil {
		return nil, err
	}
	return seal(KindSoftware, channelKey, s)
}

// OpenSoftware is the connector's check of a Software envelope: signed by
// a channel key it trusts, addressed to self, not expired. The manifest
// and chunks inside are still the release package's to verify.
func OpenSoftware(data []byte, trusted []ed25519.PublicKey, self string, now time.Time) (Software, error) {
	var sw Software
	s, err := parseWithin(data, KindSoftware, &sw, MaxSoftwareEnvelope, strictDecMode(MaxSoftwareChunks))
	if err != nil {
		return Software{}, err
	}
	if err := checkSoftware(sw); err != nil {
		return Software{}, err
	}
	verified := false
	for _, pub := range trusted {
		if verify(s, pub) == nil {
			verified = true
			break
		}
	}
	switch {
	case !verified:
		return Software{}, fmt.Errorf("relay: software: %w", ErrSignature)
	case sw.ConnectorID != self:
		return Software{}, ErrNotAddressed
	case !now.Before(sw.Expires):
		return Software{}, ErrStale
	}
	return sw, nil
}

// KindOf is the kind of envelope data claims to be, read without
// verifying anything, so a receiver can choose which Open to call.
func KindOf(data []byte) (Kind, error) {
	var s signed
	if len(data) > MaxSoftwareEnvelope {
		return 0, fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	if rest, err := strictDecMode(MaxSoftwareChunks).UnmarshalFirst(data, &s); err != nil || len(rest) != 0 {
		return 0, fmt.Errorf("%w: outer envelope", ErrMalformed)
	}
	return s.Kind, nil
}
