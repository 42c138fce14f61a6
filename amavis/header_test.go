package amavis

import (
	"bufio"
	"runtime"
	"strings"
	"testing"
	"time"

	"amavisgo/hdr"
	"amavisgo/smtp/smtptest"
)

// foldedHeader is a header section whose field name is folded into continuation lines of 40
// bytes up to about n bytes (issue 22's hostile header), after a Message-ID.
func foldedHeader(name string, n int) []byte {
	var b strings.Builder
	b.WriteString("Message-ID: <m@example.org>\r\n" + name + ": from client.example.org ([192.0.2.7])\r\n")
	for b.Len() < n {
		b.WriteString("\tfolded words of a long header 0123456\r\n")
	}
	b.WriteString("From: a@example.org\r\n")
	return []byte(b.String())
}

// BenchmarkHeaderLookupsFolded runs the header lookups of each message (Message-ID, the bulk
// test, the Received trace for %e) on a header with one huge folded field: the cost must grow
// linearly from 100 kB to 4 MB.
func BenchmarkHeaderLookupsFolded(b *testing.B) {
	for _, s := range []struct {
		name string
		n    int
	}{{"100k", 100 << 10}, {"1M", 1 << 20}, {"4M", 4 << 20}} {
		for _, fn := range []struct {
			name, field string
			run         func(h []byte) bool
		}{
			{"hdr.Get", "Subject", func(h []byte) bool { v, _ := hdr.Get(h, "Subject"); return v != "" }},
			{"isBulk", "Precedence", func(h []byte) bool { return !isBulk(h, "a@example.org") }},
			{"receivedIPs", "Received", func(h []byte) bool { return receivedIPs(h)[0] == "192.0.2.7" }},
		} {
			b.Run(fn.name+"/"+s.name, func(b *testing.B) {
				h := foldedHeader(fn.field, s.n)
				b.SetBytes(int64(len(h)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if !fn.run(h) {
						b.Fatal("wrong result")
					}
				}
			})
		}
	}
}

// A message whose header holds a field folded into two megabytes of continuation lines passes
// well within child_timeout (issue 22: decoding it took over 10 s, so with child_timeout = 3
// it got 451 "mime_decode FAILED: context deadline exceeded").
func TestHugeFoldedHeaderPasses(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "child_timeout = 3")
	c, r := openData(t, td.addr)
	w := bufio.NewWriter(c)
	w.Write(foldedHeader("Received", 2<<20))
	w.WriteString("Date: Sun, 22 Nov 2026 09:45:23 +0000\r\nSubject: folded\r\n\r\nbody\r\n.\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:")
	if n := len(h.Msgs()); n != 1 {
		t.Errorf("next hop got %d messages", n)
	}
}

// receivedIPs (%e's trace) unfolds a Received field folded into a megabyte in linear time
// and memory (issue 22: 5 s and 13 GB allocated). The guard is the bytes allocated, which do
// not depend on the machine's load; the time bound is a generous guard against a hang.
func TestReceivedIPsHugeFolded(t *testing.T) {
	h := foldedHeader("Received", 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	got := receivedIPs(h)
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes: %v, %.1f MB allocated", len(h), el, float64(alloc)/(1<<20))
	if len(got) != 1 || got[0] != "192.0.2.7" {
		t.Errorf("receivedIPs: %q", got)
	}
	if limit := uint64(16 * len(h)); alloc > limit {
		t.Errorf("allocated %d bytes for a %d-byte header, more than %d", alloc, len(h), limit)
	}
	if el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}
