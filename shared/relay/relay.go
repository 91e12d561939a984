// Package relay defines the signed envelopes that carry sealed radio packets
// between Cloud Connectors and the cloud over Pub/Sub: uplinks and status
// heartbeats signed by a connector's Ed25519 key, and downlinks signed by the
// cloud channel key and addressed to one connector.
//
// Channel key rotation: the newest channel key signs every downlink, and
// while older versions are still stored each of them endorses it (an
// Ed25519 signature over EndorsementDomain || the new public key). A
// connector that trusts an older key learns the new one from the first
// downlink it verifies this way. A downlink signed by its newest trusted
// key also tells it which older keys the cloud still keeps (the endorsers),
// so it forgets a retired one (UpdateTrust). With a single stored version
// a downlink carries neither signer nor endorsements, and its bytes are
// those of a downlink from before rotation existed.
package relay

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealedsense/sealedsense/shared/payload"
)

// Limits on what an envelope may hold. A radio packet is at most 1024 bytes;
// the rest is a small, fixed set of fields.
const (
	MaxPacket   = 1024
	MaxEnvelope = 2048
	maxID       = 64
	// MaxEndorsements bounds the older channel keys that endorse a
	// downlink's signer: rotations are rare and old versions are retired.
	MaxEndorsements = 4
)

// EndorsementDomain separates an endorsement's signed message (this label,
// then the endorsed 32-byte public key) from every other Ed25519 message
// the channel key signs.
const EndorsementDomain = "sealedsense/channel-endorsement/v1"

// Sentinel errors. Every rejection wraps one of them.
var (
	// ErrMalformed: the bytes are not an envelope of the expected kind.
	ErrMalformed = errors.New("relay: malformed envelope")
	// ErrSignature: the signature does not verify under the signer's key.
	ErrSignature = errors.New("relay: bad signature")
	// ErrNotAddressed: a downlink for another connector.
	ErrNotAddressed = errors.New("relay: downlink addressed to another connector")
	// ErrStale: a downlink past its expiry, which a sensor no longer listens for.
	ErrStale = errors.New("relay: downlink expired")
	// ErrUntrusted: a downlink signed by a channel key the connector does
	// not trust, and endorsed by none it trusts.
	ErrUntrusted = errors.New("relay: downlink signed by an untrusted channel key")
	// ErrEndorsement: an endorsement by a trusted channel key does not
	// verify.
	ErrEndorsement = errors.New("relay: bad channel key endorsement")
	// ErrRetiredKey: an envelope signed by a connector key whose grace
	// period has ended. It is a bad signature too: the key no longer
	// speaks for the connector.
	ErrRetiredKey = fmt.Errorf("%w: signed by a connector key past its grace period", ErrSignature)
)

// Kind separates the three envelope kinds in the signed bytes, so that a
// signature over one can never be replayed as another.
type Kind uint8

// Envelope kinds.
const (
	KindUplink   Kind = 1
	KindDownlink Kind = 2
	KindStatus   Kind = 3
	KindSoftware Kind = 4 // pieces of a release for one connector (software.go)
)

// Uplink is one connector's reception of one radio packet.
type Uplink struct {
	ConnectorID string    `cbor:"1,keyasint"`
	Received    time.Time `cbor:"2,keyasint"`
	RSSI        float64   `cbor:"3,keyasint"` // dBm
	SNR         float64   `cbor:"4,keyasint"` // dB
	Packet      []byte    `cbor:"5,keyasint"`
}

// Downlink is a radio packet the cloud asks one connector to transmit. A
// downlink with endorsements may carry no packet: it only announces the
// channel key, and the connector transmits nothing.
type Downlink struct {
	ConnectorID string    `cbor:"1,keyasint"`
	Expires     time.Time `cbor:"2,keyasint"`
	Packet      []byte    `cbor:"3,keyasint,omitempty"`
	// Signer is the channel public key that signed the envelope. On the
	// wire it is present only with endorsements; OpenDownlink sets it to
	// the key that verified.
	Signer []byte `cbor:"4,keyasint,omitempty"`
	// Endorsements of Signer by the older channel keys the cloud still
	// stores. SignDownlink sets Signer when there are any.
	Endorsements []Endorsement `cbor:"5,keyasint,omitempty"`
}

// Endorsement is an older channel key's statement that a newer one speaks
// for the cloud.
type Endorsement struct {
	By  []byte `cbor:"1,keyasint"` // the endorsing channel public key
	Sig []byte `cbor:"2,keyasint"` // by By, over EndorsementDomain || Signer
}

// Announcement reports whether d only announces the channel key: it has
// no packet to transmit.
func (d Downlink) Announcement() bool { return len(d.Packet) == 0 }

// Connection types, as DT's connectionStatus names them.
const (
	ConnectionEthernet = "ETHERNET"
	ConnectionCellular = "CELLULAR"
	ConnectionOffline  = "OFFLINE"
)

// Status is a connector's heartbeat. A connector that shuts down cleanly
// sends one last Status with Connection OFFLINE.
type Status struct {
	ConnectorID    string    `cbor:"1,keyasint"`
	Time           time.Time `cbor:"2,keyasint"`
	Connection     string    `cbor:"3,keyasint"`
	Available      []string  `cbor:"4,keyasint"`
	SignalStrength int       `cbor:"5,keyasint"` // 0..100, for cellular
	Dropped        uint64    `cbor:"6,keyasint"` // packets the bounded queue has dropped since start
	// Ethernet and Cellular are the connector's two backhaul links, nil
	// when it has no such link. Available lists the links that are up;
	// Connection is the one it publishes over.
	Ethernet *Link `cbor:"7,keyasint,omitempty"`
	Cellular *Link `cbor:"8,keyasint,omitempty"`
	// Software is what the connector runs and where its update stands,
	// in a sensor's report form; nil from a connector built before
	// software updates.
	Software *payload.UpdateReport `cbor:"9,keyasint,omitempty"`
}

// Link is what a connector knows of one backhaul link. It carries no IP
// address: behind NAT or a carrier's network the address says nothing the
// cloud can use, and it would be one more personal datum to keep.
type Link struct {
	Up bool `cbor:"1,keyasint"`
	// MACAddress is the Ethernet interface's, as "aa:bb:cc:dd:ee:ff".
	MACAddress string `cbor:"2,keyasint,omitempty"`
	// SignalStrength is the cellular signal, 0..100.
	SignalStrength int `cbor:"3,keyasint,omitempty"`
	// Errors are the link's current faults, as LinkError codes.
	Errors []string `cbor:"4,keyasint,omitempty"`
}

// Link error codes a connector reports; anything else is refused.
const (
	LinkDown      = "LINK_DOWN"       // no carrier, or no network registration
	LinkUnreached = "CLOUD_UNREACHED" // up, but publishes over it fail
)

// maxLinkErrors bounds a link's error list.
const maxLinkErrors = 4

// signed is the wire form of every envelope: the CBOR body exactly as it was
// signed, and the signature over the kind and that body.
type signed struct {
	Kind Kind   `cbor:"1,keyasint"`
	Body []byte `cbor:"2,keyasint"`
	Sig  []byte `cbor:"3,keyasint"`
}

func encMode() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	// Reception times feed latency figures and the collection window, so
	// they keep nanoseconds.
	opts.Time = cbor.TimeRFC3339Nano
	m, err := opts.EncMode()
	if err != nil {
		panic(err) // the options are constant: this cannot fail at run time
	}
	return m
}

// decMode is strict: the bytes come from Pub/Sub, which anyone with publish
// rights on the topic can write to.
func decMode() cbor.DecMode { return strictDecMode(16) }

// strictDecMode refuses duplicate keys, indefinite lengths, tags, unknown
// fields and deep nesting, and arrays longer than maxArray.
func strictDecMode(maxArray int) cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		MaxArrayElements:  maxArray,
		MaxMapPairs:       16,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		TimeTag:           cbor.DecTagIgnored,
	}.DecMode()
	if err != nil {
		panic(err) // the options are constant: this cannot fail at run time
	}
	return m
}

// signingInput is what the Ed25519 signature covers: a domain label, the
// kind, and the body bytes.
func signingInput(k Kind, body []byte) []byte {
	in := make([]byte, 0, 24+len(body))
	in = append(in, "sealedsense relay v1"...)
	in = append(in, byte(k))
	return append(in, body...)
}

func seal(k Kind, key ed25519.PrivateKey, v any) ([]byte, error) {
	body, err := encMode().Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("relay: encode: %w", err)
	}
	out, err := encMode().Marshal(signed{Kind: k, Body: body, Sig: ed25519.Sign(key, signingInput(k, body))})
	if err != nil {
		return nil, fmt.Errorf("relay: encode: %w", err)
	}
	return out, nil
}

// parse decodes the outer envelope and its body without verifying; the
// caller verifies once it knows the signer's key from the body.
func parse(data []byte, want Kind, v any) (signed, error) {
	return parseWithin(data, want, v, MaxEnvelope, decMode())
}

// parseWithin is parse for an envelope kind with its own size limit and
// decoding mode.
func parseWithin(data []byte, want Kind, v any, limit int, dm cbor.DecMode) (signed, error) {
	if len(data) > limit {
		return signed{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(data), limit)
	}
	var s signed
	if rest, err := dm.UnmarshalFirst(data, &s); err != nil || len(rest) != 0 {
		return signed{}, fmt.Errorf("%w: outer envelope", ErrMalformed)
	}
	if s.Kind != want {
		return signed{}, fmt.Errorf("%w: kind %d, want %d", ErrMalformed, s.Kind, want)
	}
	if len(s.Sig) != ed25519.SignatureSize {
		return signed{}, fmt.Errorf("%w: signature length", ErrMalformed)
	}
	if rest, err := dm.UnmarshalFirst(s.Body, v); err != nil || len(rest) != 0 {
		return signed{}, fmt.Errorf("%w: body", ErrMalformed)
	}
	return s, nil
}

func verify(s signed, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, signingInput(s.Kind, s.Body), s.Sig) {
		return ErrSignature
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > maxID {
		return fmt.Errorf("%w: connector id must be 1..%d bytes", ErrMalformed, maxID)
	}
	return nil
}

func checkPacket(p []byte) error {
	if len(p) == 0 || len(p) > MaxPacket {
		return fmt.Errorf("%w: packet of %d bytes", ErrMalformed, len(p))
	}
	return nil
}
