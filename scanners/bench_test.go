package scanners

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// benchMessage is a clean message of about size bytes: email.txt and its
// decoded body part in parts/, as the unpacker leaves them.
func benchMessage(b *testing.B, size int) string {
	line := []byte("The quick brown fox jumps over the lazy dog, again and again. 0123456789\n")
	body := bytes.Repeat(line, size/len(line)+1)[:size]
	email := append([]byte("From: <a@example.com>\nTo: <b@example.com>\nSubject: bench\n\n"), body...)
	return msgDir(b, map[string][]byte{"email.txt": email, "parts/p001": body})
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScan measures the latency of one message scan against the local
// clamd, by directory scan (CONTSCAN, MULTISCAN over the unix socket) and
// by INSTREAM (loopback TCP, as a remote clamd would be used).
func BenchmarkScan(b *testing.B) {
	// Without its cache clamd scans each iteration's identical files anew,
	// as it would new mail.
	c := testenv.StartClamd(b, "DisableCache yes")
	for _, size := range []int{2 << 10, 100 << 10} {
		dir := benchMessage(b, size)
		for _, m := range []struct {
			name string
			e    Entry
		}{
			{"CONTSCAN", Entry{Name: "c", Sockets: []string{c.Socket}, Query: "CONTSCAN {}"}},
			{"MULTISCAN", Entry{Name: "c", Sockets: []string{c.Socket}, Query: "MULTISCAN {}"}},
			{"INSTREAM", Entry{Name: "c", Sockets: []string{c.TCPAddr}, Query: "INSTREAM"}},
		} {
			set, err := NewSet([]Entry{m.e}, nil, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/%dKB", m.name, size>>10), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					if rep := set.Scan(context.Background(), dir); rep.Failed || rep.Infected {
						b.Fatalf("%+v", rep)
					}
				}
				// clamd is another process: this is the client's own CPU
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}
