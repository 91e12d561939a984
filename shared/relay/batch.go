package relay

import (
	"errors"
	"fmt"
)

// KindBatch frames several envelopes, each signed on its own, in one
// Pub/Sub message. A batch adds no trust: the frame is unsigned, and every
// envelope in it is verified as if it had come alone.
const KindBatch Kind = 4

// MaxBatch bounds the envelopes of one batch.
const MaxBatch = 64

// batch uses key 4 for its envelopes, which a signed envelope never has, so
// neither form decodes as the other under the strict decoder.
type batch struct {
	Kind      Kind     `cbor:"1,keyasint"`
	Envelopes [][]byte `cbor:"4,keyasint"`
}

// ErrNotBatch is SplitBatch's answer for bytes that are neither a batch nor
// a single envelope.
var ErrNotBatch = errors.New("relay: neither a batch nor an envelope")

// EncodeBatch frames envelopes for one message.
func EncodeBatch(envelopes [][]byte) ([]byte, error) {
	if len(envelopes) == 0 || len(envelopes) > MaxBatch {
		return nil, fmt.Errorf("%w: a batch holds 1..%d envelopes", ErrMalformed, MaxBatch)
	}
	for _, e := range envelopes {
		if len(e) == 0 || len(e) > MaxEnvelope {
			return nil, fmt.Errorf("%w: envelope of %d bytes in a batch", ErrMalformed, len(e))
		}
	}
	b, err := encMode().Marshal(batch{Kind: KindBatch, Envelopes: envelopes})
	if err != nil {
		return nil, fmt.Errorf("relay: encode batch: %w", err)
	}
	return b, nil
}

// SplitBatch returns the envelopes a message carries: those of a batch, or
// the message itself when it is a single envelope. It checks the framing
// only; each envelope is still to be opened and verified.
func SplitBatch(data []byte) ([][]byte, error) {
	if len(data) > MaxBatch*(MaxEnvelope+8)+16 {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotBatch, len(data))
	}
	var b batch
	if rest, err := strictDecMode(MaxBatch).UnmarshalFirst(data, &b); err == nil && len(rest) == 0 {
		if b.Kind != KindBatch || len(b.Envelopes) == 0 {
			return nil, fmt.Errorf("%w: kind %d with %d envelopes", ErrNotBatch, b.Kind, len(b.Envelopes))
		}
		for _, e := range b.Envelopes {
			if len(e) == 0 || len(e) > MaxEnvelope {
				return nil, fmt.Errorf("%w: envelope of %d bytes", ErrNotBatch, len(e))
			}
		}
		return b.Envelopes, nil
	}
	var s signed
	if rest, err := decMode().UnmarshalFirst(data, &s); err == nil && len(rest) == 0 && len(data) <= MaxEnvelope {
		return [][]byte{data}, nil
	}
	return nil, ErrNotBatch
}
