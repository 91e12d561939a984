package relay

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"
)

// KeyLookup returns a connector's registered public key, or an error for an
// unknown or revoked connector.
type KeyLookup func(ctx context.Context, connectorID string) (ed25519.PublicKey, error)

// SignUplink makes the envelope a connector publishes to the uplinks topic.
func SignUplink(key ed25519.PrivateKey, u Uplink) ([]byte, error) {
	if err := checkUplink(u); err != nil {
		return nil, err
	}
	return seal(KindUplink, key, u)
}

func checkUplink(u Uplink) error {
	if err := checkID(u.ConnectorID); err != nil {
		return err
	}
	return checkPacket(u.Packet)
}

// OpenUplink parses an uplink envelope, looks up the connector it names and
// verifies its signature. Errors from lookup are returned wrapped, so that
// callers can tell an unknown connector from a forged one.
func OpenUplink(ctx context.Context, data []byte, lookup KeyLookup) (Uplink, error) {
	var u Uplink
	s, err := parse(data, KindUplink, &u)
	if err != nil {
		return Uplink{}, err
	}
	if err := checkUplink(u); err != nil {
		return Uplink{}, err
	}
	pub, err := lookup(ctx, u.ConnectorID)
	if err != nil {
		return Uplink{}, fmt.Errorf("relay: connector %q: %w", u.ConnectorID, err)
	}
	if err := verify(s, pub); err != nil {
		return Uplink{}, fmt.Errorf("relay: uplink from %q: %w", u.ConnectorID, err)
	}
	return u, nil
}

// SignStatus makes a connector's heartbeat envelope.
func SignStatus(key ed25519.PrivateKey, s Status) ([]byte, error) {
	if err := checkID(s.ConnectorID); err != nil {
		return nil, err
	}
	return seal(KindStatus, key, s)
}

// OpenStatus parses and verifies a heartbeat, like OpenUplink.
func OpenStatus(ctx context.Context, data []byte, lookup KeyLookup) (Status, error) {
	var st Status
	s, err := parse(data, KindStatus, &st)
	if err != nil {
		return Status{}, err
	}
	if err := checkID(st.ConnectorID); err != nil {
		return Status{}, err
	}
	switch st.Connection {
	case ConnectionEthernet, ConnectionCellular, ConnectionOffline:
	default:
		return Status{}, fmt.Errorf("%w: connection %q", ErrMalformed, st.Connection)
	}
	pub, err := lookup(ctx, st.ConnectorID)
	if err != nil {
		return Status{}, fmt.Errorf("relay: connector %q: %w", st.ConnectorID, err)
	}
	if err := verify(s, pub); err != nil {
		return Status{}, fmt.Errorf("relay: status from %q: %w", st.ConnectorID, err)
	}
	return st, nil
}

// SignDownlink makes the envelope the cloud publishes for one connector.
func SignDownlink(channelKey ed25519.PrivateKey, d Downlink) ([]byte, error) {
	if err := checkID(d.ConnectorID); err != nil {
		return nil, err
	}
	if err := checkPacket(d.Packet); err != nil {
		return nil, err
	}
	return seal(KindDownlink, channelKey, d)
}

// OpenDownlink is the connector's check before it transmits: the envelope
// must verify under the cloud channel key, be addressed to self, and not be
// past its expiry. Every connector sees every downlink (a Pub/Sub filter is
// not a security boundary), so the addressee check is what matters.
func OpenDownlink(data []byte, channelPublic ed25519.PublicKey, self string, now time.Time) (Downlink, error) {
	var d Downlink
	s, err := parse(data, KindDownlink, &d)
	if err != nil {
		return Downlink{}, err
	}
	if err := verify(s, channelPublic); err != nil {
		return Downlink{}, fmt.Errorf("relay: downlink: %w", err)
	}
	if err := checkPacket(d.Packet); err != nil {
		return Downlink{}, err
	}
	if d.ConnectorID != self {
		return Downlink{}, ErrNotAddressed
	}
	if !now.Before(d.Expires) {
		return Downlink{}, ErrStale
	}
	return d, nil
}
