package connector

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// TestLinkChoice: the connector publishes over the first link that works,
// Ethernet first; a link goes down on a failure of a publish started
// while it was up, and comes back only on a probe.
func TestLinkChoice(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	type step struct {
		op       string // "fail" or "probe"
		link     string
		at       time.Time // when the publish started, or the probe got through
		want     string    // the active link after, "" for none
		switched bool
	}
	eth, cell := relay.ConnectionEthernet, relay.ConnectionCellular
	tests := []struct {
		name  string
		steps []step
	}{
		{"ethernet fails, cellular takes over, ethernet comes back", []step{
			{"fail", eth, t0.Add(time.Second), cell, true},
			{"probe", eth, t0.Add(5 * time.Second), eth, true},
		}},
		{"a second failure of a link already down changes nothing", []step{
			{"fail", eth, t0.Add(time.Second), cell, true},
			{"fail", eth, t0.Add(2 * time.Second), cell, false},
		}},
		{"a publish started before the link came back is stale", []step{
			{"fail", eth, t0.Add(time.Second), cell, true},
			{"probe", eth, t0.Add(5 * time.Second), eth, true},
			{"fail", eth, t0.Add(4 * time.Second), eth, false},
		}},
		{"cellular failing while on ethernet does not switch", []step{
			{"fail", cell, t0.Add(time.Second), eth, false},
			{"probe", cell, t0.Add(2 * time.Second), eth, false},
		}},
		{"both down, then cellular first", []step{
			{"fail", eth, t0.Add(time.Second), cell, true},
			{"fail", cell, t0.Add(2 * time.Second), "", true},
			{"probe", cell, t0.Add(3 * time.Second), cell, true},
			{"probe", eth, t0.Add(4 * time.Second), eth, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLinks(&Link{}, &Link{}, t0)
			byName := map[string]*backhaul{eth: l.all[0], cell: l.all[1]}
			for i, s := range tc.steps {
				_, before := l.active()
				var sw switchover
				if s.op == "fail" {
					_, sw = l.failed(byName[s.link], s.at)
				} else {
					_, sw = l.restored(byName[s.link], s.at)
				}
				active, _ := l.active()
				got := ""
				if active != nil {
					got = active.name
				}
				if got != s.want || (sw.from != sw.to) != s.switched {
					t.Fatalf("step %d (%s %s): active %q, switchover %+v, want %q (switched %v)", i, s.op, s.link, got, sw, s.want, s.switched)
				}
				select {
				case <-before:
				default:
					if sw != (switchover{}) {
						t.Fatalf("step %d: a change did not wake the waiters", i)
					}
				}
			}
		})
	}
}

// TestLinkReport: a status says which links are up, the Ethernet MAC,
// the cellular signal, and why a link is not up; it passes the relay's
// own check.
func TestLinkReport(t *testing.T) {
	t.Parallel()
	l := newLinks(&Link{}, &Link{}, time.Unix(0, 0))
	mac := ethernetMAC("ccon-1")
	r := l.report(l.all[0], mac, 55)
	if r.connection != relay.ConnectionEthernet || len(r.available) != 2 || !r.ethernet.Up || r.ethernet.MACAddress != mac || r.cellular.SignalStrength != 55 || r.ethernet.Errors != nil {
		t.Fatalf("both up: %+v eth %+v cell %+v", r, r.ethernet, r.cellular)
	}
	l.failed(l.all[0], time.Unix(1, 0))
	r = l.report(l.all[0], mac, 55) // a probe over the failed link
	if r.connection != relay.ConnectionCellular || !slices.Equal(r.available, []string{relay.ConnectionCellular}) ||
		r.ethernet.Up || !slices.Equal(r.ethernet.Errors, []string{relay.LinkUnreached}) {
		t.Fatalf("ethernet down: %+v eth %+v", r, r.ethernet)
	}
	l.failed(l.all[1], time.Unix(2, 0))
	if r = l.report(l.all[1], mac, 55); r.connection != relay.ConnectionCellular || len(r.available) != 0 {
		t.Fatalf("both down, probing cellular: %+v", r)
	}
}

func TestEthernetMAC(t *testing.T) {
	t.Parallel()
	a, b := ethernetMAC("ccon-1"), ethernetMAC("ccon-2")
	if a != ethernetMAC("ccon-1") || a == b {
		t.Fatalf("MACs %s %s: want stable per id and distinct", a, b)
	}
	hw, err := net.ParseMAC(a)
	if err != nil || len(hw) != 6 || hw[0] != 0x02 {
		t.Fatalf("MAC %s (%v): want a locally administered unicast address", a, err)
	}
}

func TestNewChecksLinks(t *testing.T) {
	t.Parallel()
	radio, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer radio.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	pub, _, _ := ed25519.GenerateKey(nil)
	full := &Link{Uplinks: nopPubSub{}, Status: nopPubSub{}, Downlinks: nopPubSub{}}
	tests := []struct {
		name               string
		ethernet, cellular *Link
		signal             int
		refused            bool
	}{
		{"both links", full, full, 70, false},
		{"Ethernet only", full, nil, 0, false},
		{"cellular only", nil, full, 40, false},
		{"no link", nil, nil, 0, true},
		{"a link without its downlinks", full, &Link{Uplinks: nopPubSub{}, Status: nopPubSub{}}, 0, true},
		{"signal above 100", full, full, 101, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{ID: "c", Key: key, ChannelKeys: []ed25519.PublicKey{pub}, Radio: radio, Medium: radio.LocalAddr(),
				Ethernet: tc.ethernet, Cellular: tc.cellular, SignalStrength: tc.signal})
			if (err != nil) != tc.refused {
				t.Fatalf("New: %v, want refused %v", err, tc.refused)
			}
		})
	}
}

// TestRefused: only a publish refused for the message itself is dropped;
// anything a link could explain goes back to the queue.
func TestRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"oversized", pubsub.ErrOversizedMessage, true},
		{"invalid argument", fmt.Errorf("publish: %w", status.Error(codes.InvalidArgument, "bad message")), true},
		{"unavailable", status.Error(codes.Unavailable, "connection reset"), false},
		{"timed out", context.DeadlineExceeded, false},
		{"not found", status.Error(codes.NotFound, "no topic"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refused(tc.err); got != tc.want {
				t.Fatalf("refused(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
