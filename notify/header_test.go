package notify

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
)

// A DSN for a message whose Subject is folded into a megabyte of continuation lines is built
// in linear time and memory (issue 22: 9 s and 26 GB allocated), with the Subject unfolded in
// the text and the header returned as it came. The guard is the bytes allocated, which do
// not depend on the machine's load; the time bound is a generous guard against a hang.
func TestDSNHugeFoldedHeader(t *testing.T) {
	c, _ := conf.Parse("b.toml", []byte("myhostname = \"mx.example.com\"\n"))
	n := New(c, nil)
	m := eicar(&c.Policy, conf.D_BOUNCE)
	m.Recipients[0].DSNSuppress = ""
	var h strings.Builder
	h.WriteString(strings.Replace(origHeader, "Subject: test \xc3\xa9\n", "", 1) + "Subject: start\n")
	for h.Len() < 1<<20 {
		h.WriteString("\tfolded words\n")
	}
	m.Header = []byte(h.String())
	plan := PlanDSN(m, false)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	dsn, err := n.DSNMessage(&c.Policy, m, plan)
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes: %v, %.1f MB allocated", len(m.Header), el, float64(alloc)/(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	// unfolded as amavis's header_field macro does: the line breaks go, the tabs stay
	if !strings.Contains(dsn, "\nSubject: start\tfolded words\tfolded words") {
		t.Error("the text lacks the unfolded Subject")
	}
	if !strings.Contains(dsn, "\nSubject: start\n\tfolded words\n\tfolded words\n") {
		t.Error("the returned header lacks the folded Subject")
	}
	if limit := uint64(32 * len(m.Header)); alloc > limit {
		t.Errorf("allocated %d bytes for a %d-byte header, more than %d", alloc, len(m.Header), limit)
	}
	if el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}

// A template whose own header has a field folded over many lines (a site template wrapping
// a long macro value) is composed in linear time and memory: the field's lines were appended
// to its value one by one, copying it once per line.
func TestComposeHugeFoldedField(t *testing.T) {
	var e strings.Builder
	e.WriteString("Subject: start\n")
	for e.Len() < 1<<20 {
		e.WriteString(" folded words\n")
	}
	e.WriteString("\nthe text\n")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	msg := compose(e.String(), [][2]string{{"From", "<a@b>"}, {"To", "<c@d>"}}, "", nil)
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes: %v, %.1f MB allocated", e.Len(), el, float64(alloc)/(1<<20))
	if !strings.Contains(msg, "\nSubject: start folded words folded words") || !strings.HasSuffix(msg, "\n\nthe text\n") {
		t.Errorf("composed %.200q ... %q", msg, msg[len(msg)-100:])
	}
	if limit := uint64(32 * e.Len()); alloc > limit {
		t.Errorf("allocated %d bytes for a %d-byte template, more than %d", alloc, e.Len(), limit)
	}
	if el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}
