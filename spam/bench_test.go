package spam

import (
	"context"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// processCPU is this process's user+system CPU time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCheck asks the engine about a 2 KB message b.N times and reports our own CPU per check
// (the client's share; the engine's runs in its own processes).
func benchCheck(b *testing.B, e Entry) {
	s, err := NewSet([]Entry{e}, 0)
	if err != nil {
		b.Fatal(err)
	}
	body := ""
	for len(body) < 2000 {
		body += "the quarterly figures are attached please review them before the meeting\n"
	}
	m := message(b, hamHeader, body)
	m.ClientAddr, m.Helo = "127.0.0.1", "" // a local client: rspamd makes no DNS lookups
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU(b)
	for range b.N {
		if rep := s.Check(ctx, m); rep.Failed {
			b.Fatal(rep.FailReason())
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu).Microseconds())/float64(b.N), "client-cpu-µs/op")
}

func BenchmarkRspamdCheck(b *testing.B) {
	rs := testenv.StartRspamd(b)
	benchCheck(b, Entry{Name: "r", Type: "rspamd", URL: "http://" + rs.Addr + "/checkv2"})
}

func BenchmarkSpamdCheck(b *testing.B) {
	sd := testenv.StartSpamd(b)
	benchCheck(b, Entry{Name: "s", Type: "spamd", Address: sd.Addr})
}
