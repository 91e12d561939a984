package sensor

import "time"

// rttEstimate is the smoothed send-to-ACK time and its variation, kept as
// TCP keeps them (RFC 6298), so that a sensor waits for an ACK about as
// long as ACKs take. A fixed wait shorter than a loaded cloud's answers
// would resend every reading the cloud is still working on, adding the
// duplicates to its load exactly when it can least afford them, until
// it collapses.
type rttEstimate struct {
	srtt, rttvar time.Duration
	samples      int
}

// add takes one send-to-ACK time. A resend travels in a new packet under
// a new counter, so every sample is unambiguous (Karn's problem does not
// arise).
func (e *rttEstimate) add(sample time.Duration) {
	if e.samples == 0 {
		e.srtt, e.rttvar = sample, sample/2
	} else {
		diff := e.srtt - sample
		if diff < 0 {
			diff = -diff
		}
		e.rttvar = (3*e.rttvar + diff) / 4
		e.srtt = (7*e.srtt + sample) / 8
	}
	e.samples++
}

// timeout is how long to wait for an ACK: the smoothed time plus four
// variations, never less than floor (Config.ResendAfter, the wait before
// any ACK was timed) nor more than maxBackoff.
func (e rttEstimate) timeout(floor time.Duration) time.Duration {
	if e.samples == 0 {
		return floor
	}
	return min(max(floor, e.srtt+4*e.rttvar), maxBackoff)
}
