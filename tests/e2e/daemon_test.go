// Package e2e runs our daemon binary behind a private Postfix, wired the way
// sites integrate amavis (contrib/postfix), and checks what a postmaster
// sees: the delivered message, Postfix's log and queue, and our log.
package e2e

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// amavisdBinary builds cmd/amavisd once per test run.
func amavisdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "amavisgo-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "amavisd")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "amavisgo/cmd/amavisd")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/amavisd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	// The tests mostly wait for Postfix and the daemon, so more of them may
	// run at once than there are CPUs (the default), unless -parallel says.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "8")
	}
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// daemonConfig is what a test chooses of our daemon's configuration.
type daemonConfig struct {
	Port        int      // inet_socket_port
	ForwardPort int      // forward_method = smtp:[127.0.0.1]:ForwardPort
	MaxServers  int      // max_servers; 0 keeps the default
	MorePorts   []int    // further inet_socket_port entries
	Extra       []string // more TOML (top-level keys first, then tables)
}

// daemon is our amavisd running in the foreground, as a site runs it:
// started as root, switching to daemon_user nobody.
type daemon struct {
	t      testing.TB
	bin    string
	Dir    string
	Config string
	// confArgs replace "-c Config" when set (several -c: Perl files, then TOML)
	confArgs []string
	LogFile  string
	Addr     string
	cmd      *exec.Cmd
	exited   chan struct{}
}

const daemonHostname = "amavis.example.com"

// newDaemon writes the configuration of a daemon; start runs it.
func newDaemon(t testing.TB, c daemonConfig) *daemon {
	t.Helper()
	bin := amavisdBinary(t)
	// nobody must reach MYHOME, so not below t.TempDir() (mode 0700).
	dir, err := os.MkdirTemp("", "amavisgo-e2e")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		t:       t,
		bin:     bin,
		Dir:     dir,
		Config:  filepath.Join(dir, "amavisd.toml"),
		LogFile: filepath.Join(dir, "amavis.log"),
		Addr:    fmt.Sprintf("127.0.0.1:%d", c.Port),
	}
	var b strings.Builder
	ports := fmt.Sprint(c.Port)
	for _, p := range c.MorePorts {
		ports += fmt.Sprintf(", %d", p)
	}
	fmt.Fprintf(&b, `inet_socket_port = [%s]
inet_socket_bind = ["127.0.0.1"]
MYHOME = %q
TEMPBASE = %q
LOGFILE = %q
log_level = 2
log_recip_templ = "" # Debian's undef: the tests count main log lines
myhostname = %q
mydomain = "example.com"
forward_method = "smtp:[127.0.0.1]:%d"
daemon_user = "nobody"
daemon_group = "nogroup"
`, ports, home, filepath.Join(home, "tmp"), d.LogFile, daemonHostname, c.ForwardPort)
	if c.MaxServers != 0 {
		fmt.Fprintf(&b, "max_servers = %d\n", c.MaxServers)
	}
	for _, l := range c.Extra {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(d.Config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && d.cmd != nil {
			select {
			case <-d.exited:
				t.Logf("amavisd had exited: %s", d.cmd.ProcessState)
			default:
			}
		}
		d.stop()
		if strings.Contains(d.stderr(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in amavisd:\n%s", tail(d.stderr(), 20000))
		}
		if t.Failed() {
			t.Logf("our log (tail):\n%s", tail(d.Log(), 6000))
			t.Logf("our stderr:\n%s", tail(d.stderr(), 3000))
		}
		os.RemoveAll(dir)
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	if err := d.tryStart(); err != nil {
		d.t.Fatal(err)
	}
}

// errPortTaken: another process bound our port between FreePort and our start (ports from
// FreePort are free only when they are picked).
var errPortTaken = errors.New("amavisd: the port was taken by another process")

// tryStart runs the daemon and waits until it listens: its own log says so and the port
// greets. A greeting alone could come from whoever took the port.
func (d *daemon) tryStart() error {
	errFile, err := os.OpenFile(filepath.Join(d.Dir, "stderr"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer errFile.Close()
	starts := strings.Count(d.Log(), " listening on ")
	stderrBefore := len(d.stderr())
	conf := d.confArgs
	if conf == nil {
		conf = []string{"-c", d.Config}
	}
	d.cmd = exec.Command(d.bin, append(conf, "foreground")...)
	d.cmd.Stdout, d.cmd.Stderr = errFile, errFile
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(d.cmd, d.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.exited:
			if strings.Contains(d.stderr()[stderrBefore:], "address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("amavisd exited at start: %s\n%s", d.cmd.ProcessState, d.stderr())
		default:
		}
		if strings.Count(d.Log(), " listening on ") > starts {
			if line, err := testenv.Greeting(d.Addr); err == nil && strings.HasPrefix(line, "220 ") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("amavisd does not greet on %s\n%s", d.Addr, d.stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends sig and waits for the process to end.
func (d *daemon) kill(sig syscall.Signal) {
	d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *daemon) stop() {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.exited:
	default:
		d.kill(syscall.SIGTERM)
	}
}

func (d *daemon) Log() string {
	b, _ := os.ReadFile(d.LogFile)
	return string(b)
}

func (d *daemon) stderr() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "stderr"))
	return string(b)
}

// waitLog polls our log until a line matches re and returns it.
func (d *daemon) waitLog(re *regexp.Regexp, timeout time.Duration) string {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(d.Log(), "\n") {
			if re.MatchString(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no line of our log matches %s after %v", re, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// pipeline is one private Postfix with our daemon as its content filter.
type pipeline struct {
	pf *testenv.Postfix
	am *daemon
}

// startPipeline starts Postfix (amavisfeed over transport, maxproc =
// maxServers) and our daemon between its content_filter and its
// re-injection smtpd.
func startPipeline(t testing.TB, transport string, maxServers int, postfixMain []string, extra ...string) pipeline {
	t.Helper()
	return startPipelineForwarding(t, 0, transport, maxServers, postfixMain, extra...)
}

// startPipelineForwarding is startPipeline with our forward_method pointing at forwardPort
// (0: Postfix's re-injection smtpd). Postfix picks and binds its own ports first (retrying
// when one was taken); if our port was taken before we bound it, both start again on new
// ports, so that Postfix never hands a message to someone else's server.
func startPipelineForwarding(t testing.TB, forwardPort int, transport string, maxServers int, postfixMain []string, extra ...string) pipeline {
	t.Helper()
	for attempt := 1; ; attempt++ {
		amPort := testenv.FreePort(t)
		pf := testenv.StartPostfix(t, testenv.PostfixOptions{
			FilterPort: amPort, Transport: transport, MaxProc: maxServers, MainCF: postfixMain,
		})
		fwd := forwardPort
		if fwd == 0 {
			fwd, _ = strconv.Atoi(portOf(pf.ForwardAddr))
		}
		am := newDaemon(t, daemonConfig{Port: amPort, ForwardPort: fwd, MaxServers: maxServers, Extra: extra})
		err := am.tryStart()
		if err == nil {
			return pipeline{pf: pf, am: am}
		}
		if err != errPortTaken || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("port %d was taken before our daemon bound it: again on new ports", amPort)
		pf.Stop()
	}
}

// message builds a small RFC 5322 message with the given Message-ID.
func message(id, subject, body string) []byte {
	return []byte("From: Sender <sender@example.org>\r\nTo: <rcpt@" + testenv.PostfixDomain + ">\r\n" +
		"Subject: " + subject + "\r\nMessage-ID: " + id + "\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
		strings.ReplaceAll(body, "\n", "\r\n"))
}

var rcpt = []string{"rcpt@" + testenv.PostfixDomain}

const sender = "sender@example.org"
