// Package simulator is the radio world of a local run: virtual sensors of
// several types at positions on a plane, and a radio medium that carries
// each packet over UDP to every connector in range with an RSSI derived from
// distance, plus noise, and each connector's transmissions back to the
// sensors in its range. Tests inject faults into one sensor at a time:
// move it, drain its battery, make its reading numbers jump, or clone it
// (inject.go).
package simulator

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealedsense/sealedsense/shared/air"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/payload"
	"github.com/sealedsense/sealedsense/shared/sensor"
)

// Radio model: log-distance path loss from -40 dBm at 1 m with exponent
// 2.7 (indoors with some walls), and a receiver sensitivity of -120 dBm.
const (
	txAt1m       = -40.0
	pathExponent = 2.7
	sensitivity  = -120.0
	noiseFloor   = -115.0
)

// RSSI is the signal a receiver at distance d metres hears.
func RSSI(d float64) float64 { return txAt1m - 10*pathExponent*math.Log10(math.Max(d, 1)) }

// Point is a position on the plane, in metres.
type Point struct{ X, Y float64 }

func (p Point) dist(q Point) float64 { return math.Hypot(p.X-q.X, p.Y-q.Y) }

// Connector is a connector's radio: where it is and where it listens.
type Connector struct {
	ID   string
	At   Point
	Addr *net.UDPAddr
}

// Sensor is a provisioned sensor placed on the plane.
type Sensor struct {
	Credentials credentials.Sensor
	At          Point
}

// Config describes the world.
type Config struct {
	Sensors    []Sensor
	Connectors []Connector
	// Interval between a sensor's readings (default 10s); each sensor starts
	// at a random phase within its packet period (Interval times
	// Sensor.Batch), as sensors switched on at different times do, so they
	// do not all speak at once.
	Interval time.Duration
	// TimeScale speeds up the time a device configuration names (default
	// 1): a sensor configured to sample every SampleInterval seconds takes
	// a reading every SampleInterval/TimeScale seconds, so a local run
	// sees a change of rate within seconds.
	TimeScale float64
	// RSSINoise is the standard deviation, in dB, of the Gaussian noise on
	// the RSSI of a sensor's packets (default 2; negative: none, the RSSI
	// is a function of distance alone). It is drawn once per packet and
	// shared by every connector that hears it, as the sensor's
	// surroundings (its antenna, a person beside it) shade every copy
	// alike: the connectors that hear a sensor keep their ranking packet
	// by packet, as Strongest and InRange say.
	RSSINoise float64
	// RSSIFading is the standard deviation, in dB, of more noise drawn
	// for each reception alone (default 0: none), as multipath fading at
	// each receiver is. With it, connectors a few dB apart trade places
	// from packet to packet; the cloud's choice of a reply's connector,
	// which keeps to one that delivers, may then settle on the one that is
	// weaker on average. Who hears a sensor is decided by its average
	// signal, so noise of either kind never loses a copy.
	RSSIFading float64
	// BatteryDrainPerDay is how many points a battery loses in a day of
	// device time (default 0.05, so a run's battery stays flat; negative:
	// none). Like sample intervals, device time runs TimeScale times
	// faster than real time. DrainBattery overrides it for one sensor.
	BatteryDrainPerDay float64
	// Listen is the medium's UDP address (default 127.0.0.1:0).
	Listen string
	Seed   uint64
	Logger *slog.Logger
	Sensor sensor.Config
}

// Stats are what the world observed.
type Stats struct {
	Sent        uint64            // packets put on the air by sensors
	Delivered   uint64            // copies that reached a connector's address
	Replies     uint64            // packets from connectors that a sensor accepted
	RepliesVia  map[string]uint64 // accepted replies by the connector that carried them
	WrongVia    uint64            // replies carried by a connector other than the sensor's strongest
	ReplyErrors uint64            // packets addressed to a sensor that failed to open
	Cloned      uint64            // handshake initiations put on the air by clones (Clone)
}

// Simulator runs the sensors and the medium.
type Simulator struct {
	cfg     Config
	log     *slog.Logger
	conn    *net.UDPConn
	sensors []*simSensor
	byAddr  map[string]Connector
	// done is closed when Run returns: clones stop with the world.
	done   chan struct{}
	clones atomic.Uint64

	sent, delivered, replies, wrongVia, replyErrors, cloned atomic.Uint64
	quiet                                                   atomic.Bool
	// base, when set, replaces cfg.Interval for sensors without a
	// configured sample interval (SetInterval).
	base  atomic.Int64
	viaMu sync.Mutex
	via   map[string]uint64
}

type simSensor struct {
	Sensor
	// dev is replaced by a restart; stopped is a sensor switched off,
	// which neither measures, sends nor hears.
	dev     atomic.Pointer[sensor.Sensor]
	stopped atomic.Bool
	// where is replaced by MoveSensor.
	where   atomic.Pointer[placement]
	battery battery
	// mu keeps a restart from falling between a reading and its sensor,
	// and guards noise.
	mu    sync.Mutex
	noise *rand.Rand
	kick  chan struct{}
	// update is the update status last logged; only the medium, which
	// delivers the replies that change it, reads or writes it.
	update sensor.UpdateStatus
	// taken are the newest readings the sensor took, across restarts,
	// oldest first (guarded by mu).
	taken []payload.Reading
}

// KeptReadings bounds the readings the simulator keeps of each sensor for
// Readings: the newest this many, so that a long run's memory stays
// bounded.
const KeptReadings = 10000

// keep remembers a reading the sensor took; ss.mu is held.
func (ss *simSensor) keep(r payload.Reading) {
	ss.taken = append(ss.taken, r)
	if n := len(ss.taken); n > KeptReadings {
		// Reslicing past the oldest, not copying down: once the array is
		// full, append moves what is kept to a new one, so a reading is
		// copied about once.
		ss.taken = ss.taken[n-KeptReadings:]
	}
}

// New places the world and opens the medium's socket.
func New(cfg Config) (*Simulator, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RSSINoise == 0 {
		cfg.RSSINoise = 2
	}
	if cfg.BatteryDrainPerDay == 0 {
		cfg.BatteryDrainPerDay = 0.05
	}
	addr, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("simulator: medium: %w", err)
	}
	s := &Simulator{cfg: cfg, log: cfg.Logger, conn: conn, byAddr: map[string]Connector{}, via: map[string]uint64{},
		done: make(chan struct{})}
	for _, c := range cfg.Connectors {
		s.byAddr[c.Addr.String()] = c
	}
	seeds := rand.New(rand.NewPCG(cfg.Seed, 13))
	now := time.Now()
	for i, sc := range cfg.Sensors {
		dev, err := sensor.New(sc.Credentials, 1, cfg.Sensor)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("simulator: sensor %d: %w", i, err)
		}
		ss := &simSensor{Sensor: sc, kick: make(chan struct{}, 1), noise: rand.New(rand.NewPCG(seeds.Uint64(), seeds.Uint64()))}
		ss.dev.Store(dev)
		ss.where.Store(s.place(sc.At))
		ss.battery.set(now, 100, s.normalDrain())
		s.sensors = append(s.sensors, ss)
	}
	return s, nil
}

// Addr is where connectors transmit to.
func (s *Simulator) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// Strongest is the connector that hears a sensor best on average, or ""
// if none.
func (s *Simulator) Strongest(deviceID string) string {
	if ss := s.find(deviceID); ss != nil {
		if pl := ss.where.Load(); len(pl.heard) > 0 {
			return pl.heard[0].c.ID
		}
	}
	return ""
}

// InRange lists the connectors that hear a sensor, strongest on average
// first.
func (s *Simulator) InRange(deviceID string) []string {
	if ss := s.find(deviceID); ss != nil {
		var out []string
		for _, h := range ss.where.Load().heard {
			out = append(out, h.c.ID)
		}
		return out
	}
	return nil
}

// Position is where a sensor stands now.
func (s *Simulator) Position(deviceID string) (Point, bool) {
	if ss := s.find(deviceID); ss != nil {
		return ss.where.Load().at, true
	}
	return Point{}, false
}

// Connectors lists the connectors of the world, where they stand.
func (s *Simulator) Connectors() []Connector { return slices.Clone(s.cfg.Connectors) }

// Devices lists the sensors' ids.
func (s *Simulator) Devices() []string {
	out := make([]string, len(s.sensors))
	for i, ss := range s.sensors {
		out[i] = ss.Credentials.DeviceID
	}
	return out
}

// Sensor returns a sensor's protocol state, for its counters, its
// configuration (Configuration, ConfigReport, Batch) and its software
// update (Update). A restart replaces it: ask again after RestartSensor.
func (s *Simulator) Sensor(deviceID string) *sensor.Sensor {
	if ss := s.find(deviceID); ss != nil {
		return ss.dev.Load()
	}
	return nil
}

// SoftwareVersion is the software version a sensor runs, across
// restarts, and false for an unknown sensor.
func (s *Simulator) SoftwareVersion(deviceID string) (uint32, bool) {
	if ss := s.find(deviceID); ss != nil {
		return ss.dev.Load().SoftwareVersion(), true
	}
	return 0, false
}

// Readings returns the readings a sensor took, oldest first, as first
// sent: with their sequence numbers, none marked backfilled. They are the
// newest KeptReadings, across restarts. A test checks what the cloud
// stored against them.
func (s *Simulator) Readings(deviceID string) []payload.Reading {
	ss := s.find(deviceID)
	if ss == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return slices.Clone(ss.taken)
}

func (s *Simulator) find(deviceID string) *simSensor {
	for _, ss := range s.sensors {
		if ss.Credentials.DeviceID == deviceID {
			return ss
		}
	}
	return nil
}

// ReadingInterval is how often a sensor takes a reading now: its
// configured sample interval scaled by TimeScale, else Interval.
func (s *Simulator) ReadingInterval(deviceID string) time.Duration {
	if ss := s.find(deviceID); ss != nil {
		return s.interval(ss.dev.Load())
	}
	return 0
}

func (s *Simulator) interval(dev *sensor.Sensor) time.Duration {
	c, _ := dev.Configuration()
	if c.SampleInterval == 0 {
		if b := s.base.Load(); b > 0 {
			return time.Duration(b)
		}
		return s.cfg.Interval
	}
	return time.Duration(float64(c.SampleInterval) * float64(time.Second) / s.cfg.TimeScale)
}

// SetInterval changes the reading interval of every sensor without a
// configured one; each takes it up at its next reading. A load tool steps
// the offered load this way without restarting anything.
func (s *Simulator) SetInterval(d time.Duration) {
	if d > 0 {
		s.base.Store(int64(d))
	}
}

// Stats returns the counters so far.
func (s *Simulator) Stats() Stats {
	s.viaMu.Lock()
	via := make(map[string]uint64, len(s.via))
	for k, v := range s.via {
		via[k] = v
	}
	s.viaMu.Unlock()
	return Stats{Sent: s.sent.Load(), Delivered: s.delivered.Load(), Replies: s.replies.Load(), RepliesVia: via,
		WrongVia: s.wrongVia.Load(), ReplyErrors: s.replyErrors.Load(), Cloned: s.cloned.Load()}
}

// StopReadings makes the sensors stop measuring while they keep sending
// what is not yet acknowledged, so a run can drain before it is checked.
// When it returns no reading is being taken: a step that saw the flag
// unset before it was set has finished (each step holds its sensor's
// lock), so a drain that then finds every backlog empty is final.
func (s *Simulator) StopReadings() {
	s.quiet.Store(true)
	for _, ss := range s.sensors {
		ss.mu.Lock()
		//lint:ignore SA2001 an empty critical section: waiting for a step in progress is the point
		ss.mu.Unlock()
	}
}

// AckLatencies collects every sensor's send-to-ACK times since the last
// call.
func (s *Simulator) AckLatencies() []time.Duration {
	var out []time.Duration
	for _, ss := range s.sensors {
		out = append(out, ss.dev.Load().AckLatencies()...)
	}
	return out
}

// Backlog is the number of readings not yet acknowledged, over all sensors.
func (s *Simulator) Backlog() int {
	n := 0
	for _, ss := range s.sensors {
		n += ss.dev.Load().Stats().Backlog
	}
	return n
}

// Run runs every sensor and the medium until ctx ends.
func (s *Simulator) Run(ctx context.Context) error {
	defer s.conn.Close()
	defer close(s.done)
	var wg sync.WaitGroup
	wg.Go(func() { s.medium(ctx) })
	rng := rand.New(rand.NewPCG(s.cfg.Seed, 7))
	period := s.cfg.Interval * time.Duration(max(1, s.cfg.Sensor.Batch))
	for _, ss := range s.sensors {
		phase := time.Duration(rng.Int64N(int64(period)))
		seed := rng.Uint64()
		wg.Go(func() { s.runSensor(ctx, ss, phase, seed) })
	}
	wg.Wait()
	return nil
}

func (s *Simulator) runSensor(ctx context.Context, ss *simSensor, phase time.Duration, seed uint64) {
	gen := newGenerator(ss.Credentials.DeviceType, seed)
	select {
	case <-ctx.Done():
		return
	case <-time.After(phase):
	}
	every := s.interval(ss.dev.Load())
	tick := time.NewTicker(every)
	defer tick.Stop()
	// A slower tick retries handshakes and resends overdue readings even
	// between readings.
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	record := true
	for {
		if d := s.step(ss, gen, record); d != every {
			// A configuration changed the sampling rate.
			every = d
			tick.Reset(every)
		}
		record = false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			record = true
		case <-retry.C:
		case <-ss.kick:
		}
	}
}

// step takes a reading if one is due and the sensor is on, sends what the
// sensor has to send, and returns the sensor's reading interval now.
func (s *Simulator) step(ss *simSensor, gen *generator, record bool) time.Duration {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	dev := ss.dev.Load()
	if !ss.stopped.Load() {
		if record && !s.quiet.Load() {
			now := time.Now()
			r := gen.next(now, ss.battery.percent(now))
			r.Seq = dev.Record(r)
			ss.keep(r)
		}
		s.transmit(ss, dev)
	}
	return s.interval(dev)
}

func (s *Simulator) transmit(ss *simSensor, dev *sensor.Sensor) {
	pkt, err := dev.Next(time.Now())
	if err != nil {
		s.log.Warn("sensor could not build a packet", "deviceId", ss.Credentials.DeviceID, "error", err.Error())
		return
	}
	if pkt == nil {
		return
	}
	s.sent.Add(1)
	s.broadcast(pkt, ss.where.Load(), ss.noise)
}

// logUpdate logs a change of a sensor's update state, which only a reply
// brings: a download begun, a refusal, an installation or a rollback. The
// progress of a download is not a change.
func (s *Simulator) logUpdate(ss *simSensor, dev *sensor.Sensor) {
	u := dev.Update()
	was := ss.update
	ss.update = u
	if u.State == 0 || u.State == was.State && u.Version == was.Version && u.Release == was.Release && u.Reason == was.Reason {
		return
	}
	attrs := []any{"deviceId", ss.Credentials.DeviceID, "state", u.State.String(), "version", u.Version,
		"release", hex.EncodeToString(u.Release[:])}
	if u.Reason != 0 {
		attrs = append(attrs, "reason", u.Reason.String())
	}
	if u.Chunks != 0 {
		attrs = append(attrs, "chunksHeld", u.Held, "chunks", u.Chunks)
	}
	level := slog.LevelInfo
	if u.State == payload.UpdateRefused || u.State == payload.UpdateRolledBack {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "software update", attrs...)
}

// medium delivers what connectors transmit to the sensors in their range.
func (s *Simulator) medium(ctx context.Context) {
	go func() { <-ctx.Done(); s.conn.SetReadDeadline(time.Now()) }()
	buf := make([]byte, 2048)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		c, ok := s.byAddr[from.String()]
		if !ok {
			continue // not one of our connectors
		}
		f, err := air.Parse(buf[:n])
		if err != nil || f.Kind != air.KindTransmit {
			continue
		}
		pkt := append([]byte(nil), f.Packet...)
		for _, ss := range s.sensors {
			pl := ss.where.Load()
			if !pl.hears(c.ID) || ss.stopped.Load() {
				continue
			}
			dev := ss.dev.Load()
			mine, err := dev.Receive(pkt, time.Now())
			if !mine {
				continue
			}
			if err != nil {
				s.replyErrors.Add(1)
				s.log.Warn("reply failed to open", "deviceId", ss.Credentials.DeviceID, "via", c.ID, "error", err.Error())
				continue
			}
			s.replies.Add(1)
			s.viaMu.Lock()
			s.via[c.ID]++
			s.viaMu.Unlock()
			if c.ID != pl.heard[0].c.ID {
				s.wrongVia.Add(1)
			}
			st := dev.Stats()
			s.log.Info("reply received", "deviceId", ss.Credentials.DeviceID, "via", c.ID, "acked", st.Acked, "backlog", st.Backlog)
			s.logUpdate(ss, dev)
			select {
			case ss.kick <- struct{}{}:
			default:
			}
		}
	}
}
