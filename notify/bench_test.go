package notify

import (
	"testing"

	"amavisgo/conf"
)

// BenchmarkDSNMessage expands the built-in virus template and writes the RFC 3464 report.
func BenchmarkDSNMessage(b *testing.B) {
	c, _ := conf.Parse("b.toml", []byte("myhostname = \"mx.example.com\"\n"))
	n := New(c, nil)
	m := eicar(&c.Policy, conf.D_BOUNCE)
	m.Recipients[0].DSNSuppress = ""
	plan := PlanDSN(m, false)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := n.DSNMessage(&c.Policy, m, plan); err != nil {
			b.Fatal(err)
		}
	}
}
