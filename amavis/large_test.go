package amavis

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"amavisgo/smtp/smtptest"
)

// lineSource produces a message of about size bytes, one 78-byte line at a time, hashing the
// body as it goes, so that the test itself holds no copy of it.
type lineSource struct {
	remaining int
	header    []byte
	line      []byte
	pending   []byte
	body      hash.Hash
	n         int
}

func newLineSource(size int) *lineSource {
	return &lineSource{remaining: size, header: []byte("Subject: big\r\n\r\n"), body: sha256.New()}
}

func (s *lineSource) Read(p []byte) (int, error) {
	if len(s.header) > 0 {
		n := copy(p, s.header)
		s.header = s.header[n:]
		return n, nil
	}
	if len(s.pending) == 0 {
		if s.remaining <= 0 {
			return 0, io.EOF
		}
		s.n++
		// Every 1000th line starts with a dot, so that stuffing is exercised on both sides.
		lead := "x"
		if s.n%1000 == 0 {
			lead = "."
		}
		s.line = fmt.Appendf(s.line[:0], "%s%075d\r\n", lead, s.n)
		s.body.Write(s.line)
		if lead == "." {
			s.pending = append([]byte{'.'}, s.line...) // stuffed on the wire
		} else {
			s.pending = s.line
		}
		s.remaining -= len(s.line)
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// peakHeap samples the heap while f runs.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	return peak.Load()
}

func sendBig(t *testing.T, td *testDaemon, src io.Reader) string {
	c, r := openData(t, td.addr)
	c.SetDeadline(time.Now().Add(120 * time.Second))
	w := bufio.NewWriterSize(c, 64<<10)
	// Hide bufio.Writer's ReadFrom, which would hand src to the connection directly: one
	// write per line of src, several times slower than the daemon under test.
	if _, err := io.Copy(struct{ io.Writer }{w}, src); err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, ".\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	reply := expectPrefix(t, r, "250 2.0.0 from MTA")
	send(t, c, "QUIT")
	expectPrefix(t, r, "221 ")
	return reply
}

// A 50 MB message passes with a heap that does not grow with the message size: the peak
// heap during a 50 MB transfer stays within a few MB of the peak during a 5 MB transfer.
func TestLargeMessageBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB transfer")
	}
	h := hop(t, smtptest.Options{KeepData: 4096})
	td := startDaemon(t, h.Addr, "")
	sendBig(t, td, newLineSource(1<<20)) // warm up: connections, buffers, pools

	// 50 MB with -race too: make test runs with it (about 20 s there, 2 s without).
	var small, large uint64
	sizes := []int{5 << 20, 50 << 20}
	for _, c := range []struct {
		size int
		peak *uint64
	}{{sizes[0], &small}, {sizes[1], &large}} {
		src := newLineSource(c.size)
		*c.peak = peakHeap(func() { sendBig(t, td, src) })
		msgs := h.Msgs()
		got := msgs[len(msgs)-1]
		if want := src.body.Sum(nil); !bytes.Equal(got.BodySHA[:], want) {
			t.Fatalf("%d MB: the body arrived changed", c.size>>20)
		}
		t.Logf("%d MB message: peak heap %.1f MB, next hop got %d bytes", c.size>>20, float64(*c.peak)/(1<<20), got.Size)
	}
	if large > small+8<<20 {
		t.Errorf("peak heap grew with the message: %d MB -> %.1f MB, %d MB -> %.1f MB",
			sizes[0]>>20, float64(small)/(1<<20), sizes[1]>>20, float64(large)/(1<<20))
	}
}

// A 100 000-character body line arrives intact (no line-length limit that could break mail).
func TestLongLineIntact(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	line := strings.Repeat("0123456789", 10000)
	body := "Subject: long line\r\n\r\nbefore\r\n" + line + "\r\nafter\r\n"
	sendBig(t, td, strings.NewReader(body))
	m := h.Msgs()
	if len(m) != 1 || !bytes.Contains(m[0].Data, []byte("\r\nbefore\r\n"+line+"\r\nafter\r\n")) {
		t.Fatalf("the long line did not arrive intact")
	}
}
