package simulator

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
)

// batteryEvery is how often a sensor reports its battery: every tenth
// reading is its battery level.
const batteryEvery = 10

// How two-state sensors behave, in readings: a state holds for a run of
// between min and max readings, then the other state begins. Motion comes
// in short bursts among longer calm, a desk is taken for hours at a time
// and a door is opened now and then, for a moment.
var (
	motionRuns  = runs{on: [2]int{1, 3}, off: [2]int{3, 12}}
	deskRuns    = runs{on: [2]int{12, 36}, off: [2]int{3, 12}}
	contactRuns = runs{on: [2]int{8, 30}, off: [2]int{1, 2}} // on: closed
)

// Counters: the mean count between two readings, of people passing a
// proximity counter and of touches on a touch counter.
const (
	passesPerReading  = 3.0
	touchesPerReading = 1.5
)

// Air pressure: a random walk from the standard atmosphere, in pascals,
// kept within what weather does at sea level.
const (
	standardPascal = 101325
	pascalStep     = 15
	minWeather     = 95000
	maxWeather     = 106000
)

// runs are a two-state signal's run lengths, each [min, max] readings.
type runs struct{ on, off [2]int }

// generator makes plausible readings for one sensor type.
type generator struct {
	typ   string
	rng   *rand.Rand
	level float64 // temperature, °C
	n     int     // readings taken
	state bool    // a two-state sensor's state
	run   int     // readings left in the state
	total uint32  // a counter's running total
	pa    float64 // air pressure
}

func newGenerator(typ string, seed uint64) *generator {
	r := rand.New(rand.NewPCG(seed, 11))
	return &generator{typ: typ, rng: r, level: 18 + 6*r.Float64(), state: r.IntN(2) == 0,
		total: uint32(r.IntN(10000)), pa: standardPascal + 300*r.NormFloat64()}
}

// next is the sensor's next reading at now; battery is its charge then,
// in points.
func (g *generator) next(now time.Time, battery uint8) payload.Reading {
	g.n++
	r := payload.Reading{Time: now.UnixMilli()}
	if g.n%batteryEvery == 0 {
		r.Kind, r.Percentage = payload.Battery, &battery
		return r
	}
	switch g.typ {
	case "touch", "proximity", "waterDetector":
		g.event(&r)
	case "co2":
		g.air(&r)
	case "proximityCounter":
		r.Kind, r.Total = payload.ObjectPresentCount, g.count(passesPerReading)
	case "touchCounter":
		r.Kind, r.Total = payload.TouchCount, g.count(touchesPerReading)
	case "motion":
		r.Kind, r.State = payload.Motion, g.flip(motionRuns)
	case "deskOccupancy":
		r.Kind, r.State = payload.DeskOccupancy, g.flip(deskRuns)
	case "contact":
		r.Kind, r.State = payload.Contact, g.flip(contactRuns)
	default: // temperature and humidity; an unknown type measures temperature
		g.climate(&r)
	}
	return r
}

// climate is a temperature or humidity reading: a temperature that
// drifts, a humidity that swings slowly.
func (g *generator) climate(r *payload.Reading) {
	g.level += g.rng.NormFloat64() * 0.1
	v := math.Round(g.level*100) / 100
	r.Kind, r.Celsius = payload.Temperature, &v
	if g.typ == "humidity" {
		rh := math.Round((40+10*math.Sin(float64(g.n)/20))*10) / 10
		r.Kind, r.Humidity = payload.Humidity, &rh
	}
}

// air is a CO2 sensor's reading: CO2 and air pressure by turns, CO2
// first.
func (g *generator) air(r *payload.Reading) {
	if g.n%2 == 1 {
		ppm := uint32(420 + g.rng.IntN(600))
		r.Kind, r.PPM = payload.CO2, &ppm
		return
	}
	g.pa = min(max(g.pa+g.rng.NormFloat64()*pascalStep, minWeather), maxWeather)
	pa := math.Round(g.pa)
	r.Kind, r.Pascal = payload.Pressure, &pa
}

// event is a reading of a sensor that reports what happens: a touch, an
// object there or not, water.
func (g *generator) event(r *payload.Reading) {
	switch g.typ {
	case "touch":
		r.Kind = payload.Touch
	case "proximity":
		g.state = g.rng.IntN(4) == 0
		s := g.state
		r.Kind, r.Present = payload.ObjectPresent, &s
	default: // waterDetector
		s := g.rng.IntN(50) == 0
		r.Kind, r.Present = payload.WaterPresent, &s
	}
}

// count adds the events since the last reading, a Poisson count of the
// given mean, to the running total, which never falls: a quiet interval
// adds nothing.
func (g *generator) count(mean float64) *uint32 {
	n := uint32(0)
	for p, limit := g.rng.Float64(), math.Exp(-mean); p > limit; p *= g.rng.Float64() {
		n++
	}
	g.total += min(n, math.MaxUint32-g.total)
	total := g.total
	return &total
}

// flip is a two-state sensor's state at this reading: the state goes on
// until its run is over, then the other begins, for a run drawn from rs.
func (g *generator) flip(rs runs) *bool {
	if g.run == 0 {
		g.state = !g.state
		span := rs.off
		if g.state {
			span = rs.on
		}
		g.run = span[0] + g.rng.IntN(span[1]-span[0]+1)
	}
	g.run--
	s := g.state
	return &s
}
