package radio

import (
	"encoding/binary"
	"fmt"
)

// The replay window follows RFC 6479: a ring of 64-bit blocks, so that
// moving the window forward clears whole blocks instead of shifting bits.
const (
	blockBits = 64
	nBlocks   = 32
	// WindowSize is how far behind the newest counter a packet may arrive
	// and still be accepted once. One block is kept free as the ring's
	// working slack, as in the RFC.
	WindowSize = (nBlocks - 1) * blockBits

	replayWindowSize = 8 + nBlocks*8
)

// ReplayWindow remembers which counters in the last WindowSize were
// accepted. Its zero value is ready; it is not safe for concurrent use.
type ReplayWindow struct {
	last   uint64
	blocks [nBlocks]uint64
}

// Check reports whether counter would be accepted, without changing the
// window, so that a packet that fails authentication can never move it.
func (w *ReplayWindow) Check(counter uint64) error {
	if counter > w.last {
		return nil
	}
	if w.last-counter >= WindowSize {
		return ErrTooOld
	}
	if w.blocks[(counter/blockBits)%nBlocks]&(1<<(counter%blockBits)) != 0 {
		return ErrReplay
	}
	return nil
}

// Update accepts counter: it checks it, then records it.
func (w *ReplayWindow) Update(counter uint64) error {
	if err := w.Check(counter); err != nil {
		return err
	}
	idx := counter / blockBits
	if counter > w.last {
		cur := w.last / blockBits
		diff := min(idx-cur, nBlocks)
		for i := uint64(1); i <= diff; i++ {
			w.blocks[(cur+i)%nBlocks] = 0
		}
		w.last = counter
	}
	w.blocks[idx%nBlocks] |= 1 << (counter % blockBits)
	return nil
}

// AppendBinary appends the window's fixed-size encoding.
func (w *ReplayWindow) AppendBinary(b []byte) ([]byte, error) {
	b = binary.LittleEndian.AppendUint64(b, w.last)
	for _, blk := range w.blocks {
		b = binary.LittleEndian.AppendUint64(b, blk)
	}
	return b, nil
}

// MarshalBinary encodes the window; it is stored with the session.
func (w *ReplayWindow) MarshalBinary() ([]byte, error) {
	return w.AppendBinary(make([]byte, 0, replayWindowSize))
}

// UnmarshalBinary restores a window; any length but the exact one is
// refused.
func (w *ReplayWindow) UnmarshalBinary(b []byte) error {
	if len(b) != replayWindowSize {
		return fmt.Errorf("%w: replay window of %d bytes, want %d", ErrMalformed, len(b), replayWindowSize)
	}
	w.last = binary.LittleEndian.Uint64(b)
	for i := range w.blocks {
		w.blocks[i] = binary.LittleEndian.Uint64(b[8+8*i:])
	}
	return nil
}
