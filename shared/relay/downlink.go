package relay

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"
)

// endorsementInput is what an endorsement signs.
func endorsementInput(signer []byte) []byte {
	return append([]byte(EndorsementDomain), signer...)
}

// Endorse is older's endorsement of newer: with it, a connector that
// trusts older learns newer.
func Endorse(older ed25519.PrivateKey, newer ed25519.PublicKey) Endorsement {
	return Endorsement{By: older.Public().(ed25519.PublicKey), Sig: ed25519.Sign(older, endorsementInput(newer))}
}

// SignDownlink makes the envelope the cloud publishes for one connector,
// signed by channelKey; d.Endorsements, if any, travel with it and name
// channelKey's public half as the signer.
func SignDownlink(channelKey ed25519.PrivateKey, d Downlink) ([]byte, error) {
	d.Signer = nil
	if len(d.Endorsements) > 0 {
		d.Signer = channelKey.Public().(ed25519.PublicKey)
	}
	if err := checkDownlink(d); err != nil {
		return nil, err
	}
	return seal(KindDownlink, channelKey, d)
}

func checkDownlink(d Downlink) error {
	if err := checkID(d.ConnectorID); err != nil {
		return err
	}
	if len(d.Endorsements) > MaxEndorsements {
		return fmt.Errorf("%w: %d endorsements, limit %d", ErrMalformed, len(d.Endorsements), MaxEndorsements)
	}
	if len(d.Endorsements) > 0 && len(d.Signer) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: endorsements without a signer", ErrMalformed)
	}
	if d.Signer != nil && len(d.Signer) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signer of %d bytes", ErrMalformed, len(d.Signer))
	}
	for _, e := range d.Endorsements {
		if len(e.By) != ed25519.PublicKeySize || len(e.Sig) != ed25519.SignatureSize {
			return fmt.Errorf("%w: endorsement of %d+%d bytes", ErrMalformed, len(e.By), len(e.Sig))
		}
	}
	if d.Announcement() && len(d.Endorsements) > 0 {
		return nil // announces the channel key only
	}
	return checkPacket(d.Packet)
}

// OpenDownlink is the connector's check before it transmits: the envelope
// must verify under a channel key it trusts, or under a key that one it
// trusts endorses; be addressed to self; and not be past its expiry.
// Every connector sees every downlink (a Pub/Sub filter is not a security
// boundary), so the addressee check is what matters. trusted is the
// connector's channel keys, oldest first. The returned Downlink's Signer is
// the key that verified it; UpdateTrust says what it teaches.
func OpenDownlink(data []byte, trusted []ed25519.PublicKey, self string, now time.Time) (Downlink, error) {
	var d Downlink
	s, err := parse(data, KindDownlink, &d)
	if err != nil {
		return Downlink{}, err
	}
	if err := checkDownlink(d); err != nil {
		return Downlink{}, err
	}
	if d.Signer, err = downlinkSigner(s, d, trusted); err != nil {
		return Downlink{}, fmt.Errorf("relay: downlink: %w", err)
	}
	if d.ConnectorID != self {
		return Downlink{}, ErrNotAddressed
	}
	if !now.Before(d.Expires) {
		return Downlink{}, ErrStale
	}
	return d, nil
}

// downlinkSigner returns the channel key that signed s: one of trusted,
// or the named signer if a trusted key endorses it.
func downlinkSigner(s signed, d Downlink, trusted []ed25519.PublicKey) (ed25519.PublicKey, error) {
	if d.Signer == nil {
		for _, pub := range trusted {
			if verify(s, pub) == nil {
				return pub, nil
			}
		}
		return nil, ErrSignature
	}
	signer := ed25519.PublicKey(d.Signer)
	if err := verify(s, signer); err != nil {
		return nil, err
	}
	if isTrusted(trusted, signer) {
		return signer, nil
	}
	err := error(ErrUntrusted)
	for _, e := range d.Endorsements {
		if !isTrusted(trusted, e.By) {
			continue
		}
		if ed25519.Verify(ed25519.PublicKey(e.By), endorsementInput(signer), e.Sig) {
			return signer, nil
		}
		err = ErrEndorsement
	}
	return nil, err
}

func isTrusted(trusted []ed25519.PublicKey, k []byte) bool {
	return slices.ContainsFunc(trusted, func(t ed25519.PublicKey) bool { return bytes.Equal(t, k) })
}

// UpdateTrust returns the channel keys a connector trusts after opening d,
// oldest first, and whether they changed. A signer it did not trust was
// endorsed, so it joins as the newest. A downlink signed by the newest key
// states which older keys the cloud still stores (its endorsers), so any
// other is forgotten: that is how a retired key stops being trusted. A
// downlink signed by an older key (an instance that has not reloaded the
// cloud's keys yet) changes nothing.
func UpdateTrust(trusted []ed25519.PublicKey, d Downlink) ([]ed25519.PublicKey, bool) {
	signer := ed25519.PublicKey(d.Signer)
	known := isTrusted(trusted, signer)
	if len(signer) != ed25519.PublicKeySize || (known && !bytes.Equal(trusted[len(trusted)-1], signer)) {
		return trusted, false
	}
	next := make([]ed25519.PublicKey, 0, len(trusted)+1)
	for _, t := range trusted {
		endorses := slices.ContainsFunc(d.Endorsements, func(e Endorsement) bool { return bytes.Equal(e.By, t) })
		if endorses && !bytes.Equal(t, signer) {
			next = append(next, t)
		}
	}
	next = append(next, signer)
	return next, !slices.EqualFunc(next, trusted, func(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) })
}
