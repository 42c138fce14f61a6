package procstat

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, line string
		want       Proc
		wantErr    bool
	}{
		{
			name: "plain",
			line: "4242 (amavisd) S 4241 4242 4242 0 -1 4194560 100 0 0 0 150 50 30 20 20 0 1 0 100 1000 200",
			want: Proc{PID: 4242, PPID: 4241, CPU: 2500 * time.Millisecond},
		},
		{
			name: "name with spaces and parentheses",
			line: "77 (/usr/sbin/amavisd (virgin child)) S 76 76 76 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 6 7",
			want: Proc{PID: 77, PPID: 76, CPU: 100 * time.Millisecond},
		},
		{name: "truncated", line: "1 (init) S 0 1 1", wantErr: true},
		{name: "no name", line: "1 init S 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.line))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	b := []byte("Name:\tx\nVmPeak:\t  9999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t1\n")
	rss, hwm, err := ParseStatus(b)
	if err != nil || rss != 1024*1024 || hwm != 2048*1024 {
		t.Fatalf("got rss=%d hwm=%d err=%v", rss, hwm, err)
	}
	if _, _, err := ParseStatus([]byte("VmRSS:\t12 MB\n")); err == nil {
		t.Fatal("a unit other than kB was accepted")
	}
}

// TestReapedChildCounts checks the property the benchmark relies on: the
// CPU a child burnt stays in the tree's total after the child has exited.
func TestReapedChildCounts(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// The child of sh burns CPU for a fixed amount of work (not of wall time, which a loaded
	// machine would fill with waiting) and exits; sh reaps it and then sleeps, so sh's cutime
	// holds the child's time.
	cmd := exec.Command(sh, "-c", `sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done'; sleep 120`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var got time.Duration
	// A condition, not a time: on a loaded machine the burner may take long to finish.
	for deadline := time.Now().Add(110 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		tree, err := Tree(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(tree) == 2 && comm(tree[1].PID) == "sleep" { // the burner has been reaped
			if got, err = CPU(cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if got == 0 {
		t.Fatal("the burner did not finish within 110 s")
	}
	if got < 50*time.Millisecond {
		t.Fatalf("tree CPU after the burner exited = %v, want >= 50ms", got)
	}
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

func TestSampler(t *testing.T) {
	s := Sample(os.Getpid(), 10*time.Millisecond)
	time.Sleep(30 * time.Millisecond)
	m := s.Stop()
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("peak of this test process: %+v", m)
	}
}

// FuzzParseStat: any line either fails or gives a process whose pid and ppid read back from
// a canonical stat line the same way.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (amavisd) S 4241 4242 4242 0 -1 4194560 100 0 0 0 150 50 30 20 20 0 1 0 100 1000 200"))
	f.Add([]byte("77 (/usr/sbin/amavisd (virgin child)) S 76 76 76 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 6 7"))
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseStat(b)
		if err != nil {
			return
		}
		line := strconv.Itoa(p.PID) + " (x) S " + strconv.Itoa(p.PPID) + " 0 0 0 0 0 0 0 0 0 0 0 0 0"
		if q, err := ParseStat([]byte(line)); err != nil || q.PID != p.PID || q.PPID != p.PPID || q.CPU != 0 {
			t.Errorf("%q gave %+v; its canonical line %q gave %+v, %v", b, p, line, q, err)
		}
	})
}

// FuzzParseStatus: sizes come from kB lines, so they are whole KiB.
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmPeak:\t  9999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t1\n"))
	f.Add([]byte("VmRSS:\t12 MB\n"))
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rss, hwm, err := ParseStatus(b)
		if err == nil && (rss%1024 != 0 || hwm%1024 != 0) {
			t.Errorf("%q gave rss %d, hwm %d: not whole KiB", b, rss, hwm)
		}
	})
}
