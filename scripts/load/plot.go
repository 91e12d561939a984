package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Plot colours: the offered load grey, the measured figures strong.
var (
	grey = color.RGBA{R: 150, G: 150, B: 150, A: 255}
	blue = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	red  = color.RGBA{R: 214, G: 39, B: 40, A: 255}
)

// writePlots writes a run's charts into dir as SVG and PNG: throughput and
// send-to-ACK latency over time (one point per 2 s sample) and the
// histogram of the measured window's send-to-ACK times.
func writePlots(dir string, samples []sample, acks []time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, build := range map[string]func() (*plot.Plot, error){
		"throughput": func() (*plot.Plot, error) { return throughputPlot(samples) },
		"latency":    func() (*plot.Plot, error) { return latencyPlot(samples) },
		"histogram":  func() (*plot.Plot, error) { return histogramPlot(acks) },
	} {
		p, err := build()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if p == nil {
			continue
		}
		for _, ext := range []string{".svg", ".png"} {
			if err := p.Save(8*vg.Inch, 4*vg.Inch, filepath.Join(dir, name+ext)); err != nil {
				return fmt.Errorf("%s: %w", name+ext, err)
			}
		}
	}
	return nil
}

func throughputPlot(samples []sample) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Readings per second"
	p.X.Label.Text = "time since start (s)"
	p.Y.Label.Text = "readings/s"
	offered, stored := make(plotter.XYs, len(samples)), make(plotter.XYs, len(samples))
	for i, s := range samples {
		x := s.at.Seconds()
		offered[i], stored[i] = plotter.XY{X: x, Y: s.offered}, plotter.XY{X: x, Y: s.stored}
	}
	if err := addLines(p, line{"offered", offered, grey}, line{"stored", stored, blue}); err != nil {
		return nil, err
	}
	return p, nil
}

func latencyPlot(samples []sample) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Send to ACK, per 2 s (no point: no ACK in it)"
	p.X.Label.Text = "time since start (s)"
	p.Y.Label.Text = "seconds"
	var p50, p99 plotter.XYs
	for _, s := range samples {
		if s.acked == 0 {
			continue
		}
		x := s.at.Seconds()
		p50 = append(p50, plotter.XY{X: x, Y: s.p50.Seconds()})
		p99 = append(p99, plotter.XY{X: x, Y: s.p99.Seconds()})
	}
	if len(p50) == 0 {
		return nil, nil
	}
	if err := addLines(p, line{"p50", p50, blue}, line{"p99", p99, red}); err != nil {
		return nil, err
	}
	return p, nil
}

func histogramPlot(acks []time.Duration) (*plot.Plot, error) {
	if len(acks) == 0 {
		return nil, nil
	}
	v := make(plotter.Values, len(acks))
	for i, a := range acks {
		v[i] = float64(a.Milliseconds())
	}
	h, err := plotter.NewHist(v, 40)
	if err != nil {
		return nil, err
	}
	h.FillColor = blue
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Send to ACK over the measured window (%d ACKs)", len(acks))
	p.X.Label.Text = "milliseconds"
	p.Y.Label.Text = "packets"
	p.Add(h)
	return p, nil
}

type line struct {
	name   string
	points plotter.XYs
	color  color.Color
}

func addLines(p *plot.Plot, lines ...line) error {
	for _, l := range lines {
		pl, err := plotter.NewLine(l.points)
		if err != nil {
			return err
		}
		pl.Color = l.color
		pl.Width = vg.Points(1.5)
		p.Add(pl)
		p.Legend.Add(l.name, pl)
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return nil
}
