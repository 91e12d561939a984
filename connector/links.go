package connector

import (
	"crypto/sha256"
	"net"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/shared/relay"
)

// Link is one backhaul link to Pub/Sub: its own publishers and its own
// downlink subscription, over its own network path (on hardware, its own
// interface).
type Link struct {
	Uplinks   Publisher
	Status    Publisher
	Downlinks Receiver // this connector's own subscription to the downlinks topic
}

// backhaul is a configured link and what the connector knows of it.
type backhaul struct {
	*Link
	name string // relay.ConnectionEthernet or relay.ConnectionCellular

	// Guarded by links.mu.
	up      bool
	upSince time.Time // a failure of a publish started before this is stale
}

// links chooses the link to publish over: the first that works, in order
// of preference (Ethernet, then cellular). A link goes down when a publish
// over it fails or times out, and comes back only when a probe over it
// succeeds: a late success of a publish started before the failure says
// nothing about the link now.
type links struct {
	mu      sync.Mutex
	all     []*backhaul   // in order of preference; fixed at New
	current string        // the active link's name; "" when none is up
	changed chan struct{} // closed and replaced when a link goes down or up
}

// switchover is a change of the active link; to is "" when no link is up.
type switchover struct{ from, to string }

func newLinks(ethernet, cellular *Link, now time.Time) *links {
	l := &links{changed: make(chan struct{})}
	if ethernet != nil {
		l.all = append(l.all, &backhaul{Link: ethernet, name: relay.ConnectionEthernet, up: true, upSince: now})
	}
	if cellular != nil {
		l.all = append(l.all, &backhaul{Link: cellular, name: relay.ConnectionCellular, up: true, upSince: now})
	}
	l.current = l.all[0].name
	return l
}

// active returns the link to publish over (nil when none is up) and a
// channel closed at the next change.
func (l *links) active() (*backhaul, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.all {
		if b.up {
			return b, l.changed
		}
	}
	return nil, l.changed
}

// failed records that a publish over b, started at started, failed. It
// reports whether that took the link down, and how the active link
// changed.
func (l *links) failed(b *backhaul, started time.Time) (bool, switchover) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !b.up || started.Before(b.upSince) {
		return false, switchover{}
	}
	b.up = false
	return true, l.changedLocked()
}

// restored records that a probe over b succeeded. It reports whether the
// link came back up, and how the active link changed.
func (l *links) restored(b *backhaul, now time.Time) (bool, switchover) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.up {
		return false, switchover{}
	}
	b.up, b.upSince = true, now
	return true, l.changedLocked()
}

// changedLocked wakes whoever waits for a change and returns how the
// active link changed (from == to when it did not).
func (l *links) changedLocked() switchover {
	close(l.changed)
	l.changed = make(chan struct{})
	sw := switchover{from: l.current}
	l.current = ""
	for _, b := range l.all {
		if b.up {
			l.current = b.name
			break
		}
	}
	sw.to = l.current
	return sw
}

// down returns the links to probe.
func (l *links) down() []*backhaul {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*backhaul
	for _, b := range l.all {
		if !b.up {
			out = append(out, b)
		}
	}
	return out
}

// byPreference returns the links up first, then the others, each in order
// of preference: where a last message should be tried.
func (l *links) byPreference() []*backhaul {
	l.mu.Lock()
	defer l.mu.Unlock()
	var up, down []*backhaul
	for _, b := range l.all {
		if b.up {
			up = append(up, b)
		} else {
			down = append(down, b)
		}
	}
	return append(up, down...)
}

// linkReport is what a status says of the links.
type linkReport struct {
	connection         string // the active link
	available          []string
	ethernet, cellular *relay.Link
}

// report describes the links for a status sent over via: the connection
// is the active link, or via itself when no link is up.
func (l *links) report(via *backhaul, mac string, signal int) linkReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	var r linkReport
	for _, b := range l.all {
		link := &relay.Link{Up: b.up}
		if !b.up {
			// On hardware, a lost carrier or registration would be
			// relay.LinkDown; here all the connector sees is that
			// publishes over the link fail.
			link.Errors = []string{relay.LinkUnreached}
		}
		switch b.name {
		case relay.ConnectionEthernet:
			link.MACAddress, r.ethernet = mac, link
		case relay.ConnectionCellular:
			link.SignalStrength, r.cellular = signal, link
		}
		if b.up {
			r.available = append(r.available, b.name)
			if r.connection == "" {
				r.connection = b.name
			}
		}
	}
	if r.connection == "" && via != nil {
		r.connection = via.name
	}
	return r
}

// ethernetMAC is the MAC address the connector reports for its Ethernet
// link: stable per connector id, and locally administered (02:...) so it
// can never collide with a vendor's. On hardware it is the interface's.
func ethernetMAC(connectorID string) string {
	sum := sha256.Sum256([]byte("sealedsense connector mac\x00" + connectorID))
	mac := net.HardwareAddr{0x02, sum[0], sum[1], sum[2], sum[3], sum[4]}
	return mac.String()
}
