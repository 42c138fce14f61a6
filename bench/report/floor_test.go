package report

import (
	"bytes"
	"testing"
)

func TestWriteFloor(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFloor(&b, fixture()); err != nil || b.Len() != 0 {
		t.Fatalf("without floor points: %q, %v; want nothing", b.String(), err)
	}
	points := append(fixture(),
		Point{Filter: Floor, Load: Load2KB, Sessions: 4, Messages: 2000,
			Samples: []Sample{{MsgsPerSec: 1800, CPUms: 0.3, ClamdCPUms: 0.25, P50ms: 2, P99ms: 5}, {MsgsPerSec: 2000, CPUms: 0.32, ClamdCPUms: 0.25, P50ms: 2.2, P99ms: 5.4}}},
		Point{Filter: FloorParts, Load: Load2KB, Sessions: 4, Messages: 2000,
			Samples: []Sample{{MsgsPerSec: 1700, CPUms: 0.35, ClamdCPUms: 0.3, P50ms: 2.5, P99ms: 6}}},
		// no Perl point at 100 KB: the ratio is left open; no clamd figure: no share either
		Point{Filter: FloorParts, Load: Load100KB, Sessions: 1, Messages: 500,
			Samples: []Sample{{MsgsPerSec: 500, CPUms: 0.8, ClamdCPUms: 0}}})
	if err := WriteFloor(&b, points); err != nil {
		t.Fatal(err)
	}
	golden(t, "floor.md", b.Bytes())
}
