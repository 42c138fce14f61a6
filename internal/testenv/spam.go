package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// GTUBE is the anti-spam test string: SpamAssassin and rspamd score it as spam.
const GTUBE = `XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X`

// spamEngineStartTimeout bounds the wait for a spam engine to answer: spamd compiles its rule
// set at start-up (about 20 s on a loaded machine), rspamd loads its Lua modules.
const spamEngineStartTimeout = 180 * time.Second

// SpamEngine is a private spamd or rspamd started for a test.
type SpamEngine struct {
	Addr string // 127.0.0.1:port of spamd, of rspamd's normal worker
	// ControllerAddr is rspamd's controller (its /metrics and /stat), "" for spamd.
	ControllerAddr string
	Socket         string // spamd's unix socket, "" for rspamd
	Dir            string
	log            string

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// privateDir makes a short directory (unix socket paths are limited) that the engines' own
// users can read.
func privateDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dir
}

// StartSpamd starts Debian's spamd on a loopback port and a unix socket of its own, with the
// packaged rules, no network tests, no Bayes and no user preferences, and stops it when the
// test ends.
func StartSpamd(t testing.TB) *SpamEngine { t.Helper(); return StartSpamdOn(t, 0) }

// StartSpamdOn is StartSpamd on a given loopback port (0: a free one); amavis's SpamdClient
// knows only 127.0.0.1:783. A fixed port that is busy fails the start.
func StartSpamdOn(t testing.TB, port int) *SpamEngine {
	t.Helper()
	bin := RequireProgram(t, "spamd", "/usr/sbin/spamd")
	dir := privateDir(t, "spamd")
	// spamd reads its site configuration from here instead of /etc/spamassassin: the
	// plugin loaders (*.pre) of the package and our local.cf.
	pres, _ := filepath.Glob("/etc/spamassassin/*.pre")
	for _, p := range pres {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644)
	}
	local := "use_bayes 0\nbayes_auto_learn 0\ndns_available no\nskip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\n"
	if err := os.WriteFile(filepath.Join(dir, "local.cf"), []byte(local), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return startEngine(t, "spamd", func() (*SpamEngine, error) { return startSpamd(bin, dir, port) })
}

// startEngine calls start up to three times (another process may take a free port before the
// engine binds it) and stops the engine when the test ends.
func startEngine(t testing.TB, name string, start func() (*SpamEngine, error)) *SpamEngine {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, err := start()
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if attempt == 3 {
			t.Fatalf("testenv: starting %s: %v", name, err)
		}
	}
}

func startSpamd(bin, dir string, port int) (*SpamEngine, error) {
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	s := &SpamEngine{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Socket: filepath.Join(dir, "spamd.sock"),
		Dir: dir, log: filepath.Join(dir, "spamd.log"), exited: make(chan struct{})}
	os.Remove(s.Socket)
	args := []string{"--listen=" + s.Addr, "--listen=" + s.Socket, "--socketmode=0666",
		"--siteconfigpath=" + dir, "--local", "--nouser-config", "--max-children=2", "--min-children=1",
		"--pidfile=" + filepath.Join(dir, "spamd.pid"), "--syslog=" + s.log}
	if os.Geteuid() == 0 {
		args = append(args, "--username=nobody") // spamd refuses to run its children as root
	}
	ping := func() bool {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "PING SPAMC/1.5\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.Contains(line, "PONG")
	}
	if err := s.run(bin, args, ping); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the engine and polls ready until it says yes, the engine exits, or the start-up
// time is over.
func (s *SpamEngine) run(bin string, args []string, ready func() bool) error {
	s.cmd = exec.Command(bin, args...)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		return err
	}
	go func(cmd *exec.Cmd) { cmd.Wait(); close(s.exited) }(s.cmd)
	deadline := time.Now().Add(spamEngineStartTimeout)
	for !ready() {
		select {
		case <-s.exited:
			return fmt.Errorf("exited during start-up: %s\n%s", strings.TrimSpace(out.String()), readTail(s.log))
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("no answer within %v\n%s", spamEngineStartTimeout, readTail(s.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// StartRspamd starts Debian's rspamd with its packaged configuration, its normal worker and
// controller on loopback ports of their own, no proxy or fuzzy worker, a resolver that answers
// nothing (no network lookups), and its database in a private directory; it stops it when the
// test ends.
func StartRspamd(t testing.TB) *SpamEngine { t.Helper(); return StartRspamdOn(t, 0) }

// StartRspamdOn is StartRspamd with its normal worker on a given loopback port (0: a free one).
func StartRspamdOn(t testing.TB, port int) *SpamEngine {
	t.Helper()
	bin := RequireProgram(t, "rspamd", "/usr/bin/rspamd")
	dir := privateDir(t, "rspamd")
	for _, d := range []string{"db", "run", "local"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		os.Chmod(filepath.Join(dir, d), 0o777)
	}
	return startEngine(t, "rspamd", func() (*SpamEngine, error) { return startRspamd(bin, dir, port) })
}

func startRspamd(bin, dir string, port int) (*SpamEngine, error) {
	var err error
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &SpamEngine{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		ControllerAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(cport)),
		Dir:            dir, log: filepath.Join(dir, "rspamd.log"), exited: make(chan struct{})}
	conf := fmt.Sprintf(`.include "$CONFDIR/common.conf"
options {
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    dns { nameserver = ["127.0.0.1:1"]; timeout = 0.2s; retransmits = 1; }
}
logging {
    type = "file";
    filename = "%s";
    level = "info";
}
worker "normal" {
    bind_socket = "%s";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}
worker "controller" {
    bind_socket = "%s";
    .include "$CONFDIR/worker-controller.inc"
}
`, s.log, s.Addr, s.ControllerAddr)
	confPath := filepath.Join(dir, "rspamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	args := []string{"-f", "-c", confPath, "--var=LOCAL_CONFDIR=" + filepath.Join(dir, "local"),
		"--var=DBDIR=" + filepath.Join(dir, "db"), "--var=RUNDIR=" + filepath.Join(dir, "run"),
		"--var=LOGDIR=" + dir}
	if os.Geteuid() == 0 {
		args = append(args, "-i") // its workers keep root: the test's files stay readable
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	ping := func() bool {
		for _, a := range []string{s.Addr, s.ControllerAddr} {
			resp, err := client.Get("http://" + a + "/ping")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "pong") {
				return false
			}
		}
		return true
	}
	if err := s.run(bin, args, ping); err != nil {
		return nil, err
	}
	return s, nil
}

// Scanned is rspamd's own count of scanned messages (rspamd_scanned_total of its controller's
// /metrics).
func (s *SpamEngine) Scanned(t testing.TB) int {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get("http://" + s.ControllerAddr + "/metrics")
	if err != nil {
		t.Fatalf("testenv: rspamd metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "rspamd_scanned_total "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(n)
			}
		}
	}
	t.Fatalf("testenv: no rspamd_scanned_total in rspamd's metrics:\n%s", b)
	return 0
}

// Log returns the engine's log, for failure messages.
func (s *SpamEngine) Log() string { return readTail(s.log) }

// Stop stops the engine (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. It may
// be called more than once.
func (s *SpamEngine) Stop() {
	s.stopOnce.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
}
