package report

import (
	"bytes"
	"flag"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixture is a small run: two loads, two session counts, three filters,
// with Perl missing at one point as happens when a run is cut short.
func fixture() []Point {
	s := func(rates ...float64) []Sample {
		var out []Sample
		for i, r := range rates {
			out = append(out, Sample{MsgsPerSec: r, CPUms: 1000 / r, ClamdCPUms: 0.5, PeakRSSMB: 20 + float64(i),
				P50ms: 500 / r, P99ms: 2000/r + float64(i)})
		}
		return out
	}
	return []Point{
		{Filter: Ceiling, Load: Load2KB, Sessions: 1, Messages: 5000, Samples: s(5000, 5200, 4800)},
		{Filter: Ours, Load: Load2KB, Sessions: 1, Messages: 2000, Samples: s(900, 1000, 1100)},
		{Filter: Perl, Load: Load2KB, Sessions: 1, Messages: 100, Samples: s(30, 31, 29)},
		{Filter: Ours, Load: Load2KB, Sessions: 4, Messages: 2000, Samples: s(1500, 1600, 1700)},
		{Filter: Perl, Load: Load2KB, Sessions: 4, Messages: 100, Samples: s(50, 50, 50)},
		{Filter: Ceiling, Load: Load2KB, Sessions: 4, Messages: 5000, Samples: s(8000, 8100, 7900)},
		{Filter: Ours, Load: Load100KB, Sessions: 1, Messages: 500, Samples: s(300, 310, 290)},
		{Filter: Ceiling, Load: Load100KB, Sessions: 1, Messages: 500, Samples: s(2000, 2100, 1900)},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{2, 4, 6})
	if s.N != 3 || s.Mean != 4 || s.SD != 2 || s.Min != 2 || s.Max != 6 {
		t.Errorf("Summarize = %+v", s)
	}
	if s := Summarize([]float64{7}); s.SD != 0 || s.Mean != 7 {
		t.Errorf("one sample: %+v", s)
	}
	if s := Summarize(nil); s.N != 0 {
		t.Errorf("no samples: %+v", s)
	}
}

func TestRatio(t *testing.T) {
	p := fixture()
	if r := Ratio(p[1], p[2]); math.Abs(r-1000.0/30) > 1e-9 {
		t.Errorf("ratio = %v", r)
	}
	if r := Ratio(p[6], Point{}); !math.IsNaN(r) {
		t.Errorf("ratio without Perl = %v, want NaN", r)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMarkdown(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "table.md", b.Bytes())
}

func TestWriteTargets(t *testing.T) {
	points := append(fixture(),
		Point{Filter: Ours, Load: Load2KB, Sessions: 8, Messages: 100, Samples: []Sample{{MsgsPerSec: 700, CPUms: 0.9, P50ms: 5, P99ms: 12}}},
		Point{Filter: Perl, Load: Load2KB, Sessions: 8, Messages: 100, Samples: []Sample{{MsgsPerSec: 50, CPUms: 30}}},
		Point{Filter: Ours, Load: Load100KB, Sessions: 32, Messages: 100, Samples: []Sample{{MsgsPerSec: 70, PeakRSSMB: 80}}},
		Point{Filter: Perl, Load: Load100KB, Sessions: 32, Messages: 100, Samples: []Sample{{MsgsPerSec: 10}}},
	)
	var b bytes.Buffer
	if err := WriteTargets(&b, points); err != nil {
		t.Fatal(err)
	}
	golden(t, "targets.md", b.Bytes())
}

func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "results.csv", b.Bytes())
	b.Reset()
	if err := WriteRepsCSV(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	golden(t, "reps.csv", b.Bytes())
}

func TestWritePNG(t *testing.T) {
	var b bytes.Buffer
	if err := WritePNG(&b, fixture()); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	// Two panels of 5 x 5 inches at 120 dpi.
	if sz := img.Bounds().Size(); sz.X != 1200 || sz.Y != 600 {
		t.Errorf("image size %v, want 1200x600", sz)
	}
	if err := WritePNG(&b, nil); err == nil {
		t.Error("no points: want an error")
	}
}

// TestWriteSpamMarkdown: the spam loads get their table with each filter's CPU as a share of
// the engine's; other loads do not.
func TestWriteSpamMarkdown(t *testing.T) {
	pts := []Point{
		{Filter: Ours, Load: LoadRspamd, Sessions: 1, Messages: 100, Samples: []Sample{{MsgsPerSec: 200, CPUms: 0.2, EngineCPUms: 4}}},
		{Filter: Perl, Load: LoadRspamd, Sessions: 1, Messages: 100, Samples: []Sample{{MsgsPerSec: 50, CPUms: 8, EngineCPUms: 4}}},
		{Filter: Ours, Load: Load2KB, Sessions: 1, Messages: 100, Samples: []Sample{{MsgsPerSec: 900, CPUms: 0.1}}},
	}
	var b bytes.Buffer
	if err := WriteSpamMarkdown(&b, pts); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "| 2 KB via rspamd | 1 | ") || !strings.Contains(out, "| 5.00 % |") || !strings.Contains(out, "| 200 % |") || strings.Contains(out, "| 2 KB | ") {
		t.Errorf("spam table:\n%s", out)
	}
}
