package unpack

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHugeFoldedHeaders: headers folded into megabytes of continuation lines, or holding a
// hundred thousand parameters, are unfolded and parsed in linear time and memory (issue 22:
// a 1 MB folded header took 15 s, 95 parts with 100 kB folded headers ten times a plain
// 10 MB message). The guard is the bytes allocated, which do not depend on the machine's
// load: unfolding by string concatenation allocates over 10 GB for one megabyte; the time
// bound is a generous guard against a hang.
func TestHugeFoldedHeaders(t *testing.T) {
	subject := "From: a@example.com\r\nTo: b@example.net\r\n" + foldedField("Subject", 1<<20) +
		"Content-Type: text/plain\r\n\r\nhello\r\n"

	var cd strings.Builder
	cd.WriteString("Content-Disposition: attachment;\r\n filename*0*=utf-8''%E2%82%AC")
	for k := 1; cd.Len() < 512<<10; k++ {
		fmt.Fprintf(&cd, ";\r\n filename*%d*=%%41b", k%1000)
	}
	var ct strings.Builder
	ct.WriteString("Content-Type: application/octet-stream")
	const dups = 100000
	for k := 0; k < dups; k++ {
		fmt.Fprintf(&ct, ";\r\n name=f%d.exe", k)
	}
	params := "From: a@example.com\r\nMIME-Version: 1.0\r\n" + cd.String() + "\r\n" + ct.String() +
		"\r\n\r\nbody\r\n"

	cases := []struct {
		name  string
		msg   string
		check func(t *testing.T, r *Result)
	}{
		{"1 MB folded Subject", subject, func(t *testing.T, r *Result) {
			if len(r.Parts) != 2 || r.Parts[1].Type != "text/plain" || len(r.MIMEErrors) != 0 {
				t.Errorf("got\n%s", describe(r))
			}
			if len(fileWith(t, r, "hello\r\n")) != 1 {
				t.Errorf("no part holds the body:\n%s", describe(r))
			}
		}},
		{"95 parts with 100 kB folded headers", string(partsWithHeaders(95, 100<<10)), func(t *testing.T, r *Result) {
			if len(r.Parts) != 96 || len(r.MIMEErrors) != 0 {
				t.Errorf("%d parts, MIME errors %q", len(r.Parts), r.MIMEErrors)
			}
			if len(fileWith(t, r, "part 94")) != 1 {
				t.Error("no part holds the last part's body")
			}
		}},
		{"RFC 2231 continuations and 100,000 names", params, func(t *testing.T, r *Result) {
			names := r.Parts[1].Names
			if len(names) != 2+dups || !strings.HasPrefix(names[0], "€AbAb") ||
				!strings.HasPrefix(names[1], "utf-8''%E2%82%AC%41b") || names[len(names)-1] != fmt.Sprintf("f%d.exe", dups-1) {
				t.Errorf("%d names, first %.20q, %.20q, last %q", len(names), names[0], names[1], names[len(names)-1])
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			r, _ := unpackMsg(t, debianLimits, []byte(c.msg))
			el := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: %v, %.1f MB allocated", len(c.msg), el, float64(alloc)/(1<<20))
			c.check(t, r)
			// the 100,000 names and their decoded forms take about 30 bytes per byte of header
			if limit := uint64(64 * len(c.msg)); alloc > limit {
				t.Errorf("allocated %d bytes for a %d-byte message, more than %d", alloc, len(c.msg), limit)
			}
			if el > 5*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}
