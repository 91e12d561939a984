package relay_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealedsense/sealedsense/shared/relay"
)

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestEndorsedDownlink: a connector that trusts only the old channel key
// accepts a downlink signed by the new one only through a valid
// endorsement by a key it trusts.
func TestEndorsedDownlink(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	oldPub, newPub := pubOf(k.channel), pubOf(k.newChannel)
	exp := t0.Add(time.Minute)
	sign := func(key ed25519.PrivateKey, packet []byte, es ...relay.Endorsement) []byte {
		t.Helper()
		env, err := relay.SignDownlink(key, relay.Downlink{ConnectorID: "ccon-1", Expires: exp, Packet: packet, Endorsements: es})
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	wrongDomain := relay.Endorsement{By: oldPub, Sig: ed25519.Sign(k.channel, append([]byte("sealedsense/channel-endorsement/v2"), newPub...))}
	forged := relay.Endorse(k.other, newPub)
	forged.By = oldPub // claims the old key, signed by another
	ofOther := relay.Endorse(k.channel, pubOf(k.other))
	ofOther.By = oldPub

	tests := []struct {
		name        string
		data        []byte
		trusted     []ed25519.PublicKey
		want        error
		wantSigner  ed25519.PublicKey
		wantTrusted []ed25519.PublicKey
	}{
		{"endorsed by the trusted old key", sign(k.newChannel, []byte{3, 1}, relay.Endorse(k.channel, newPub)), []ed25519.PublicKey{oldPub}, nil, newPub, []ed25519.PublicKey{oldPub, newPub}},
		{"announcement only", sign(k.newChannel, nil, relay.Endorse(k.channel, newPub)), []ed25519.PublicKey{oldPub}, nil, newPub, []ed25519.PublicKey{oldPub, newPub}},
		{"an unknown endorser before the trusted one", sign(k.newChannel, []byte{3, 1}, relay.Endorse(k.other, newPub), relay.Endorse(k.channel, newPub)), []ed25519.PublicKey{oldPub}, nil, newPub, []ed25519.PublicKey{oldPub, newPub}},
		{"new key already trusted", sign(k.newChannel, []byte{3, 1}, relay.Endorse(k.channel, newPub)), []ed25519.PublicKey{oldPub, newPub}, nil, newPub, []ed25519.PublicKey{oldPub, newPub}},
		{"old key retired: no endorsement any more", sign(k.newChannel, []byte{3, 1}), []ed25519.PublicKey{oldPub, newPub}, nil, newPub, []ed25519.PublicKey{newPub}},
		{"an instance still on the old key", sign(k.channel, []byte{3, 1}), []ed25519.PublicKey{oldPub, newPub}, nil, oldPub, []ed25519.PublicKey{oldPub, newPub}},
		{"forged endorsement", sign(k.newChannel, []byte{3, 1}, forged), []ed25519.PublicKey{oldPub}, relay.ErrEndorsement, nil, nil},
		{"endorsement of another key", sign(k.newChannel, []byte{3, 1}, ofOther), []ed25519.PublicKey{oldPub}, relay.ErrEndorsement, nil, nil},
		{"endorsement under another domain", sign(k.newChannel, []byte{3, 1}, wrongDomain), []ed25519.PublicKey{oldPub}, relay.ErrEndorsement, nil, nil},
		{"endorsement by an unknown key", sign(k.newChannel, []byte{3, 1}, relay.Endorse(k.other, newPub)), []ed25519.PublicKey{oldPub}, relay.ErrUntrusted, nil, nil},
		{"new key, no endorsement", sign(k.newChannel, []byte{3, 1}), []ed25519.PublicKey{oldPub}, relay.ErrSignature, nil, nil},
		{"retired key after learning the new one", sign(k.channel, []byte{3, 1}), []ed25519.PublicKey{newPub}, relay.ErrSignature, nil, nil},
		{"no packet and no endorsement", mustSeal(t, k.channel, relay.Downlink{ConnectorID: "ccon-1", Expires: exp}), []ed25519.PublicKey{oldPub}, relay.ErrMalformed, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := relay.OpenDownlink(tc.data, tc.trusted, "ccon-1", t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenDownlink = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(d.Signer, tc.wantSigner) {
				t.Fatalf("signer %x, want %x", d.Signer, tc.wantSigner)
			}
			got, _ := relay.UpdateTrust(tc.trusted, d)
			if !equalKeys(got, tc.wantTrusted) {
				t.Fatalf("trust after: %x, want %x", got, tc.wantTrusted)
			}
		})
	}
}

// mustSeal signs d as it is, past SignDownlink's checks, the way a buggy
// or hostile signer could: the wire format by hand.
func mustSeal(t *testing.T, key ed25519.PrivateKey, d relay.Downlink) []byte {
	t.Helper()
	if _, err := relay.SignDownlink(key, d); !errors.Is(err, relay.ErrMalformed) {
		t.Fatalf("SignDownlink(%+v) = %v, want ErrMalformed", d, err)
	}
	em, _ := cbor.CoreDetEncOptions().EncMode()
	body, err := em.Marshal(map[int]any{1: d.ConnectorID, 2: d.Expires.Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(key, append(append([]byte("sealedsense relay v1"), byte(relay.KindDownlink)), body...))
	env, err := em.Marshal(map[int]any{1: int(relay.KindDownlink), 2: body, 3: sig})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func equalKeys(a, b []ed25519.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestDownlinkEndorsementLimits(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	newPub := pubOf(k.newChannel)
	var many []relay.Endorsement
	for range relay.MaxEndorsements + 1 {
		many = append(many, relay.Endorse(k.channel, newPub))
	}
	short := relay.Endorse(k.channel, newPub)
	short.Sig = short.Sig[:10]
	for name, d := range map[string]relay.Downlink{
		"too many endorsements": {ConnectorID: "ccon-1", Expires: t0, Packet: []byte{3}, Endorsements: many},
		"short endorsement":     {ConnectorID: "ccon-1", Expires: t0, Packet: []byte{3}, Endorsements: []relay.Endorsement{short}},
	} {
		if _, err := relay.SignDownlink(k.newChannel, d); !errors.Is(err, relay.ErrMalformed) {
			t.Errorf("%s: SignDownlink = %v, want ErrMalformed", name, err)
		}
	}
}

// TestRetiredConnectorKey: an envelope under a connector key past its
// grace period is refused with its own reason, which is still a bad
// signature.
func TestRetiredConnectorKey(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	env, _ := relay.SignUplink(k.other, uplink())
	lookup := func(valid, retired ed25519.PrivateKey) relay.KeyLookup {
		return func(context.Context, string) (relay.ConnectorKeys, error) {
			ks := relay.ConnectorKeys{Valid: []ed25519.PublicKey{pubOf(valid)}}
			if retired != nil {
				ks.Retired = []ed25519.PublicKey{pubOf(retired)}
			}
			return ks, nil
		}
	}
	tests := []struct {
		name   string
		lookup relay.KeyLookup
		want   error
	}{
		{"previous key within grace", func(context.Context, string) (relay.ConnectorKeys, error) {
			return relay.ConnectorKeys{Valid: []ed25519.PublicKey{pubOf(k.conn), pubOf(k.other)}}, nil
		}, nil},
		{"previous key after grace", lookup(k.conn, k.other), relay.ErrRetiredKey},
		{"never its key", lookup(k.conn, k.channel), relay.ErrSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := relay.OpenUplink(context.Background(), env, tc.lookup); !errors.Is(err, tc.want) {
				t.Fatalf("OpenUplink = %v, want %v", err, tc.want)
			}
		})
	}
	if !errors.Is(relay.ErrRetiredKey, relay.ErrSignature) {
		t.Fatal("ErrRetiredKey must be a bad signature, so every caller refuses it")
	}
}
