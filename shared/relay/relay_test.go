package relay_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/relay"
)

var errUnknown = errors.New("unknown connector")

type keys struct {
	conn, other, channel, newChannel ed25519.PrivateKey
}

func newKeys(t testing.TB) keys {
	t.Helper()
	gen := func(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }
	return keys{conn: gen(1), other: gen(2), channel: gen(3), newChannel: gen(4)}
}

func (k keys) lookup(_ context.Context, id string) (relay.ConnectorKeys, error) {
	if id == "ccon-1" {
		return relay.ConnectorKeys{Valid: []ed25519.PublicKey{k.conn.Public().(ed25519.PublicKey)}}, nil
	}
	return relay.ConnectorKeys{}, errUnknown
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)

func uplink() relay.Uplink {
	return relay.Uplink{ConnectorID: "ccon-1", Received: t0, RSSI: -71.5, SNR: 7.25, Packet: []byte{3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}}
}

func TestUplinkRoundTrip(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	env, err := relay.SignUplink(k.conn, uplink())
	if err != nil {
		t.Fatal(err)
	}
	got, err := relay.OpenUplink(context.Background(), env, k.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Received.Equal(t0) || got.RSSI != -71.5 || got.SNR != 7.25 || !bytes.Equal(got.Packet, uplink().Packet) || got.ConnectorID != "ccon-1" {
		t.Fatalf("round trip changed the uplink: %+v", got)
	}
}

func TestUplinkRejects(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	good, err := relay.SignUplink(k.conn, uplink())
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := relay.SignUplink(k.other, uplink())
	unknown := uplink()
	unknown.ConnectorID = "ccon-9"
	fromUnknown, _ := relay.SignUplink(k.other, unknown)
	status, _ := relay.SignStatus(k.conn, relay.Status{ConnectorID: "ccon-1", Time: t0, Connection: relay.ConnectionEthernet})
	extra, _ := cbor.Marshal(map[int]any{1: 1, 2: []byte{}, 3: make([]byte, 64), 4: "x"})

	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"forged signature", forged, relay.ErrSignature},
		{"unknown connector", fromUnknown, errUnknown},
		{"status presented as uplink", status, relay.ErrMalformed},
		{"garbage", []byte("not cbor at all"), relay.ErrMalformed},
		{"empty", nil, relay.ErrMalformed},
		{"truncated", good[:len(good)-3], relay.ErrMalformed},
		{"trailing bytes", append(bytes.Clone(good), 0), relay.ErrMalformed},
		{"oversized", make([]byte, relay.MaxEnvelope+1), relay.ErrMalformed},
		{"unknown field", extra, relay.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := relay.OpenUplink(context.Background(), tc.data, k.lookup); !errors.Is(err, tc.want) {
				t.Fatalf("OpenUplink = %v, want %v", err, tc.want)
			}
		})
	}
	// Every single-bit change is rejected: either the structure breaks or the
	// signature does.
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if _, err := relay.OpenUplink(context.Background(), b, k.lookup); err == nil {
			t.Fatalf("flipping bit %d was accepted", i)
		}
	}
	for _, bad := range []relay.Uplink{{ConnectorID: "", Packet: []byte{1}}, {ConnectorID: "c", Packet: nil}, {ConnectorID: "c", Packet: make([]byte, relay.MaxPacket+1)}} {
		if _, err := relay.SignUplink(k.conn, bad); !errors.Is(err, relay.ErrMalformed) {
			t.Errorf("SignUplink(%q, %d bytes) = %v, want ErrMalformed", bad.ConnectorID, len(bad.Packet), err)
		}
	}
}

func TestDownlink(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	chPub := k.channel.Public().(ed25519.PublicKey)
	d := relay.Downlink{ConnectorID: "ccon-1", Expires: t0.Add(5 * time.Second), Packet: []byte{3, 9, 9}}
	env, err := relay.SignDownlink(k.channel, d)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := relay.SignDownlink(k.conn, d)
	tests := []struct {
		name string
		data []byte
		self string
		now  time.Time
		want error
	}{
		{"addressed to me", env, "ccon-1", t0, nil},
		{"addressed to another", env, "ccon-2", t0, relay.ErrNotAddressed},
		{"expired", env, "ccon-1", t0.Add(5 * time.Second), relay.ErrStale},
		{"not signed by the cloud", forged, "ccon-1", t0, relay.ErrSignature},
		{"garbage", []byte{0xff, 0x00}, "ccon-1", t0, relay.ErrMalformed},
	}
	for _, tc := range tests {
		got, err := relay.OpenDownlink(tc.data, []ed25519.PublicKey{chPub}, tc.self, tc.now)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: OpenDownlink = %v, want %v", tc.name, err, tc.want)
		}
		if err == nil && !bytes.Equal(got.Packet, d.Packet) {
			t.Errorf("%s: packet changed", tc.name)
		}
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	st := relay.Status{ConnectorID: "ccon-1", Time: t0, Connection: relay.ConnectionCellular, Available: []string{"CELLULAR"}, SignalStrength: 80, Dropped: 3}
	env, err := relay.SignStatus(k.conn, st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := relay.OpenStatus(context.Background(), env, k.lookup)
	if err != nil || got.SignalStrength != 80 || got.Dropped != 3 || got.Connection != relay.ConnectionCellular {
		t.Fatalf("OpenStatus = %+v, %v", got, err)
	}
	bad := st
	bad.Connection = "WIFI"
	env, _ = relay.SignStatus(k.conn, bad)
	if _, err := relay.OpenStatus(context.Background(), env, k.lookup); !errors.Is(err, relay.ErrMalformed) {
		t.Fatalf("unknown connection type: %v", err)
	}
}

// TestStatusLinks: what a connector says of its links is checked before
// anything stores it.
func TestStatusLinks(t *testing.T) {
	t.Parallel()
	k := newKeys(t)
	good := relay.Status{
		ConnectorID: "ccon-1", Time: t0, Connection: relay.ConnectionCellular,
		Available: []string{relay.ConnectionCellular},
		Ethernet:  &relay.Link{MACAddress: "02:00:5e:10:00:01", Errors: []string{relay.LinkDown}},
		Cellular:  &relay.Link{Up: true, SignalStrength: 64},
	}
	tests := []struct {
		name   string
		change func(*relay.Status)
		ok     bool
	}{
		{"both links", func(*relay.Status) {}, true},
		{"offline with nothing available", func(s *relay.Status) { s.Connection, s.Available = relay.ConnectionOffline, nil }, true},
		{"no link facts (an older connector)", func(s *relay.Status) { s.Ethernet, s.Cellular = nil, nil }, true},
		{"connected over a link not available", func(s *relay.Status) { s.Connection = relay.ConnectionEthernet }, false},
		{"unknown link available", func(s *relay.Status) { s.Available = []string{"CELLULAR", "WIFI"} }, false},
		{"three links available", func(s *relay.Status) { s.Available = []string{"CELLULAR", "CELLULAR", "ETHERNET"} }, false},
		{"signal above 100", func(s *relay.Status) { s.Cellular = &relay.Link{Up: true, SignalStrength: 101} }, false},
		{"negative signal", func(s *relay.Status) { s.SignalStrength = -1 }, false},
		{"MAC address not a MAC", func(s *relay.Status) { s.Ethernet.MACAddress = "10.0.0.7" }, false},
		{"EUI-64, not Ethernet", func(s *relay.Status) { s.Ethernet.MACAddress = "02:00:5e:10:00:00:00:01" }, false},
		{"unknown error code", func(s *relay.Status) { s.Ethernet.Errors = []string{"<script>"} }, false},
		{"too many errors", func(s *relay.Status) {
			s.Ethernet.Errors = []string{relay.LinkDown, relay.LinkDown, relay.LinkDown, relay.LinkDown, relay.LinkDown}
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := good
			eth, cell := *good.Ethernet, *good.Cellular
			st.Ethernet, st.Cellular = &eth, &cell
			tc.change(&st)
			env, err := relay.SignStatus(k.conn, st)
			if err != nil {
				t.Fatal(err)
			}
			got, err := relay.OpenStatus(context.Background(), env, k.lookup)
			if tc.ok && err != nil {
				t.Fatalf("OpenStatus refused %+v: %v", st, err)
			}
			if !tc.ok && !errors.Is(err, relay.ErrMalformed) {
				t.Fatalf("OpenStatus(%+v) = %+v, %v; want ErrMalformed", st, got, err)
			}
		})
	}
}

func FuzzOpenUplink(f *testing.F) {
	k := newKeys(f)
	good, _ := relay.SignUplink(k.conn, uplink())
	st, _ := relay.SignStatus(k.conn, relay.Status{ConnectorID: "ccon-1", Time: t0, Connection: relay.ConnectionEthernet})
	f.Add(good)
	f.Add(st)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := relay.OpenUplink(context.Background(), data, k.lookup)
		// Ed25519 signatures are not malleable, so whatever verifies must
		// carry exactly the body that was signed (the outer CBOR may be
		// re-encoded, the content may not).
		if err == nil && (!bytes.Equal(u.Packet, uplink().Packet) || !u.Received.Equal(t0) || u.RSSI != uplink().RSSI) {
			t.Fatalf("accepted content that was never signed: %+v", u)
		}
	})
}

func FuzzOpenDownlink(f *testing.F) {
	k := newKeys(f)
	oldPub, newPub := k.channel.Public().(ed25519.PublicKey), k.newChannel.Public().(ed25519.PublicKey)
	good, _ := relay.SignDownlink(k.channel, relay.Downlink{ConnectorID: "ccon-1", Expires: t0.Add(time.Hour), Packet: []byte{3, 1}})
	endorsed, _ := relay.SignDownlink(k.newChannel, relay.Downlink{ConnectorID: "ccon-1", Expires: t0.Add(time.Hour), Packet: []byte{3, 1},
		Endorsements: []relay.Endorsement{relay.Endorse(k.channel, newPub)}})
	announce, _ := relay.SignDownlink(k.newChannel, relay.Downlink{ConnectorID: "ccon-1", Expires: t0.Add(time.Hour),
		Endorsements: []relay.Endorsement{relay.Endorse(k.other, newPub), relay.Endorse(k.channel, newPub)}})
	f.Add(good)
	f.Add(endorsed)
	f.Add(announce)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := relay.OpenDownlink(data, []ed25519.PublicKey{oldPub}, "ccon-1", t0)
		if err != nil {
			return
		}
		// Only the cloud's two keys sign, and only the old one is
		// trusted: whatever opens is a seed's content under one of them.
		if !bytes.Equal(d.Signer, oldPub) && !bytes.Equal(d.Signer, newPub) {
			t.Fatalf("accepted a downlink signed by %x", d.Signer)
		}
		if !bytes.Equal(d.Packet, []byte{3, 1}) && !d.Announcement() {
			t.Fatal("accepted a downlink that was never signed")
		}
		if next, _ := relay.UpdateTrust([]ed25519.PublicKey{oldPub}, d); len(next) == 0 || len(next) > 2 {
			t.Fatalf("trust became %d keys", len(next))
		}
	})
}

func FuzzOpenStatus(f *testing.F) {
	k := newKeys(f)
	good, _ := relay.SignStatus(k.conn, relay.Status{ConnectorID: "ccon-1", Time: t0, Connection: relay.ConnectionEthernet})
	f.Add(good)
	links, _ := relay.SignStatus(k.conn, relay.Status{ConnectorID: "ccon-1", Time: t0, Connection: relay.ConnectionEthernet,
		Available: []string{relay.ConnectionEthernet}, Ethernet: &relay.Link{Up: true, MACAddress: "02:00:5e:10:00:01"},
		Cellular: &relay.Link{SignalStrength: 40, Errors: []string{relay.LinkUnreached}}})
	f.Add(links)
	software, _ := relay.SignStatus(k.conn, relay.Status{ConnectorID: "ccon-1", Time: t0, Connection: relay.ConnectionEthernet,
		Software: &payload.UpdateReport{Version: 2, State: payload.UpdateFetching, Release: bytes.Repeat([]byte{9}, 16), Next: 3}})
	f.Add(software)
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := relay.OpenStatus(context.Background(), data, k.lookup)
		if err == nil && (st.Connection != relay.ConnectionEthernet || !st.Time.Equal(t0)) {
			t.Fatal("accepted a status that was never signed")
		}
	})
}

func BenchmarkOpenUplink(b *testing.B) {
	k := newKeys(b)
	env, _ := relay.SignUplink(k.conn, uplink())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := relay.OpenUplink(context.Background(), env, k.lookup); err != nil {
			b.Fatal(err)
		}
	}
}
