package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// seriesStyle gives each filter a colour and marker that survive greyscale
// printing.
var seriesStyle = map[string]struct {
	label string
	color color.Color
	shape draw.GlyphDrawer
}{
	Ours:    {"amavisgo (ours)", color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, draw.CircleGlyph{}},
	Perl:    {"amavisd-new 2.13 (Perl)", color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, draw.SquareGlyph{}},
	Ceiling: {"loadgen → smtp-sink (ceiling)", color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}, draw.TriangleGlyph{}},
}

// errPoints is a series of mean rates with min–max bars.
type errPoints struct {
	plotter.XYs
	low, high []float64
}

func (e errPoints) YError(i int) (float64, float64) { return e.low[i], e.high[i] }

// WritePNG draws messages per second against sessions, one panel per load,
// with both axes logarithmic and bars from the slowest to the fastest
// repetition.
func WritePNG(w io.Writer, points []Point) error {
	var loads []string
	var sessions []int
	for _, p := range points {
		if !slices.Contains(loads, p.Load) {
			loads = append(loads, p.Load)
		}
		if !slices.Contains(sessions, p.Sessions) {
			sessions = append(sessions, p.Sessions)
		}
	}
	if len(loads) == 0 {
		return fmt.Errorf("report: no points to plot")
	}
	slices.Sort(sessions)
	var xticks plot.ConstantTicks
	for _, s := range sessions {
		xticks = append(xticks, plot.Tick{Value: float64(s), Label: strconv.Itoa(s)})
	}

	var panels []*plot.Plot
	for _, load := range loads {
		p := plot.New()
		p.Title.Text = load
		p.X.Label.Text = "parallel sessions (= max_servers)"
		p.Y.Label.Text = "messages per second"
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = xticks, plot.LogTicks{Prec: -1}
		p.Add(plotter.NewGrid())
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(10)
		for _, filter := range []string{Ceiling, Ours, Perl} {
			var e errPoints
			for _, pt := range points {
				if pt.Load != load || pt.Filter != filter || len(pt.Samples) == 0 {
					continue
				}
				r := pt.Rate()
				if r.Min <= 0 {
					continue // a log axis cannot show it
				}
				e.XYs = append(e.XYs, plotter.XY{X: float64(pt.Sessions), Y: r.Mean})
				e.low = append(e.low, r.Mean-r.Min)
				e.high = append(e.high, r.Max-r.Mean)
			}
			if len(e.XYs) == 0 {
				continue
			}
			slices.SortStableFunc(e.XYs, func(a, b plotter.XY) int { return int(a.X - b.X) })
			st := seriesStyle[filter]
			line, scatter, err := plotter.NewLinePoints(e.XYs)
			if err != nil {
				return err
			}
			line.Color, line.Width = st.color, vg.Points(1.5)
			scatter.Color, scatter.Shape, scatter.Radius = st.color, st.shape, vg.Points(3)
			bars, err := plotter.NewYErrorBars(e)
			if err != nil {
				return err
			}
			bars.Color = st.color
			p.Add(line, scatter, bars)
			p.Legend.Add(st.label, line, scatter)
		}
		// Leave room above the highest series for the legend.
		p.Y.Max *= 12
		p.Y.Min = math.Max(p.Y.Min/2, 0.1)
		p.X.Min, p.X.Max = float64(sessions[0])/1.3, float64(sessions[len(sessions)-1])*1.3
		panels = append(panels, p)
	}

	width := vg.Length(len(panels)) * 5 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, 5*vg.Inch), vgimg.UseDPI(120))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Inch / 4, PadTop: vg.Inch / 8,
		PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}
