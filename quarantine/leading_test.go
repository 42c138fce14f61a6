package quarantine

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"amavisgo/conf"
)

// The X-Envelope-To of a message to 30,000 recipients, one per continuation line, is read
// back in linear time and memory: the field's lines were appended to a string one by one,
// copying it once per line (9.7 GB allocated, 2.3 s). The guard is the bytes allocated, which do
// not depend on the machine's load; the time bound is a generous guard against a hang.
func TestOpenManyRecipients(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	m := eicarMessage(t)
	m.Recipients = make([]string, 30000)
	for i := range m.Recipients {
		m.Recipients[i] = fmt.Sprintf("r%d@example.com", i)
	}
	if _, err := s.Quarantine(context.Background(), &conf.Default().Policy, Virus, m, m.Blocked); err != nil {
		t.Fatal(err)
	}
	path, err := s.Find(m.MailID, "", false)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	st, err := Open(path)
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%v, %.1f MB allocated", el, float64(alloc)/(1<<20))
	if len(st.Recipients) != 30000 || st.Recipients[29999] != "r29999@example.com" || len(st.Blocked) != 1 {
		t.Errorf("%d recipients, last %q, blocked %q", len(st.Recipients), st.Recipients[len(st.Recipients)-1], st.Blocked)
	}
	if limit := uint64(32 << 20); alloc > limit {
		t.Errorf("allocated %d bytes, more than %d", alloc, limit)
	}
	if el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}
