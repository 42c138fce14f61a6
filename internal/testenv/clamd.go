// Package testenv starts the real external programs that tests talk to.
package testenv

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EICAR is the standard anti-virus test string.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// eicarSigName is the name given to EICAR in the private database; clamd
// appends ".UNOFFICIAL" because the database is unsigned.
const eicarSigName = "Eicar-Test-Signature"

// clamdStartTimeout bounds the wait for PONG; with a one-signature
// database clamd answers within a few tens of milliseconds.
const clamdStartTimeout = 30 * time.Second

// Clamd is a private clamd started for a test.
type Clamd struct {
	Socket    string // unix socket path
	TCPAddr   string // 127.0.0.1:port
	VirusName string // the name clamd reports for EICAR, e.g. Eicar-Test-Signature.UNOFFICIAL
	Dir       string // holds clamd.conf, clamd.log and db/
	Version   string // clamd's VERSION reply

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// RequireProgram returns the path of an external program a test needs. When
// it is missing the test fails if CI=true, otherwise it is skipped.
func RequireProgram(t testing.TB, name string, alternatives ...string) string {
	t.Helper()
	for _, n := range append([]string{name}, alternatives...) {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		if filepath.IsAbs(n) {
			if fi, err := os.Stat(n); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return n
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: %s not found (install it; CI=true makes this a failure)", name)
	}
	t.Skipf("testenv: %s not found; skipping (set CI=true to make this a failure)", name)
	return ""
}

// StartClamd starts a clamd in the foreground with a private database that
// holds only the EICAR signature, listening on its own unix socket and on a
// free loopback port, and stops it when the test ends. extraConf lines are
// clamd.conf lines that replace the default of the same option or add one,
// e.g. "StreamMaxLength 1K".
func StartClamd(t testing.TB, extraConf ...string) *Clamd {
	t.Helper()
	bin := RequireProgram(t, "clamd", "/usr/sbin/clamd")

	// A unix socket path must fit in 108 bytes: t.TempDir() names can be
	// longer, so use a short directory of our own.
	dir, err := os.MkdirTemp("", "clamd")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ndb := fmt.Sprintf("%s:0:*:%s\n", eicarSigName, hex.EncodeToString([]byte(EICAR)))
	if err := os.WriteFile(filepath.Join(dir, "db", "test.ndb"), []byte(ndb), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	// The free port is found by listening on :0 and closing; another
	// process may take it before clamd binds, so a failed start is retried.
	var c *Clamd
	for attempt := 1; ; attempt++ {
		c, err = startClamd(bin, dir, extraConf)
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("testenv: starting clamd: %v", err)
		}
	}
	t.Cleanup(c.Stop)
	return c
}

func startClamd(bin, dir string, extraConf []string) (*Clamd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &Clamd{
		Socket:  filepath.Join(dir, "clamd.sock"),
		TCPAddr: net.JoinHostPort("127.0.0.1", fmt.Sprint(port)),
		Dir:     dir,
		exited:  make(chan struct{}),
	}
	logPath := filepath.Join(dir, "clamd.log")
	os.Remove(logPath)
	// No User option: clamd keeps the uid it is started with (root in CI),
	// so it can read the tests' temporary directories (mode 0700).
	conf := []string{
		"DatabaseDirectory " + filepath.Join(dir, "db"),
		"LocalSocket " + c.Socket,
		"FixStaleSocket yes",
		fmt.Sprintf("TCPSocket %d", port),
		"TCPAddr 127.0.0.1",
		"Foreground yes",
		"LogFile " + logPath,
		"LogTime yes",
		"LogClean no",
		"Bytecode no", // no bytecode.cvd to load: start-up stays fast
		"DetectPUA no",
		"SelfCheck 0", // the database never changes during a test
		"MaxThreads 8",
		"MaxConnectionQueueLength 32",
		"ReadTimeout 10",
		"CommandReadTimeout 5",
		"IdleTimeout 10",
		"StreamMaxLength 10M",
		"MaxScanSize 20M",
		"MaxFileSize 10M",
		"MaxScanTime 20000",
		"AllowAllMatchScan yes",
	}
	// clamd takes the first occurrence of an option: an extra line replaces
	// the default of the same name.
	for _, extra := range extraConf {
		key, _, _ := strings.Cut(extra, " ")
		i := slices.IndexFunc(conf, func(l string) bool { return strings.HasPrefix(l, key+" ") })
		if i >= 0 {
			conf[i] = extra
		} else {
			conf = append(conf, extra)
		}
	}
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}

	cmd := exec.Command(bin, "--foreground", "--config-file="+confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c.cmd = cmd
	go func() { cmd.Wait(); close(c.exited) }()

	deadline := time.Now().Add(clamdStartTimeout)
	for {
		select {
		case <-c.exited:
			return nil, fmt.Errorf("clamd exited during start-up: %s\n%s", strings.TrimSpace(out.String()), readTail(logPath))
		default:
		}
		if reply, err := clamdCommand("unix", c.Socket, "PING"); err == nil && reply == "PONG" {
			break
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("no PONG from clamd within %v\n%s", clamdStartTimeout, readTail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if reply, err := clamdCommand("tcp", c.TCPAddr, "PING"); err != nil || reply != "PONG" {
		c.Stop()
		return nil, fmt.Errorf("clamd on %s: PING got %q, %v", c.TCPAddr, reply, err)
	}
	c.Version, _ = clamdCommand("unix", c.Socket, "VERSION")

	// Learn the virus name the way tests will see it.
	probe := filepath.Join(dir, "probe")
	if err := os.Mkdir(probe, 0o755); err == nil {
		os.WriteFile(filepath.Join(probe, "eicar"), []byte(EICAR), 0o644)
	}
	reply, err := clamdCommand("unix", c.Socket, "SCAN "+filepath.Join(probe, "eicar"))
	name, found := strings.CutSuffix(reply, " FOUND")
	if err != nil || !found {
		c.Stop()
		return nil, fmt.Errorf("clamd did not detect EICAR: %q, %v", reply, err)
	}
	c.VirusName = name[strings.LastIndex(name, ": ")+2:]
	os.RemoveAll(probe)
	return c, nil
}

// Stop stops clamd (SIGTERM, then SIGKILL after 5 s) and waits for it to exit.
// It may be called more than once.
func (c *Clamd) Stop() {
	c.stopOnce.Do(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
}

// Process is the running clamd, for tests that pause it (SIGSTOP) to hold a scan.
func (c *Clamd) Process() *os.Process { return c.cmd.Process }

// Log returns clamd's log file, for failure messages.
func (c *Clamd) Log() string { return readTail(filepath.Join(c.Dir, "clamd.log")) }

// clamdCommand sends one newline-terminated command and returns the first
// line of the reply. It is deliberately independent of package scanners so
// that the fixture does not test the client with itself.
func clamdCommand(network, addr, cmd string) (string, error) {
	conn, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("n" + cmd + "\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\n"), nil
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
