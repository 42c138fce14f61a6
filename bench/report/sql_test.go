package report

import (
	"bytes"
	"testing"
)

func TestWriteSQLCost(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSQLCost(&b, fixture()); err != nil || b.Len() != 0 {
		t.Fatalf("without ours-sql points: %q, %v; want nothing", b.String(), err)
	}
	points := append(fixture(), Point{Filter: OursSQL, Load: Load2KB, Sessions: 4, Messages: 2000,
		Samples: []Sample{{MsgsPerSec: 1200, CPUms: 1.5, DBCPUms: 0.4}, {MsgsPerSec: 1200, CPUms: 1.7, DBCPUms: 0.6}}})
	if err := WriteSQLCost(&b, points); err != nil {
		t.Fatal(err)
	}
	golden(t, "sqlcost.md", b.Bytes())
}
