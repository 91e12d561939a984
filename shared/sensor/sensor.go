// Package sensor is the sensor side of the radio protocol, as a library for
// the simulator: it runs the handshake, seals readings, keeps every reading
// until the cloud acknowledges it (resending it as backfill meanwhile),
// applies the cloud's replies, and fetches and installs signed software
// releases (update.go).
package sensor

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/radio"
)

// Config tunes a Sensor. Zero values take the defaults.
type Config struct {
	// MaxBacklog bounds the unacknowledged readings kept (default 512);
	// past it the oldest is dropped and counted, as flash on a sensor is
	// finite.
	MaxBacklog int
	// MaxPerPacket bounds the readings in one packet (default Batch, at
	// least 16; never more than payload.MaxReadings).
	MaxPerPacket int
	// Batch holds new readings back until this many are waiting (default
	// 1: send each at once). Radio time is what drains a battery, so real
	// sensors batch; resends of overdue readings never wait. A batch size
	// in the device configuration replaces it.
	Batch int
	// ResendAfter is how long a sent reading waits for its ACK before it
	// goes out again as backfill (default 10s), at least: once ACKs have
	// been timed, the wait follows their smoothed time (rtt.go).
	ResendAfter time.Duration
	// HandshakeTimeout is how long to wait for a handshake response before
	// starting over with a fresh timestamp (default 5s).
	HandshakeTimeout time.Duration
	// RekeyBefore starts a new handshake this long before the session's age
	// limit, so that the old session is never used past it (default 1m).
	RekeyBefore time.Duration
	// SilentAfter starts a new handshake when the cloud has answered
	// nothing in the session for this long while packets went out
	// (default 2m). A session the cloud no longer opens (lost, restored
	// from an older backup, or sealed under an older binding) is then
	// replaced within minutes rather than at the session's age limit.
	SilentAfter time.Duration
	// KeyRetryAfter is how long a sensor whose handshakes under a newer
	// cloud key went unanswered for SilentAfter waits, on its old key,
	// before it tries the new one again (default 30m).
	KeyRetryAfter time.Duration
	// PullInterval spaces the pulls a sensor fetching a release sends
	// when it has no reading to send (default DefaultPullInterval): at
	// most one per interval, so a fleet that updates never floods the
	// cloud.
	PullInterval time.Duration
	Limits       radio.Limits
	Random       io.Reader // nil means crypto/rand
}

// DefaultPullInterval is a fetching sensor's pace: one chunk asked for
// every 2 s at most.
const DefaultPullInterval = 2 * time.Second

// ErrNoSession means there is nothing to seal with yet: the handshake is
// still under way.
var ErrNoSession = errors.New("sensor: no session yet")

// Stats are a sensor's counters.
type Stats struct {
	Handshakes, Sent, Acked, Dropped, Resent uint64
	// Pulls counts the packets, among Sent, that asked for an update's
	// next chunk and carried no reading.
	Pulls uint64
	// Recorded is the number of readings taken; unless SkipSequence moved
	// the numbering, their Seqs are firstSeq .. firstSeq+Recorded-1.
	Recorded uint64
	Backlog  int
}

type pending struct {
	reading  payload.Reading
	sent     bool
	lastSent time.Time
	attempts int
}

// maxBackoff caps the exponential backoff of handshake retries and resends,
// which keeps a fleet from hammering a cloud that is slow to answer.
const maxBackoff = 2 * time.Minute

func backoff(base time.Duration, attempts int) time.Duration {
	d := base
	for i := 1; i < attempts && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// Sensor is one sensor's protocol state. It is safe for concurrent use: the
// simulator's send loop and radio receive loop share it.
type Sensor struct {
	cfg   Config
	creds credentials.Sensor
	// Static is the sensor's own key pair.
	static radio.KeyPair
	psk    [32]byte

	mu sync.Mutex
	// cloud is the cloud's static public key in use; hsKey the one the
	// handshake under way, hs, was started under; trial a newer one the
	// cloud offered.
	cloud      [32]byte
	hsKey      [32]byte
	trial      keyTrial
	nextSeq    uint64
	nextIndex  uint32
	hs         *radio.InitiatorHandshake
	hsStarted  time.Time
	hsAttempts int
	session    *radio.Session
	backlog    []pending            // ordered by Seq
	inflight   map[uint64][]uint64  // radio counter -> seqs it carried
	sentAt     map[uint64]time.Time // radio counter -> when it was sent
	latencies  []time.Duration      // send-to-ACK, since the last AckLatencies
	rtt        rttEstimate          // send-to-ACK, smoothed: how long to wait for an ACK
	// backfillCtr is the counter of the backfill-only packet awaiting its
	// ACK, sent at backfillAt (0: none). Only one is ever out at a time.
	backfillCtr uint64
	backfillAt  time.Time
	config      payload.Config
	run         running
	maxSet      bool     // Config.MaxPerPacket was given
	heard       []uint64 // reply counters received since the last uplink
	stats       Stats
	lastHsStamp time.Time
	// heardAt is when the cloud last answered in this session (or the
	// session began); unanswered counts the packets sent since.
	heardAt    time.Time
	unanswered int
	upd        updater
}

// New returns a Sensor for the credentials provisioning wrote. firstSeq is
// where reading numbers start; a real sensor keeps it in flash across
// reboots, so that a reading's identity never repeats. One that cannot
// boots with a new epoch instead (credentials.BootSensor): its uplinks
// carry creds.BootEpoch, and sequence numbers need only be unique within
// an epoch.
//
// A sensor whose credentials hold a configuration (saved from
// Configuration) runs it, and reports its version, from the start. It runs
// creds.SoftwareVersion and installs releases signed by creds.ReleaseKeys
// for creds.DeviceType.
func New(creds credentials.Sensor, firstSeq uint64, cfg Config) (*Sensor, error) {
	if len(creds.StaticPrivate) != 32 || len(creds.StaticPublic) != 32 || len(creds.PSK) != 32 || len(creds.CloudPublic) != 32 {
		return nil, errors.New("sensor: credentials must hold 32-byte keys")
	}
	run, err := restore(creds)
	if err != nil {
		return nil, err
	}
	trusted, err := credentials.TrustedReleaseKeys(creds.ReleaseKeys)
	if err != nil {
		return nil, fmt.Errorf("sensor %s: %w", creds.DeviceID, err)
	}
	maxSet := cfg.MaxPerPacket > 0
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = 512
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1
	}
	if cfg.MaxPerPacket <= 0 {
		cfg.MaxPerPacket = max(16, cfg.Batch)
	}
	cfg.MaxPerPacket = min(cfg.MaxPerPacket, payload.MaxReadings)
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 10 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.RekeyBefore <= 0 {
		cfg.RekeyBefore = time.Minute
	}
	if cfg.SilentAfter <= 0 {
		cfg.SilentAfter = 2 * time.Minute
	}
	if cfg.KeyRetryAfter <= 0 {
		cfg.KeyRetryAfter = 30 * time.Minute
	}
	if cfg.PullInterval <= 0 {
		cfg.PullInterval = DefaultPullInterval
	}
	if cfg.Limits == (radio.Limits{}) {
		cfg.Limits = radio.DefaultLimits()
	}
	s := &Sensor{
		cfg: cfg, creds: creds, nextSeq: firstSeq,
		psk: [32]byte(creds.PSK), cloud: [32]byte(creds.CloudPublic),
		inflight: make(map[uint64][]uint64), sentAt: make(map[uint64]time.Time),
		run: run, maxSet: maxSet,
		upd: newUpdater(trusted, creds.DeviceType, creds.SoftwareVersion),
	}
	s.config.ReportInterval = run.settings.ReportInterval
	copy(s.static.Private[:], creds.StaticPrivate)
	copy(s.static.Public[:], creds.StaticPublic)
	return s, nil
}

// DeviceID is the sensor's id.
func (s *Sensor) DeviceID() string { return s.creds.DeviceID }

// Record keeps a new reading for sending and returns the sequence number
// that identifies it. When the backlog is full the oldest reading is
// dropped.
func (s *Sensor) Record(r payload.Reading) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Seq = s.nextSeq
	s.nextSeq++
	s.stats.Recorded++
	r.Backfilled = false
	if len(s.backlog) >= s.cfg.MaxBacklog {
		s.backlog = s.backlog[1:]
		s.stats.Dropped++
	}
	s.backlog = append(s.backlog, pending{reading: r})
	return r.Seq
}

// CloudPublic is the cloud's static public key the sensor uses: the one
// it was made with, or a newer one the cloud offered once a handshake
// under it worked. A real sensor keeps it in flash.
func (s *Sensor) CloudPublic() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.cloud[:])
}

// Config is the configuration the cloud last sent.
func (s *Sensor) Config() payload.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}

// AckLatencies returns the send-to-ACK times measured since the last call.
func (s *Sensor) AckLatencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.latencies
	s.latencies = nil
	return out
}

// Stats returns the counters.
func (s *Sensor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Backlog = len(s.backlog)
	return st
}

// NextSeq is the number the next reading gets: where a sensor rebooted
// without a new epoch goes on.
func (s *Sensor) NextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq
}

// SkipSequence moves the number of the next reading by delta, for fault
// injection: ahead leaves a gap, back repeats numbers already used without
// a new boot epoch, as a corrupted counter or a cloned device would; a
// sound sensor never does either. Readings already taken keep their
// numbers. The next number never falls below 1.
func (s *Sensor) SkipSequence(delta int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case delta >= 0:
		s.nextSeq += uint64(delta)
	case uint64(-delta) >= s.nextSeq:
		s.nextSeq = 1
	default:
		s.nextSeq -= uint64(-delta)
	}
}

// Initiate starts a new handshake now, whatever the state of the session,
// and returns its initiation: a valid one, with a timestamp newer than
// any this sensor sent before. It is for fault injection, the handshakes a
// device cloned from this one's keys sends; Next starts handshakes on its
// own when they are due.
func (s *Sensor) Initiate(now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initiate(now)
}

// Next returns the packet to transmit now, or nil when there is nothing to
// send. Without a usable session it returns a handshake initiation (once per
// HandshakeTimeout); with one, a transport packet carrying new readings
// first, then readings whose ACK is overdue, marked as backfill, and when
// there are none and a release is being fetched, or an update's outcome
// is still untold in this session, a pull. While a
// newer cloud key is on trial, its handshakes go out between the packets
// of the session under the old key, which carries the readings meanwhile.
func (s *Sensor) Next(now time.Time) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.trial.giveUp(now, s.cfg.SilentAfter, s.cfg.KeyRetryAfter) && s.hs != nil && s.hsKey != s.cloud {
		// Back to the old key: the next handshake, when one is due, is
		// under it, with the retries of a new one.
		s.hs, s.hsAttempts = nil, 0
	}
	need := s.needsHandshake(now)
	if need || s.trial.due(now) {
		waiting := s.hs != nil && now.Sub(s.hsStarted) < backoff(s.cfg.HandshakeTimeout, s.hsAttempts)
		if !waiting {
			return s.initiate(now)
		}
		if need {
			return nil, nil
		}
	}
	return s.seal(now)
}

func (s *Sensor) needsHandshake(now time.Time) bool {
	if s.session == nil {
		return true
	}
	age := now.Sub(s.session.Created)
	return s.session.Expired(now) || age >= s.cfg.Limits.MaxAge-s.cfg.RekeyBefore ||
		s.session.SendCounter+16 >= s.cfg.Limits.MaxPackets || s.silent(now)
}

// minUnanswered is how many packets must go unanswered before silence
// counts: a cloud that is only slow still answers some of them.
const minUnanswered = 3

// silent reports whether the cloud stopped answering in this session.
func (s *Sensor) silent(now time.Time) bool {
	return s.unanswered >= minUnanswered && now.Sub(s.heardAt) >= s.cfg.SilentAfter
}

func (s *Sensor) initiate(now time.Time) ([]byte, error) {
	// A timestamp must be strictly newer than the last one the cloud
	// accepted; two handshakes within a clock tick would otherwise collide.
	stamp := now
	if !stamp.After(s.lastHsStamp) {
		stamp = s.lastHsStamp.Add(time.Microsecond)
	}
	// Random indexes, as in WireGuard: on a broadcast radio a counter
	// starting at 1 in every sensor would collide everywhere.
	var idx [4]byte
	random := s.cfg.Random
	if random == nil {
		random = rand.Reader
	}
	if _, err := io.ReadFull(random, idx[:]); err != nil {
		return nil, fmt.Errorf("sensor %s: %w", s.creds.DeviceID, err)
	}
	s.nextIndex = binary.LittleEndian.Uint32(idx[:])
	key := s.cloud
	if s.trial.due(now) {
		if s.trial.start(now) {
			s.hsAttempts = 0
		}
		key = s.trial.key
	}
	hs, pkt, err := radio.Initiate(radio.InitiatorConfig{
		Static:      s.static,
		PSK:         s.psk,
		CloudPublic: key,
		SenderIndex: s.nextIndex,
		Now:         stamp,
		Random:      s.cfg.Random,
	})
	if err != nil {
		return nil, fmt.Errorf("sensor %s: handshake: %w", s.creds.DeviceID, err)
	}
	s.hs, s.hsKey, s.hsStarted, s.lastHsStamp = hs, key, now, stamp
	s.hsAttempts++
	s.stats.Handshakes++
	return pkt, nil
}

// budget is the plaintext a transport packet can carry.
const budget = radio.MaxPacketSize - radio.TransportOverhead

func (s *Sensor) seal(now time.Time) ([]byte, error) {
	picked, backfillOnly := s.pick(now)
	if len(picked) == 0 {
		if s.upd.pullDue(now, s.cfg.PullInterval) {
			return s.pull(now)
		}
		return nil, nil
	}
	report := s.upd.pending()
	body, picked, err := s.fill(picked, report)
	if err != nil {
		return nil, err
	}
	pkt, counter, err := s.session.Seal(nil, body, now)
	if err != nil {
		return nil, fmt.Errorf("sensor %s: %w", s.creds.DeviceID, err)
	}
	if report != nil {
		s.upd.carried(counter)
	}
	s.record(picked, counter, backfillOnly, now)
	return pkt, nil
}

// pull seals an uplink with no reading that asks for the next chunk of
// the release being fetched.
func (s *Sensor) pull(now time.Time) ([]byte, error) {
	report := s.upd.report()
	body, err := payload.Uplink{Replies: s.heard, Epoch: s.creds.BootEpoch, Config: s.run.report, Update: &report}.Marshal()
	if err != nil {
		return nil, fmt.Errorf("sensor %s: pull: %w", s.creds.DeviceID, err)
	}
	pkt, counter, err := s.session.Seal(nil, body, now)
	if err != nil {
		return nil, fmt.Errorf("sensor %s: %w", s.creds.DeviceID, err)
	}
	s.upd.pulled(counter, now)
	s.heard = nil
	s.unanswered++
	s.stats.Sent++
	s.stats.Pulls++
	return pkt, nil
}

// pick chooses the backlog entries the next packet carries: new readings
// first, so that live data is never stuck behind backfill, then readings
// due for a resend. backfillOnly says the packet carries no new reading.
func (s *Sensor) pick(now time.Time) (picked []int, backfillOnly bool) {
	perPacket := s.perPacket()
	for i := len(s.backlog) - 1; i >= 0 && len(picked) < perPacket; i-- {
		if !s.backlog[i].sent {
			picked = append(picked, i)
		}
	}
	if len(picked) < min(s.batch(), perPacket) {
		picked = picked[:0]
	}
	backfillOnly = len(picked) == 0
	resendAfter := s.rtt.timeout(s.cfg.ResendAfter)
	if backfillOnly && s.backfillCtr != 0 && now.Sub(s.backfillAt) < resendAfter {
		// Backfill is clocked by ACKs: while one backfill packet is
		// unanswered, no other goes out. A cloud that falls behind then
		// gets at most one extra packet per sensor per round trip,
		// instead of a resend of every overdue reading on every transmit
		// opportunity, which would bury it deeper (congestion collapse).
		return nil, true
	}
	for i := range s.backlog {
		if len(picked) >= perPacket {
			break
		}
		p := s.backlog[i]
		if p.sent && now.Sub(p.lastSent) >= backoff(resendAfter, p.attempts) {
			picked = append(picked, i)
		}
	}
	return picked, backfillOnly
}

// fill encodes as many of the picked readings as fit a packet's budget,
// and returns the payload and the picked entries it holds.
func (s *Sensor) fill(picked []int, report *payload.UpdateReport) ([]byte, []int, error) {
	// Telling the cloud which replies arrived lets it learn which
	// connectors reach this sensor.
	// The configuration report rides on every packet, so the cloud
	// learns of a change within the next one, whichever reply is lost.
	up := payload.Uplink{Replies: s.heard, Epoch: s.creds.BootEpoch, Config: s.run.report, Update: report}
	var body []byte
	for _, i := range picked {
		r := s.backlog[i].reading
		r.Backfilled = s.backlog[i].sent
		up.Readings = append(up.Readings, r)
		b, err := up.Marshal()
		if err != nil {
			return nil, nil, fmt.Errorf("sensor %s: %w", s.creds.DeviceID, err)
		}
		if len(b) > budget {
			up.Readings = up.Readings[:len(up.Readings)-1]
			picked = picked[:len(up.Readings)]
			break
		}
		body = b
	}
	if len(up.Readings) == 0 {
		return nil, nil, fmt.Errorf("sensor %s: a single reading does not fit a packet", s.creds.DeviceID)
	}
	return body, picked, nil
}

// record marks the picked readings sent under counter.
func (s *Sensor) record(picked []int, counter uint64, backfillOnly bool, now time.Time) {
	seqs := make([]uint64, 0, len(picked))
	for _, i := range picked {
		if s.backlog[i].sent {
			s.stats.Resent++
		}
		s.backlog[i].sent = true
		s.backlog[i].lastSent = now
		s.backlog[i].attempts++
		seqs = append(seqs, s.backlog[i].reading.Seq)
	}
	s.inflight[counter] = seqs
	s.sentAt[counter] = now
	if backfillOnly {
		s.backfillCtr, s.backfillAt = counter, now
	}
	s.heard = nil
	s.unanswered++
	// ACKs that never come would grow the map without end; a counter this
	// far behind carries readings that were resent under newer counters.
	if len(s.inflight) > 4*s.cfg.MaxBacklog {
		for c := range s.inflight {
			if c+uint64(4*s.cfg.MaxBacklog) < counter {
				delete(s.inflight, c)
				delete(s.sentAt, c)
			}
		}
	}
	s.stats.Sent++
}

// Receive handles a packet heard on the air and reports whether it was for
// this sensor. Packets for other sensors are ignored (the radio is
// broadcast); it returns radio's errors for packets addressed to this
// sensor that fail to open.
func (s *Sensor) Receive(pkt []byte, now time.Time) (mine bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ, err := radio.Type(pkt)
	if err != nil {
		return false, err
	}
	switch typ {
	case radio.TypeResponse:
		r, err := radio.ParseResponse(pkt)
		if err != nil {
			return false, err
		}
		if s.hs == nil || r.ReceiverIndex != s.nextIndex {
			return false, nil
		}
		sess, err := s.hs.Finish(pkt, now)
		if err != nil {
			return true, fmt.Errorf("sensor %s: %w", s.creds.DeviceID, err)
		}
		sess.Limits = s.cfg.Limits
		s.session, s.hs, s.hsAttempts = sess, nil, 0
		if s.hsKey != s.cloud {
			// The cloud answered under the offered key: adopt it.
			s.cloud = s.hsKey
			s.trial.adopted(s.cloud)
		}
		s.heardAt, s.unanswered = now, 0
		s.upd.newSession()
		// Counters restart with the session, so in-flight ACK bookkeeping
		// of the old one can no longer match; its readings are resent.
		clear(s.inflight)
		clear(s.sentAt)
		s.backfillCtr = 0
		for i := range s.backlog {
			s.backlog[i].lastSent, s.backlog[i].attempts = time.Time{}, 0
		}
		return true, nil
	case radio.TypeTransport:
		t, err := radio.ParseTransport(pkt)
		if err != nil {
			return false, err
		}
		if s.session == nil || t.ReceiverIndex != s.session.LocalIndex {
			return false, nil
		}
		pt, replyCtr, err := s.session.Open(nil, pkt, now)
		if err != nil {
			return true, fmt.Errorf("sensor %s: %w", s.creds.DeviceID, err)
		}
		reply, err := payload.DecodeReply(pt)
		if err != nil {
			return true, fmt.Errorf("sensor %s: reply: %w", s.creds.DeviceID, err)
		}
		restart := s.apply(reply, now)
		s.heardAt, s.unanswered = now, 0
		if restart {
			s.restart()
			return true, nil
		}
		if len(s.heard) < payload.MaxReplies {
			s.heard = append(s.heard, replyCtr)
		}
		return true, nil
	default:
		return false, nil
	}
}

// apply handles a reply, and reports whether the sensor booted a new image
// and so restarts.
func (s *Sensor) apply(r payload.Reply, now time.Time) (restart bool) {
	acked := make(map[uint64]bool)
	for _, c := range r.Acks {
		s.upd.acked(c)
		if c == s.backfillCtr {
			s.backfillCtr = 0
		}
		for _, seq := range s.inflight[c] {
			acked[seq] = true
		}
		if at, ok := s.sentAt[c]; ok {
			s.rtt.add(now.Sub(at))
			if len(s.latencies) < 100000 {
				s.latencies = append(s.latencies, now.Sub(at))
			}
		}
		delete(s.inflight, c)
		delete(s.sentAt, c)
	}
	if len(acked) > 0 {
		kept := s.backlog[:0]
		for _, p := range s.backlog {
			if acked[p.reading.Seq] {
				s.stats.Acked++
				continue
			}
			kept = append(kept, p)
		}
		clear(s.backlog[len(kept):])
		s.backlog = kept
	}
	if c := r.Config; c != nil {
		// Zero fields are unchanged. A versioned configuration is
		// checked against the sensor's ranges first; a report interval
		// without a version is what clouds before versions send.
		if c.Version != 0 {
			s.run = decide(s.creds.DeviceType, s.run, *c)
			if s.run.settings.ReportInterval != 0 {
				s.config.ReportInterval = s.run.settings.ReportInterval
			}
		} else if c.ReportInterval != 0 {
			s.config.ReportInterval = c.ReportInterval
		}
		if len(c.CloudKey) == payload.CloudKeySize {
			s.trial.offer([32]byte(c.CloudKey), s.cloud, now)
		}
	}
	if r.Update != nil {
		return s.upd.offer(*r.Update)
	}
	return false
}

// restart is the reboot into a newly installed image (or back out of one
// that failed to boot). What flash keeps survives, as a real update keeps
// it: keys, the cloud key in use, reading numbers, the boot epoch and the
// backlog, which goes out again in the new session. What RAM held goes:
// the session, so a new handshake starts at once.
func (s *Sensor) restart() {
	s.session, s.hs, s.hsAttempts = nil, nil, 0
	s.heard = nil
	clear(s.inflight)
	clear(s.sentAt)
	s.backfillCtr = 0
	for i := range s.backlog {
		s.backlog[i].lastSent, s.backlog[i].attempts = time.Time{}, 0
	}
}
