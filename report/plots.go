package report

import (
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/dmlgo/dmlgo/internal/atomicfile"
	"github.com/dmlgo/dmlgo/retrieval"
)

// LossPlot draws the loss of every step, and its moving average, into
// path (a PNG).
func LossPlot(path, label string, losses []float64) error {
	p := plot.New()
	p.Title.Text = "training loss: " + label
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	raw := make(plotter.XYs, len(losses))
	for i, v := range losses {
		raw[i] = plotter.XY{X: float64(i + 1), Y: v}
	}
	l, err := plotter.NewLine(raw)
	if err != nil {
		return err
	}
	l.Color = color.RGBA{R: 160, G: 190, B: 230, A: 255}
	p.Add(l)
	p.Legend.Add("per step", l)
	if w := min(50, max(1, len(losses)/20)); w > 1 {
		avg := make(plotter.XYs, 0, len(losses))
		var s float64
		for i, v := range losses {
			s += v
			if i >= w {
				s -= losses[i-w]
			}
			if i >= w-1 {
				avg = append(avg, plotter.XY{X: float64(i + 1), Y: s / float64(w)})
			}
		}
		if len(avg) > 1 {
			la, err := plotter.NewLine(avg)
			if err != nil {
				return err
			}
			la.Color = color.RGBA{R: 20, G: 60, B: 160, A: 255}
			la.Width = vg.Points(1.5)
			p.Add(la)
			p.Legend.Add(fmt.Sprintf("mean of %d", w), la)
		}
	}
	p.Legend.Top = true
	return savePlot(p, 7*vg.Inch, 4*vg.Inch, path)
}

// Curve is one run's metrics on a top-k plot.
type Curve struct {
	Label   string
	Metrics map[string]float64
}

// TopKPlot draws top-k accuracy against k for one or more runs.
func TopKPlot(path, title string, curves []Curve) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "k"
	p.Y.Label.Text = "top-k accuracy"
	p.Y.Min, p.Y.Max = 0, 1
	for i, c := range curves {
		pts := make(plotter.XYs, 0, len(retrieval.Ks))
		for _, k := range retrieval.Ks {
			pts = append(pts, plotter.XY{X: float64(k), Y: c.Metrics[fmt.Sprintf("top%d", k)]})
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		col := palette[i%len(palette)]
		l.Color, s.Color = col, col
		if i >= len(palette) {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l, s)
		p.Legend.Add(strings.TrimSpace(c.Label), l, s)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return savePlot(p, 7*vg.Inch, 4.5*vg.Inch, path)
}

// savePlot is plot.Save written atomically (internal/atomicfile): the
// format comes from the file's extension.
func savePlot(p *plot.Plot, w, h vg.Length, path string) error {
	wt, err := p.WriterTo(w, h, strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), "."))
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(out io.Writer) error {
		_, err := wt.WriteTo(out)
		return err
	})
}

var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255}, color.RGBA{R: 140, G: 86, B: 75, A: 255},
	color.RGBA{R: 227, G: 119, B: 194, A: 255}, color.RGBA{R: 127, G: 127, B: 127, A: 255},
	color.RGBA{R: 188, G: 189, B: 34, A: 255}, color.RGBA{R: 23, G: 190, B: 207, A: 255},
}
