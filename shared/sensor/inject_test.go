package sensor_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/shared/sensor"
)

// TestSkipSequence: a jump moves only the numbers of readings taken after
// it; the readings already waiting for an ACK keep theirs.
func TestSkipSequence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		delta int64
		want  uint64 // the Seq of the reading after the jump
	}{
		{"no jump", 0, 101},
		{"ahead", 1000, 1101},
		{"back", -60, 41},
		{"back to the reading before", -1, 100},
		{"back past the first number", -500, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, c := newPair(t, sensor.Config{})
			before := s.Record(temp(20)) // numbers start at 100
			s.SkipSequence(tc.delta)
			if got := s.NextSeq(); got != tc.want {
				t.Fatalf("after SkipSequence(%d) from 101: NextSeq %d; want %d", tc.delta, got, tc.want)
			}
			after := s.Record(temp(21))
			if before != 100 || after != tc.want {
				t.Fatalf("readings numbered %d, %d; want 100, %d", before, after, tc.want)
			}
			connect(t, s, c, t0)
			pkt, err := s.Next(t0)
			if err != nil || pkt == nil {
				t.Fatalf("no packet: %v", err)
			}
			_, readings := c.handle(pkt, t0)
			var seqs []uint64
			for _, r := range readings {
				seqs = append(seqs, r.Seq)
			}
			slices.Sort(seqs)
			if want := []uint64{min(100, tc.want), max(100, tc.want)}; !slices.Equal(seqs, want) {
				t.Fatalf("the packet carried readings %v; want 100 and %d", seqs, tc.want)
			}
			if st := s.Stats(); st.Recorded != 2 {
				t.Fatalf("Recorded %d; want the 2 readings taken", st.Recorded)
			}
		})
	}
}

// TestInitiateStartsAFreshHandshake: a sensor with a working session
// still sends a valid initiation, newer than the last, each time it is
// asked, and the session of the last one answered carries its readings.
func TestInitiateStartsAFreshHandshake(t *testing.T) {
	t.Parallel()
	s, c := newPair(t, sensor.Config{})
	connect(t, s, c, t0)
	var resp []byte
	for i := range 3 {
		// Within one clock tick: the timestamps must still grow, or the
		// cloud (c.handle) fails the test.
		init, err := s.Initiate(t0)
		if err != nil {
			t.Fatalf("initiation %d: %v", i, err)
		}
		resp, _ = c.handle(init, t0)
	}
	if mine, err := s.Receive(resp, t0); !mine || err != nil {
		t.Fatalf("the response to the last initiation: mine %v, %v", mine, err)
	}
	if st := s.Stats(); st.Handshakes != 4 {
		t.Fatalf("%d handshakes; want the first and 3 forced", st.Handshakes)
	}
	s.Record(temp(20))
	pkt, err := s.Next(t0.Add(time.Second))
	if err != nil || pkt == nil {
		t.Fatalf("no packet after the forced handshakes: %v", err)
	}
	if _, readings := c.handle(pkt, t0.Add(time.Second)); len(readings) != 1 {
		t.Fatalf("the packet under the new session carried %d readings; want 1", len(readings))
	}
}
