package relay

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"slices"
)

// ConnectorKeys are a connector's keys as the cloud knows them now: those
// its envelopes verify under (the current key, and during a key rotation's
// grace period the previous one), and those it has had whose grace ended,
// which are never accepted but name the reason for a refusal.
type ConnectorKeys struct {
	Valid   []ed25519.PublicKey
	Retired []ed25519.PublicKey
}

// KeyLookup returns a connector's keys, or an error for an unknown or
// revoked connector.
type KeyLookup func(ctx context.Context, connectorID string) (ConnectorKeys, error)

// verifyConnector checks s under any of the connector's valid keys; a
// signature by a retired key is ErrRetiredKey.
func verifyConnector(s signed, keys ConnectorKeys) error {
	for _, pub := range keys.Valid {
		if verify(s, pub) == nil {
			return nil
		}
	}
	for _, pub := range keys.Retired {
		if verify(s, pub) == nil {
			return ErrRetiredKey
		}
	}
	return ErrSignature
}

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
	keys, err := lookup(ctx, u.ConnectorID)
	if err != nil {
		return Uplink{}, fmt.Errorf("relay: connector %q: %w", u.ConnectorID, err)
	}
	if err := verifyConnector(s, keys); err != nil {
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
	if err := checkLinks(st); err != nil {
		return Status{}, err
	}
	if st.Software != nil {
		if err := st.Software.Validate(); err != nil {
			return Status{}, fmt.Errorf("%w: software: %v", ErrMalformed, err)
		}
	}
	keys, err := lookup(ctx, st.ConnectorID)
	if err != nil {
		return Status{}, fmt.Errorf("relay: connector %q: %w", st.ConnectorID, err)
	}
	if err := verifyConnector(s, keys); err != nil {
		return Status{}, fmt.Errorf("relay: status from %q: %w", st.ConnectorID, err)
	}
	return st, nil
}

// checkLinks checks what a status says of the links: only known link
// names and error codes, a well-formed MAC address, a signal in 0..100,
// and a Connection other than OFFLINE that is one of the links available.
func checkLinks(st Status) error {
	for _, a := range st.Available {
		if a != ConnectionEthernet && a != ConnectionCellular {
			return fmt.Errorf("%w: available link %q", ErrMalformed, a)
		}
	}
	if len(st.Available) > 2 {
		return fmt.Errorf("%w: %d available links", ErrMalformed, len(st.Available))
	}
	if st.SignalStrength < 0 || st.SignalStrength > 100 {
		return fmt.Errorf("%w: signal strength %d", ErrMalformed, st.SignalStrength)
	}
	if st.Connection != ConnectionOffline && len(st.Available) > 0 && !slices.Contains(st.Available, st.Connection) {
		return fmt.Errorf("%w: connected over %s, which is not available", ErrMalformed, st.Connection)
	}
	for _, l := range []*Link{st.Ethernet, st.Cellular} {
		if l == nil {
			continue
		}
		if l.SignalStrength < 0 || l.SignalStrength > 100 {
			return fmt.Errorf("%w: link signal strength %d", ErrMalformed, l.SignalStrength)
		}
		if l.MACAddress != "" {
			if hw, err := net.ParseMAC(l.MACAddress); err != nil || len(hw) != 6 {
				return fmt.Errorf("%w: MAC address %q", ErrMalformed, l.MACAddress)
			}
		}
		if len(l.Errors) > maxLinkErrors {
			return fmt.Errorf("%w: %d link errors", ErrMalformed, len(l.Errors))
		}
		for _, e := range l.Errors {
			if e != LinkDown && e != LinkUnreached {
				return fmt.Errorf("%w: link error %q", ErrMalformed, e)
			}
		}
	}
	return nil
}
