package simulator

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/sealedsense/sealedsense/shared/payload"
)

// generator makes plausible readings for one sensor type.
type generator struct {
	typ   string
	rng   *rand.Rand
	level float64
	n     int
	state bool
}

func newGenerator(typ string, seed uint64) *generator {
	r := rand.New(rand.NewPCG(seed, 11))
	return &generator{typ: typ, rng: r, level: 18 + 6*r.Float64()}
}

// batteryEvery is how often a sensor reports its battery: every tenth
// reading is its battery level.
const batteryEvery = 10

// next is the sensor's next reading at now; battery is its charge then,
// in points.
func (g *generator) next(now time.Time, battery uint8) payload.Reading {
	g.n++
	ms := now.UnixMilli()
	if g.n%batteryEvery == 0 {
		return payload.Reading{Kind: payload.Battery, Time: ms, Percentage: &battery}
	}
	g.level += g.rng.NormFloat64() * 0.1
	v := math.Round(g.level*100) / 100
	switch g.typ {
	case "humidity":
		rh := math.Round((40+10*math.Sin(float64(g.n)/20))*10) / 10
		return payload.Reading{Kind: payload.Humidity, Time: ms, Celsius: &v, Humidity: &rh}
	case "touch":
		return payload.Reading{Kind: payload.Touch, Time: ms}
	case "proximity":
		g.state = g.rng.IntN(4) == 0
		s := g.state
		return payload.Reading{Kind: payload.ObjectPresent, Time: ms, Present: &s}
	case "waterDetector":
		s := g.rng.IntN(50) == 0
		return payload.Reading{Kind: payload.WaterPresent, Time: ms, Present: &s}
	case "co2":
		ppm := uint32(420 + g.rng.IntN(600))
		return payload.Reading{Kind: payload.CO2, Time: ms, PPM: &ppm}
	default:
		return payload.Reading{Kind: payload.Temperature, Time: ms, Celsius: &v}
	}
}
