package ingest

import (
	"fmt"
	"math"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// What a connector says about a packet it heard (signal, noise margin,
// when) is only its claim: a registered connector signs it, but a broken
// or hostile one can sign anything. Every copy's claim is checked against
// these bounds before it can claim or join a packet, so that no value
// outside them ever reaches a reception record, a device's links or a
// networkStatus event.
const (
	// minRSSI and maxRSSI bound a plausible received signal strength, in
	// dBm: no LoRa or sub-GHz receiver decodes below -150 dBm (the best
	// are near -140), and a packet at 0 dBm or above would have to be
	// transmitted from inside the antenna.
	minRSSI, maxRSSI = -150.0, 0.0
	// minSNR and maxSNR bound a plausible signal-to-noise ratio, in dB:
	// LoRa decodes down to about -20 dB at SF12, and a signal of at most
	// 0 dBm stands at most about 120 dB over a 125 kHz channel's thermal
	// noise (-123 dBm). LoRa chips stop reporting near +15 dB, but other
	// radios do not, nor does the local simulator (RSSI less a -115 dBm
	// noise floor, up to 75 dB). Only a negative SNR moves the reply's
	// choice, and only against the connector that reports it.
	minSNR, maxSNR = -40.0, 120.0
	// maxReceptionSkew is how far after the Pub/Sub publish time of its
	// message a copy's reception time may be: an honest connector
	// publishes what it heard after hearing it, so only the difference
	// of two NTP-synchronised clocks can put it later.
	maxReceptionSkew = 2 * time.Second
	// maxReceptionAge is how long before its message's publish time a
	// copy may have been heard: a connector holds what it heard only in a
	// bounded queue in memory while its uplink is slow or down. An older
	// copy could only be answered too late to matter, and the sensor
	// resends the readings it holds unacknowledged.
	maxReceptionAge = 5 * time.Minute
)

// metadataError is a copy whose reception metadata is out of bounds.
type metadataError struct {
	field  string // rssi, snr or received
	reason string
}

func (e *metadataError) Error() string { return e.field + ": " + e.reason }

// checkMetadata checks a copy's reception metadata against the bounds
// above; published is the Pub/Sub publish time of the message that
// carried it. It is pure: the caller refuses what it returns as
// "bad-metadata".
func checkMetadata(up relay.Uplink, published time.Time) error {
	if !within(up.RSSI, minRSSI, maxRSSI) {
		return &metadataError{"rssi", fmt.Sprintf("%v dBm outside [%v, %v]", up.RSSI, minRSSI, maxRSSI)}
	}
	if !within(up.SNR, minSNR, maxSNR) {
		return &metadataError{"snr", fmt.Sprintf("%v dB outside [%v, %v]", up.SNR, minSNR, maxSNR)}
	}
	if d := up.Received.Sub(published); d > maxReceptionSkew {
		return &metadataError{"received", fmt.Sprintf("%v after its message was published (at most %v)", d, maxReceptionSkew)}
	}
	// Compared the other way round: Sub saturates, so a reception time
	// centuries back still reads as older than the bound.
	if published.Sub(up.Received) > maxReceptionAge {
		return &metadataError{"received", fmt.Sprintf("more than %v before its message was published", maxReceptionAge)}
	}
	return nil
}

// within reports whether v is in [lo, hi]; NaN and the infinities never
// are.
func within(v, lo, hi float64) bool {
	return !math.IsNaN(v) && v >= lo && v <= hi
}
