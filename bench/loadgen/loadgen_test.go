package loadgen

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDataBlock(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\nb\n", "a\r\nb\r\n.\r\n"},
		{"a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"},
		{".\n", "..\r\n.\r\n"},
		{"no final newline", "no final newline\r\n.\r\n"},
	}
	for _, tt := range tests {
		if got := string(DataBlock([]byte(tt.in))); got != tt.want {
			t.Errorf("DataBlock(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// startSink runs Postfix's smtp-sink on a free port with extra options and
// returns its address and a function that returns its output so far.
func startSink(t *testing.T, opts ...string) (string, func() string) {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("smtp-sink (postfix) not found; CI=true makes this a failure")
		}
		t.Skip("smtp-sink (postfix) not found")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	args := append([]string{"-u", "nobody", "-c"}, opts...)
	cmd := exec.Command(bin, append(args, addr, "64")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink did not listen on %s: %s", addr, out.String())
		}
	}
	return addr, out.String
}

func TestRunIntoSmtpSink(t *testing.T) {
	addr, output := startSink(t)
	res, err := Run(Config{
		Addr: addr, Sessions: 3, Count: 20, From: "a@example.org", To: "b@example.com",
		Messages: [][]byte{[]byte("Subject: one\n\nbody\n"), []byte("Subject: two\n\n.dot\n")},
		Pick:     func(i int) int { return i % 2 },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted[0] != 10 || res.Accepted[1] != 10 || res.Discarded[0]+res.Discarded[1] != 0 {
		t.Errorf("result %+v, want 10 and 10 accepted, none discarded", res)
	}
	if len(res.Latencies) != 20 || slices.Min(res.Latencies) <= 0 || res.Percentile(99) != slices.Max(res.Latencies) {
		t.Errorf("latencies %v, p99 %v: want 20, all positive, p99 the largest of 20", res.Latencies, res.Percentile(99))
	}
	// smtp-sink prints running counters; the last one must say 20 messages.
	time.Sleep(100 * time.Millisecond)
	counters := strings.Split(strings.TrimSpace(output()), "\r")
	if last := counters[len(counters)-1]; !strings.HasSuffix(last, "mesg=20") {
		t.Errorf("smtp-sink's last counter %q, want mesg=20", last)
	}
}

// Percentile takes the nearest rank: of 1..100 ms, p50 is 50 ms and p99 is 99 ms.
func TestPercentile(t *testing.T) {
	var r Result
	for i := 100; i >= 1; i-- {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	if p50, p99 := r.Percentile(50), r.Percentile(99); p50 != 50*time.Millisecond || p99 != 99*time.Millisecond {
		t.Errorf("p50 %v, p99 %v; want 50ms, 99ms", p50, p99)
	}
	if got := (Result{}).Percentile(99); got != 0 {
		t.Errorf("no latencies: p99 %v", got)
	}
}

func TestRunStopsOnReject(t *testing.T) {
	addr, _ := startSink(t, "-f", ".")
	_, err := Run(Config{Addr: addr, Sessions: 2, Count: 10, From: "a@example.org", To: "b@example.com",
		Messages: [][]byte{[]byte("Subject: x\n\nx\n")}})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("want %d", 250)) || !strings.Contains(err.Error(), `"5`) {
		t.Fatalf("err = %v, want the 5xx reply after the dot", err)
	}
}
