package notify

import (
	"strings"
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

// BenchmarkDSNFoldedHeader is BenchmarkDSNMessage for an original header holding one huge
// folded Subject (issue 22): the cost must grow linearly from 100 kB to 4 MB.
func BenchmarkDSNFoldedHeader(b *testing.B) {
	c, _ := conf.Parse("b.toml", []byte("myhostname = \"mx.example.com\"\n"))
	n := New(c, nil)
	for _, s := range []struct {
		name string
		n    int
	}{{"100k", 100 << 10}, {"1M", 1 << 20}, {"4M", 4 << 20}} {
		b.Run(s.name, func(b *testing.B) {
			m := eicar(&c.Policy, conf.D_BOUNCE)
			m.Recipients[0].DSNSuppress = ""
			var h strings.Builder
			h.WriteString(origHeader + "X-Folded: start\r\n")
			for h.Len() < s.n {
				h.WriteString("\tfolded words of a long header 0123456\r\n")
			}
			m.Header = []byte(h.String())
			plan := PlanDSN(m, false)
			b.SetBytes(int64(len(m.Header)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := n.DSNMessage(&c.Policy, m, plan); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkComposeFolded composes a notice whose template header has a field folded over
// 100 kB to 4 MB: the cost must grow linearly.
func BenchmarkComposeFolded(b *testing.B) {
	for _, s := range []struct {
		name string
		n    int
	}{{"100k", 100 << 10}, {"1M", 1 << 20}, {"4M", 4 << 20}} {
		b.Run(s.name, func(b *testing.B) {
			var e strings.Builder
			e.WriteString("Subject: start\n")
			for e.Len() < s.n {
				e.WriteString(" folded words\n")
			}
			e.WriteString("\nthe text\n")
			text := e.String()
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				compose(text, [][2]string{{"From", "<a@b>"}, {"To", "<c@d>"}}, "", nil)
			}
		})
	}
}
