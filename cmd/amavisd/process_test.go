package main

// Process-level tests: the binary is built once and run as a process, as an operator runs it.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
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

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"

	"amavisgo/amavis"
	"amavisgo/delivery/deliverytest"
	"amavisgo/internal/testenv"
)

var amavisdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "amavisd-bin-")
	if err != nil {
		panic(err)
	}
	amavisdBin = filepath.Join(dir, "amavisd")
	out, err := exec.Command("go", "build", "-o", amavisdBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building amavisd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's directory, configuration file and ports.
type env struct {
	t      *testing.T
	dir    string
	file   string
	port   int
	addr   string
	notify *net.UnixConn
}

// requireRoot: tests of the switch to daemon_user need root; CI runs as root, so there its
// absence is a failure, not a skip.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs root (the daemon binds, then switches to daemon_user)")
		}
		t.Skip("needs root")
	}
}

// newEnv writes a configuration: a private MYHOME, a free port, the given next hop, and extra
// TOML lines (which must not repeat the keys written here).
func newEnv(t *testing.T, nextHop string, extra ...string) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "amavisd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // the daemon user must reach TEMPBASE below it
	e := &env{t: t, dir: dir, file: filepath.Join(dir, "amavisd.toml"), port: testenv.FreePort(t)}
	e.addr = fmt.Sprintf("127.0.0.1:%d", e.port)
	e.writeConfig(nextHop, extra...)
	return e
}

func (e *env) writeConfig(nextHop string, extra ...string) {
	e.t.Helper()
	text := fmt.Sprintf(`MYHOME = %q
TEMPBASE = %q
pid_file = %q
LOGFILE = %q
inet_socket_port = [%d]
inet_socket_bind = ["127.0.0.1"]
forward_method = %q
child_timeout = 60
`, e.dir, filepath.Join(e.dir, "tmp"), e.pidFile(), filepath.Join(e.dir, "amavisd.log"), e.port, nextHop)
	text += strings.Join(extra, "\n") + "\n"
	if err := os.WriteFile(e.file, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) pidFile() string { return filepath.Join(e.dir, "amavisd.pid") }

// amavisd runs the binary to completion with this env's configuration.
func (e *env) amavisd(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	cmd := exec.Command(amavisdBin, append([]string{"-c", e.file}, args...)...)
	var o, er bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &er
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		e.t.Fatalf("amavisd %v: %v", args, err)
	}
	return o.String(), er.String(), code
}

// listenNotify opens the socket systemd would give the daemon in NOTIFY_SOCKET.
func (e *env) listenNotify() string {
	e.t.Helper()
	path := filepath.Join(e.dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	os.Chmod(path, 0o777) // as systemd's: the daemon sends after dropping privileges
	e.notify = c
	return path
}

// waitNotify reads sd_notify messages until one contains want.
func (e *env) waitNotify(want string) string {
	e.t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(20 * time.Second)
	for {
		e.notify.SetReadDeadline(deadline)
		n, err := e.notify.Read(buf)
		if err != nil {
			e.t.Fatalf("waiting for sd_notify %q: %v", want, err)
		}
		if msg := string(buf[:n]); strings.Contains(msg, want) {
			return msg
		}
	}
}

// daemon is a foreground amavisd started by a test.
type daemon struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
}

func (d *daemon) Stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

type lockedWriter struct{ d *daemon }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.d.stderr.Write(p)
}

// foreground starts `amavisd -c FILE foreground` and waits for READY=1 on its notify socket.
func (e *env) foreground(args ...string) *daemon {
	e.t.Helper()
	sock := e.listenNotify()
	d := &daemon{done: make(chan struct{})}
	d.cmd = exec.Command(amavisdBin, append(append([]string{"-c", e.file}, args...), "foreground")...)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.cmd.Stderr = lockedWriter{d}
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	e.t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
	})
	ready := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		e.notify.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			n, err := e.notify.Read(buf)
			if err != nil {
				ready <- ""
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				ready <- string(buf[:n])
				return
			}
		}
	}()
	select {
	case msg := <-ready:
		if msg == "" {
			e.t.Fatalf("no READY=1 from the daemon; stderr:\n%s", d.Stderr())
		}
		if want := fmt.Sprintf("MAINPID=%d", d.cmd.Process.Pid); !strings.Contains(msg, want) {
			e.t.Errorf("READY message %q lacks %s", msg, want)
		}
	case <-d.done:
		e.t.Fatalf("the daemon exited during start-up: %v\n%s", d.cmd.ProcessState, d.Stderr())
	}
	return d
}

// waitLog waits until LOGFILE holds a line ending in want (the daemon writes it after its
// sd_notify message may have reached us).
func (e *env) waitLog(want string) {
	e.t.Helper()
	re := regexp.MustCompile(`(?m)^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ \S+\[\d+\]: ` + regexp.QuoteMeta(want) + `$`)
	for deadline := time.Now().Add(10 * time.Second); ; {
		log, _ := os.ReadFile(filepath.Join(e.dir, "amavisd.log"))
		if re.Match(log) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("LOGFILE lacks a line %s:\n%s", re, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		t.Fatalf("the daemon did not exit within %v", timeout)
	}
}

// client is an SMTP conversation step by step, so that a test can stop in the middle of DATA.
type client struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func dial(t *testing.T, addr string) (*client, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := &client{t: t, conn: conn, tp: textproto.NewConn(conn)}
	t.Cleanup(func() { conn.Close() })
	return c, c.reply()
}

// reply reads one (possibly multi-line) reply and returns it as "code text".
func (c *client) reply() string {
	c.t.Helper()
	code, text, err := c.tp.ReadResponse(0)
	if err != nil {
		if _, ok := err.(*textproto.Error); !ok {
			return "ERROR " + err.Error()
		}
	}
	return fmt.Sprintf("%d %s", code, text)
}

func (c *client) cmd(line string) string {
	c.t.Helper()
	if err := c.tp.PrintfLine("%s", line); err != nil {
		return "ERROR " + err.Error()
	}
	return c.reply()
}

// startData opens a transaction and sends the message's first half.
func (c *client) startData(msgID string) {
	c.t.Helper()
	for _, s := range []struct{ cmd, want string }{
		{"EHLO client.test", "250"}, {"MAIL FROM:<sender@example.org>", "250"},
		{"RCPT TO:<rcpt@example.com>", "250"}, {"DATA", "354"},
	} {
		if r := c.cmd(s.cmd); !strings.HasPrefix(r, s.want) {
			c.t.Fatalf("%s: %s", s.cmd, r)
		}
	}
	fmt.Fprintf(c.conn, "From: <sender@example.org>\r\nTo: <rcpt@example.com>\r\nMessage-ID: <%s>\r\nSubject: in flight\r\n\r\nfirst half\r\n", msgID)
}

// finishData sends the rest and the final dot and returns the reply.
func (c *client) finishData() string {
	c.t.Helper()
	fmt.Fprintf(c.conn, "second half\r\n.\r\n")
	return c.reply()
}

func greetingOf(t *testing.T, addr string) string {
	t.Helper()
	c, g := dial(t, addr)
	c.cmd("QUIT")
	return g
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(amavisdBin, "-V").Output()
	if err != nil || string(out) != amavis.Version+"\n" {
		t.Errorf("-V printed %q (%v), want %q", out, err, amavis.Version+"\n")
	}
}

// TestUnknownVerb: a mistyped verb is named as such, even where the configuration file is
// missing, and a second verb is a usage error; -h shows the usage and succeeds.
func TestUnknownVerb(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"-c", "/nonexistent/amavisd.toml", "relaod"}, 1, "amavisd: " + amavis.Version + ": Unknown command line parameter: relaod\n"},
		{[]string{"start", "stop"}, 2, "usage: amavisd "},
		{[]string{"-h"}, 0, "usage: amavisd "},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(amavisdBin, tc.args...)
		cmd.Stderr = &stderr
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.HasPrefix(stderr.String(), tc.stderr) {
			t.Errorf("amavisd %q: exit %d, %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
}

func TestConfigtest(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025")
	if out, errOut, code := e.amavisd("configtest"); code != 0 || out != "amavisd: configuration "+e.file+" is OK\n" {
		t.Errorf("good file: exit %d, %q %q", code, out, errOut)
	}
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"wrong key", "max_server = 3", `:10: key "max_server": unknown setting`},
		{"wrong key in a bank", "[policy_bank.MYNETS]\nbogus = 1", `:11: key "policy_bank.MYNETS.bogus": unknown setting in policy bank MYNETS`},
		{"wrong type", "max_servers = \"two\"", `:10: key "max_servers": incompatible types`},
		{"no such user", "daemon_user = \"no-such-user-here\"", `:10: key "daemon_user": no such user "no-such-user-here"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.writeConfig("smtp:[127.0.0.1]:10025", "", tc.extra)
			out, errOut, code := e.amavisd("configtest")
			if want := "amavisd: " + e.file + tc.want; code != exConfig || out != "" || !strings.HasPrefix(errOut, want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 78 and %q", code, out, errOut, want)
			}
		})
	}
}

// configtest reads the notification templates as the daemon does at start: a call of a
// macro amavis does not have is reported with the template's file and line.
func TestConfigtestTemplates(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025")
	templ := filepath.Join(e.dir, "admin.txt")
	os.WriteFile(templ, []byte("Subject: %V\n\nFrom: [:header_field|From]\nTo: [:header_feild|To]\n"), 0o644)
	e.writeConfig("smtp:[127.0.0.1]:10025", "", fmt.Sprintf("notify_virus_admin_templ = %q", templ))
	out, errOut, code := e.amavisd("configtest")
	// 78 (EX_CONFIG): a template is part of the configuration, as a broken file is
	if want := templ + `:4: unknown macro "header_feild"`; code != 78 || out != "" || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 78 and %q", code, out, errOut, want)
	}
}

func TestShowconfigLoadsAgain(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "[policy_bank.MYNETS]", "originating = true")
	out, errOut, code := e.amavisd("-m", "7", "-d", "3", "showconfig")
	if code != 0 {
		t.Fatalf("showconfig: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"\nmax_servers = 7\n", "\nlog_level = 3\n", fmt.Sprintf("\ninet_socket_port = [\"%d\"]\n", e.port),
		"\n[policy_bank.MYNETS]\noriginating = true\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("showconfig lacks %q", want)
		}
	}
	shown := filepath.Join(e.dir, "shown.toml")
	os.WriteFile(shown, []byte(out), 0o644)
	if o, er, code := (&env{t: t, file: shown}).amavisd("configtest"); code != 0 {
		t.Errorf("showconfig's output does not load: %s%s", o, er)
	}
}

func TestStartStop(t *testing.T) {
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String(), "allow_run_as_root = true")
	begin := time.Now()
	if out, errOut, code := e.amavisd("start"); code != 0 || out != "" || errOut != "" {
		t.Fatalf("start: exit %d, %q %q", code, out, errOut)
	}
	b, err := os.ReadFile(e.pidFile())
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	// start returns once the daemon serves: the greeting comes at once.
	if g := greetingOf(t, e.addr); !strings.HasPrefix(g, "220 [127.0.0.1] ESMTP amavis service ready") {
		t.Errorf("greeting %q", g)
	}
	if sid, _ := unix.Getsid(pid); sid != pid {
		t.Errorf("the daemon (pid %d) is in session %d, want its own session", pid, sid)
	}
	t.Logf("start took %v", time.Since(begin))

	_, errOut, code := e.amavisd("start")
	if want := fmt.Sprintf("amavisd: The amavisd daemon is already running, PID: [%d]\n", pid); code != 1 || errOut != want {
		t.Errorf("second start: exit %d, %q, want %q", code, errOut, want)
	}

	// restart: the old daemon goes, a new one serves.
	out, errOut, code := e.amavisd("restart")
	if want := fmt.Sprintf("Daemon [%d] terminated by SIGTERM\n", pid); code != 0 || out != want {
		t.Errorf("restart: exit %d, %q %q, want %q", code, out, errOut, want)
	}
	b, _ = os.ReadFile(e.pidFile())
	if newPid, _ := strconv.Atoi(strings.TrimSpace(string(b))); newPid == pid || newPid == 0 || gone(newPid) {
		t.Errorf("after restart the pid file names %q (old daemon %d)", b, pid)
	} else {
		pid = newPid
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	}
	if g := greetingOf(t, e.addr); !strings.HasPrefix(g, "220 ") {
		t.Errorf("greeting after restart %q", g)
	}

	out, errOut, code = e.amavisd("stop")
	if want := fmt.Sprintf("Daemon [%d] terminated by SIGTERM\n", pid); code != 0 || out != want {
		t.Errorf("stop: exit %d, %q %q, want %q", code, out, errOut, want)
	}
	if _, err := os.Stat(e.pidFile()); !os.IsNotExist(err) {
		t.Errorf("pid file still there after stop: %v", err)
	}
	if !gone(pid) {
		t.Errorf("process %d still runs", pid)
	}
	_, errOut, code = e.amavisd("stop")
	if code != 1 || !strings.HasPrefix(errOut, "amavisd: The amavisd daemon is apparently not running, cannot stop it (no PID file") {
		t.Errorf("stop without daemon: exit %d, %q", code, errOut)
	}
}

func TestStartReportsFailure(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true")
	busy, err := net.Listen("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, errOut, code := e.amavisd("start")
	if code != 1 || !strings.Contains(errOut, "address already in use") {
		t.Errorf("start on a busy port: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(e.pidFile()); !os.IsNotExist(err) {
		t.Errorf("a failed start left its pid file: %v", err)
	}
}

func TestRefusesToRunAsRoot(t *testing.T) {
	requireRoot(t)
	e := newEnv(t, "smtp:[127.0.0.1]:10025")
	_, errOut, code := e.amavisd("foreground")
	if code != 1 || !strings.Contains(errOut, "Running as EUID 0 (root), ABORTING!") || !strings.Contains(errOut, "SECURITY PROBLEM, ABORTING") {
		t.Errorf("exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(e.pidFile()); !os.IsNotExist(err) {
		t.Errorf("the refused daemon left its pid file: %v", err)
	}
}

func TestDropsPrivileges(t *testing.T) {
	requireRoot(t)
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String(), `daemon_user = "nobody"`, `daemon_group = "nogroup"`,
		fmt.Sprintf("QUARANTINEDIR = %q", "QDIR"))
	e.writeConfig(next.Method.String(), `daemon_user = "nobody"`, `daemon_group = "nogroup"`,
		fmt.Sprintf("QUARANTINEDIR = %q", filepath.Join(e.dir, "virusmails")))
	d := e.foreground()
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	for _, want := range []string{"\nUmask:\t0027\n", "\nUid:\t65534\t65534\t65534\t65534\n", "\nGid:\t65534\t65534\t65534\t65534\n", "\nGroups:\t65534 \n"} {
		if !bytes.Contains(status, []byte(want)) {
			t.Errorf("/proc/PID/status lacks %q:\n%s", want, status)
		}
	}
	for _, dir := range []string{"tmp", "virusmails"} {
		fi, err := os.Stat(filepath.Join(e.dir, dir))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o750 || st.Uid != 65534 {
			t.Errorf("%s: mode %04o owner %d, want 0750 owned by nobody", dir, fi.Mode().Perm(), st.Uid)
		}
	}
	// The dropped daemon still does its job: a message goes through.
	c, _ := dial(t, e.addr)
	c.startData("dropped@test")
	if r := c.finishData(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Errorf("message through the unprivileged daemon: %s\n%s", r, d.Stderr())
	}
}

func TestReloadWithMessageInFlight(t *testing.T) {
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String(), "allow_run_as_root = true", `smtpd_greeting_banner = "first ${helo-name}"`,
		`X_HEADER_LINE = "first config"`)
	d := e.foreground()

	inFlight, g := dial(t, e.addr)
	if g != "220 first [127.0.0.1]" {
		t.Fatalf("greeting %q", g)
	}
	inFlight.startData("inflight@test")

	e.writeConfig(next.Method.String(), "allow_run_as_root = true", `smtpd_greeting_banner = "second ${helo-name}"`,
		`X_HEADER_LINE = "second config"`)
	if out, errOut, code := e.amavisd("reload"); code != 0 {
		t.Fatalf("reload: exit %d %q %q", code, out, errOut)
	}
	if msg := e.waitNotify("RELOADING=1"); !regexp.MustCompile(`MONOTONIC_USEC=\d+`).MatchString(msg) {
		t.Errorf("RELOADING message %q lacks MONOTONIC_USEC", msg)
	}
	e.waitNotify("READY=1")

	if g := greetingOf(t, e.addr); g != "220 second [127.0.0.1]" {
		t.Errorf("a new connection after the reload got %q, want the new banner", g)
	}
	if r := inFlight.finishData(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Fatalf("the message in flight during the reload: %s\n%s", r, d.Stderr())
	}
	// The message in flight finishes under the configuration it began with.
	if m := next.Wait(t, 0); !bytes.Contains(m.Data, []byte("Message-ID: <inflight@test>")) || !bytes.Contains(m.Data, []byte("second half")) ||
		!bytes.Contains(m.Data, []byte("X-Virus-Scanned: first config\r\n")) {
		t.Errorf("the next hop got:\n%q", m.Data)
	}
	// The connection survived the reload and still works.
	if r := inFlight.cmd("RSET"); r != "250 2.0.0 Ok RSET" {
		t.Errorf("RSET after the reload: %s", r)
	}
	// A new connection's message is checked under the new configuration.
	c, _ := dial(t, e.addr)
	c.startData("after-reload@test")
	if r := c.finishData(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Fatalf("a message after the reload: %s", r)
	}
	if m := next.Wait(t, 1); !bytes.Contains(m.Data, []byte("Message-ID: <after-reload@test>")) ||
		!bytes.Contains(m.Data, []byte("X-Virus-Scanned: second config\r\n")) {
		t.Errorf("the next hop got after the reload:\n%s", m.Data)
	}
	if r := inFlight.cmd("QUIT"); !strings.HasPrefix(r, "221 ") {
		t.Errorf("QUIT: %s", r)
	}
}

// TestReloadUnusableTempbase: a reload that points TEMPBASE where the daemon cannot write is
// refused, so that mail does not start failing with 451.
func TestReloadUnusableTempbase(t *testing.T) {
	requireRoot(t)
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String(), `daemon_user = "nobody"`)
	d := e.foreground()
	rootOnly := filepath.Join(e.dir, "rootonly")
	os.Mkdir(rootOnly, 0o755)
	e.writeConfig(next.Method.String(), `daemon_user = "nobody"`)
	text, _ := os.ReadFile(e.file)
	os.WriteFile(e.file, []byte(strings.Replace(string(text), filepath.Join(e.dir, "tmp"), rootOnly, 1)), 0o644)
	syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP)
	e.waitNotify("RELOADING=1")
	e.waitNotify("READY=1")
	e.waitLog("(!)Rejecting reload, some config files unreadable or erroneous: TEMPBASE " + rootOnly + ": is not writable by this user (UID 65534): owner UID 0, group GID 0, mode 0755; chown it to the daemon user")
	c, _ := dial(t, e.addr)
	c.startData("after-refused-tempbase@test")
	if r := c.finishData(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Errorf("a message after the refused reload: %s", r)
	}
}

func TestReloadBrokenConfigKeepsOld(t *testing.T) {
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String(), "allow_run_as_root = true", `smtpd_greeting_banner = "first ${helo-name}"`)
	d := e.foreground()
	e.writeConfig(next.Method.String(), "allow_run_as_root = true", `smtpd_greeting_banner = "second ${helo-name}"`, "max_server = 3")
	syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP)
	e.waitNotify("RELOADING=1")
	e.waitNotify("READY=1")
	e.waitLog(`(!)Rejecting reload, some config files unreadable or erroneous: ` + e.file + `:11: key "max_server": unknown setting`)
	if g := greetingOf(t, e.addr); g != "220 first [127.0.0.1]" {
		t.Errorf("after a refused reload the greeting is %q, want the old one", g)
	}
	c, _ := dial(t, e.addr)
	c.startData("after-refused-reload@test")
	if r := c.finishData(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Errorf("a message after a refused reload: %s", r)
	}
}

// gatedNextHop is a next hop that holds each message's final reply until released, so that a
// test can stop the daemon while it forwards.
type gatedNextHop struct {
	addr     string
	arrived  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	received [][]byte
}

func startGatedNextHop(t *testing.T) *gatedNextHop {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedNextHop{addr: l.Addr().String(), arrived: make(chan struct{}, 10), release: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &gatedSession{g: g}, nil }))
	srv.Domain = "gated.test"
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return g
}

func (g *gatedNextHop) method() string { return "smtp:[" + strings.Replace(g.addr, ":", "]:", 1) }

type gatedSession struct{ g *gatedNextHop }

func (s *gatedSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *gatedSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *gatedSession) Reset()                               {}
func (s *gatedSession) Logout() error                        { return nil }
func (s *gatedSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.g.arrived <- struct{}{}
	<-s.g.release
	s.g.mu.Lock()
	s.g.received = append(s.g.received, b)
	s.g.mu.Unlock()
	return nil
}

// TestStopWithMessageInFlight: a message being forwarded when SIGTERM comes is finished and
// acknowledged only after the next hop took it; a message still being received gets its
// reply when the client completes it (or a 4xx), never a 250 without delivery; new
// connections are refused.
func TestStopWithMessageInFlight(t *testing.T) {
	next := startGatedNextHop(t)
	e := newEnv(t, next.method(), "allow_run_as_root = true", "max_servers = 5")
	d := e.foreground()

	forwarding, _ := dial(t, e.addr)
	forwarding.startData("forwarding@test")
	fmt.Fprintf(forwarding.conn, "second half\r\n.\r\n")
	<-next.arrived // the daemon is now waiting for the next hop

	receiving, _ := dial(t, e.addr)
	receiving.startData("receiving@test")
	idle, _ := dial(t, e.addr)
	if r := idle.cmd("EHLO idle.test"); !strings.HasPrefix(r, "250") {
		t.Fatalf("EHLO: %s", r)
	}
	time.Sleep(100 * time.Millisecond) // let the daemon read the first half

	stopped := make(chan string, 1)
	go func() {
		out, errOut, _ := e.amavisd("stop")
		stopped <- out + errOut
	}()
	e.waitNotify("STOPPING=1")
	// The listener closes: new clients are refused (Postfix retries later).
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the daemon still accepts connections 5 s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := idle.reply(); r != "421 4.3.2 Service shutting down, closing channel" {
		t.Errorf("an idle session at SIGTERM got %q", r)
	}
	close(next.release)
	if r := forwarding.reply(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Errorf("the message being forwarded at SIGTERM: %s", r)
	}
	// Its session takes no new transaction: 421 follows the reply at once.
	if r := forwarding.reply(); r != "421 4.3.2 Service shutting down, closing channel" {
		t.Errorf("after its last reply during shutdown the session got %q, want the 421", r)
	}
	r := receiving.finishData()
	next.mu.Lock()
	delivered := len(next.received)
	next.mu.Unlock()
	switch {
	case strings.HasPrefix(r, "250") && delivered != 2:
		t.Errorf("the message received during shutdown was acknowledged (%s) but the next hop has %d messages", r, delivered)
	case !strings.HasPrefix(r, "250") && !strings.HasPrefix(r, "4") && !strings.HasPrefix(r, "ERROR"):
		t.Errorf("the message received during shutdown got %q: want its 250 after delivery, or a 4xx", r)
	}
	t.Logf("message completed during shutdown: %s (next hop has %d)", r, delivered)

	select {
	case out := <-stopped:
		if want := fmt.Sprintf("Daemon [%d] terminated by SIGTERM\n", d.cmd.Process.Pid); out != want {
			t.Errorf("stop said %q, want %q", out, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("stop did not return; daemon stderr:\n%s", d.Stderr())
	}
	d.wait(t, 5*time.Second)
	if _, err := os.Stat(e.pidFile()); !os.IsNotExist(err) {
		t.Errorf("pid file still there after stop: %v", err)
	}
}

func TestRefusesWritableConfig(t *testing.T) {
	requireRoot(t)
	e := newEnv(t, "smtp:[127.0.0.1]:10025", `daemon_user = "nobody"`)
	os.Chown(e.file, 65534, 65534)
	_, errOut, code := e.amavisd("foreground")
	if want := fmt.Sprintf("amavisd: Config file %q is writable, UID 65534, EUID 65534, EGID 65534\nSECURITY PROBLEM, ABORTING\n", e.file); code != 1 || !strings.HasSuffix(errOut, want) {
		t.Errorf("exit %d, %q, want %q", code, errOut, want)
	}
}

// A configuration in a directory the daemon user can write could be replaced by a rename: the
// start is refused as amavis refuses it; in a sticky directory (/tmp) a root-owned file cannot
// be renamed by the daemon user, and the start goes on.
func TestRefusesConfigInWritableDir(t *testing.T) {
	requireRoot(t)
	e := newEnv(t, "smtp:[127.0.0.1]:10025", `daemon_user = "nobody"`)
	os.Chown(e.dir, 65534, 65534)
	_, errOut, code := e.amavisd("foreground")
	if want := fmt.Sprintf("amavisd: Directory of a config file %q is writable, UID 65534, EUID 65534, EGID 65534\nSECURITY PROBLEM, ABORTING\n", e.file); code != 1 || !strings.HasSuffix(errOut, want) {
		t.Errorf("exit %d, %q, want %q", code, errOut, want)
	}

	os.Chown(e.dir, 0, 0)
	os.Chmod(e.dir, os.ModeSticky|0o777)
	d := e.foreground()
	if g := greetingOf(t, e.addr); !strings.HasPrefix(g, "220 ") {
		t.Errorf("config in a sticky directory: greeting %q; stderr:\n%s", g, d.Stderr())
	}
}

func TestPortOption(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true")
	other := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	e.foreground("-p", other, "-m", "1")
	if g := greetingOf(t, other); !strings.HasPrefix(g, "220 [127.0.0.1] ESMTP amavis service ready") {
		t.Errorf("greeting on the -p socket: %q", g)
	}
	if c, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("the configured port %s is listening although -p replaced it", e.addr)
	}
	// -m 1: while one session is open, a second client waits in the listen queue ungreeted.
	first, _ := dial(t, other)
	second, err := net.DialTimeout("tcp", other, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := second.Read(make([]byte, 100)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("with -m 1 a second session was served while the first was open: %d bytes, %v", n, err)
	}
	first.cmd("QUIT")
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if g, err := bufio.NewReader(second).ReadString('\n'); !strings.HasPrefix(g, "220 ") {
		t.Errorf("the second client after the first quit: %q, %v", g, err)
	}
}

func TestDebugLogsToStderr(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true")
	sock := e.listenNotify()
	cmd := exec.Command(amavisdBin, "-c", e.file, "debug")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitNotify("READY=1")
	greetingOf(t, e.addr)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	// Every level goes to stderr: the SMTP dialog (level 4) with log_level 0.
	dialog := fmt.Sprintf("(%05d-01) SMTP< QUIT\\r\\n\n", cmd.Process.Pid) // amavis shows the line end
	for _, want := range []string{"starting. ", "Server closing!", dialog} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("debug's stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if log, _ := os.ReadFile(filepath.Join(e.dir, "amavisd.log")); len(log) != 0 {
		t.Errorf("debug wrote to LOGFILE too:\n%s", log)
	}
}

// TestStartReloadBroken: in the background, a refused reload is logged to LOGFILE, `reload`
// itself warns about the file, and the daemon keeps serving with the old configuration.
func TestStartReloadBroken(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true", `smtpd_greeting_banner = "old ${helo-name}"`)
	if _, errOut, code := e.amavisd("start"); code != 0 {
		t.Fatalf("start: %s", errOut)
	}
	t.Cleanup(func() { e.amavisd("stop") })
	e.writeConfig("smtp:[127.0.0.1]:10025", "allow_run_as_root = true", `smtpd_greeting_banner = "new ${helo-name}"`, "max_server = 3")
	_, errOut, code := e.amavisd("reload")
	if want := "amavisd: (!) " + e.file + `:11: key "max_server": unknown setting`; code != 0 || !strings.HasPrefix(errOut, want) {
		t.Errorf("reload: exit %d, %q, want 0 and %q", code, errOut, want)
	}
	e.waitLog(`(!)Rejecting reload, some config files unreadable or erroneous: ` + e.file + `:11: key "max_server": unknown setting`)
	if g := greetingOf(t, e.addr); g != "220 old [127.0.0.1]" {
		t.Errorf("greeting after the refused reload: %q", g)
	}
}

// TestStopKillsAStuckDaemon: a process that ignores SIGTERM gets SIGKILL once child_timeout
// (plus a margin) has passed.
func TestStopKillsAStuckDaemon(t *testing.T) {
	t.Parallel() // it waits 11 s
	e := newEnv(t, "smtp:[127.0.0.1]:10025")
	text, _ := os.ReadFile(e.file)
	os.WriteFile(e.file, []byte(strings.Replace(string(text), "child_timeout = 60", "child_timeout = 1", 1)), 0o644)
	stuck := exec.Command("/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done")
	if err := stuck.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Process.Kill(); stuck.Wait() })
	os.WriteFile(e.pidFile(), []byte(fmt.Sprintf("%d\n", stuck.Process.Pid)), 0o644)
	begin := time.Now()
	out, errOut, code := e.amavisd("stop")
	pid := stuck.Process.Pid
	if code != 0 || errOut != fmt.Sprintf("Sending SIGKILL to amavisd[%d]\n", pid) ||
		!strings.HasSuffix(out, fmt.Sprintf("Daemon [%d] terminated by SIGKILL\n", pid)) ||
		!strings.Contains(out, fmt.Sprintf("Waiting for the process [%d] to terminate\n", pid)) {
		t.Errorf("stop: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if took := time.Since(begin); took < 11*time.Second || took > 20*time.Second {
		t.Errorf("stop took %v, want child_timeout + 10 s = 11 s", took)
	}
}

// TestReloadKeepsListening: clients that connect while reloads happen are never refused and
// always greeted: the listening socket is not closed and reopened.
func TestReloadKeepsListening(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true", "max_servers = 4")
	d := e.foreground()
	stop := make(chan struct{})
	errc := make(chan error, 1)
	greeted := 0
	go func() {
		defer close(errc)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := net.DialTimeout("tcp", e.addr, 2*time.Second)
			if err != nil {
				errc <- err
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := textproto.NewReader(bufio.NewReader(c)).ReadLine()
			c.Close()
			if err != nil || !strings.HasPrefix(line, "220 ") {
				errc <- fmt.Errorf("greeting %q, %v", line, err)
				return
			}
			greeted++
		}
	}()
	for i := 0; i < 20; i++ {
		syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP)
		e.waitNotify("RELOADING=1")
		e.waitNotify("READY=1")
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Errorf("a client during reloads: %v", err)
	}
	if greeted == 0 {
		t.Error("no client was greeted during the reloads")
	}
	t.Logf("%d clients greeted during 20 reloads", greeted)
}

// TestStartFailsOnUnsafeDirs: a TEMPBASE or QUARANTINEDIR that cannot be made, or that
// everyone may write, stops the start with a message naming the setting; no pid file stays.
func TestStartFailsOnUnsafeDirs(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true")
	file := filepath.Join(e.dir, "plainfile")
	os.WriteFile(file, nil, 0o644)
	open := filepath.Join(e.dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	for _, tc := range []struct{ setting, path, want string }{
		{"TEMPBASE", filepath.Join(file, "tmp"), "amavisd: TEMPBASE " + filepath.Join(file, "tmp") + ": lstat " + filepath.Join(file, "tmp") + ": not a directory\n"},
		{"QUARANTINEDIR", open, "amavisd: QUARANTINEDIR " + open + ": is writable by everyone (mode 0777); use mode 0750 owned by the daemon user\n"},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			e.writeConfig("smtp:[127.0.0.1]:10025", "allow_run_as_root = true")
			text, _ := os.ReadFile(e.file)
			s := string(text)
			if tc.setting == "TEMPBASE" {
				s = strings.Replace(s, fmt.Sprintf("TEMPBASE = %q", filepath.Join(e.dir, "tmp")), fmt.Sprintf("TEMPBASE = %q", tc.path), 1)
			} else {
				s += fmt.Sprintf("QUARANTINEDIR = %q\n", tc.path)
			}
			os.WriteFile(e.file, []byte(s), 0o644)
			out, errOut, code := e.amavisd("start")
			if code != 1 || out != "" || errOut != tc.want {
				t.Errorf("start: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, tc.want)
			}
			if _, err := os.Stat(e.pidFile()); !os.IsNotExist(err) {
				t.Errorf("a failed start left its pid file: %v", err)
			}
			if c, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
				c.Close()
				t.Errorf("something listens on %s after the failed start", e.addr)
			}
		})
	}
}

// TestDebugLevelOption: -d beats log_level in both directions: -d 5 logs the SMTP dialog at
// level 0's configuration, -d 0 silences it at log_level 5's.
func TestDebugLevelOption(t *testing.T) {
	for _, tc := range []struct {
		logLevel, d string
		dialog      bool
	}{{"0", "5", true}, {"5", "0", false}} {
		t.Run("log_level "+tc.logLevel+" -d "+tc.d, func(t *testing.T) {
			e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true", "log_level = "+tc.logLevel)
			d := e.foreground("-d", tc.d)
			c, _ := dial(t, e.addr)
			c.cmd("EHLO client.test")
			c.cmd("QUIT")
			d.cmd.Process.Signal(syscall.SIGTERM)
			d.wait(t, 10*time.Second)
			e.waitLog("Net::Server: Server closing!")
			log, _ := os.ReadFile(filepath.Join(e.dir, "amavisd.log"))
			line := fmt.Sprintf("(%05d-01) SMTP< EHLO client.test\\r\\n\n", d.cmd.Process.Pid) // amavis shows the line end
			if got := bytes.Contains(log, []byte(line)); got != tc.dialog {
				t.Errorf("LOGFILE has %q: %v, want %v:\n%s", line, got, tc.dialog, log)
			}
		})
	}
}

// TestStartStopAsDaemonUser: started as root with daemon_user, the daemon makes the missing
// directory of pid_file for that user (as /run/amavisgo after a boot), serves as that user,
// and at stop removes its own pid file.
func TestStartStopAsDaemonUser(t *testing.T) {
	requireRoot(t)
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String())
	// The AM.PDP socket in a directory of the daemon user's, as MYHOME is.
	sockDir := filepath.Join(e.dir, "home")
	os.Mkdir(sockDir, 0o750)
	os.Chown(sockDir, 65534, 65534)
	sock := filepath.Join(sockDir, "amavisd.sock")
	e.writeConfig(next.Method.String(), `daemon_user = "nobody"`, `daemon_group = "nogroup"`, fmt.Sprintf("unix_socketname = %q", sock))
	pidFile := filepath.Join(e.dir, "run", "amavisd.pid")
	text, _ := os.ReadFile(e.file)
	os.WriteFile(e.file, []byte(strings.Replace(string(text), fmt.Sprintf("pid_file = %q", e.pidFile()), fmt.Sprintf("pid_file = %q", pidFile), 1)), 0o644)
	if out, errOut, code := e.amavisd("start"); code != 0 || out != "" || errOut != "" {
		t.Fatalf("start: exit %d, %q %q", code, out, errOut)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if fi, err := os.Stat(filepath.Dir(pidFile)); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("the pid file's directory: %v, want it owned by nobody", err)
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if !bytes.Contains(status, []byte("\nUid:\t65534\t65534\t65534\t65534\n")) {
		t.Errorf("the background daemon does not run as nobody:\n%s", status)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("the Unix socket: %v, want it owned by nobody", err)
	}
	c, _ := dial(t, e.addr)
	c.startData("as-daemon-user@test")
	if r := c.finishData(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Errorf("a message through the background daemon: %s", r)
	}
	c.cmd("QUIT")
	out, errOut, code := e.amavisd("stop")
	if want := fmt.Sprintf("Daemon [%d] terminated by SIGTERM\n", pid); code != 0 || out != want {
		t.Errorf("stop: exit %d, %q %q, want %q", code, out, errOut, want)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("the daemon user did not remove its pid file: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the daemon user did not remove its Unix socket: %v", err)
	}
}

// TestStopGivesUpAfterChildTimeout: a message whose next hop never answers does not hold the
// stop for longer than child_timeout, and its client never gets a 250 for it.
func TestStopGivesUpAfterChildTimeout(t *testing.T) {
	next := startGatedNextHop(t)
	defer close(next.release)
	e := newEnv(t, next.method(), "allow_run_as_root = true")
	text, _ := os.ReadFile(e.file)
	os.WriteFile(e.file, []byte(strings.Replace(string(text), "child_timeout = 60", "child_timeout = 3", 1)), 0o644)
	d := e.foreground()
	c, _ := dial(t, e.addr)
	c.startData("stuck@test")
	fmt.Fprintf(c.conn, "second half\r\n.\r\n")
	<-next.arrived
	begin := time.Now()
	stopped := make(chan string, 1)
	go func() {
		out, errOut, _ := e.amavisd("stop")
		stopped <- out + errOut
	}()
	r := c.reply()
	t.Logf("the client got %q", r)
	if !strings.HasPrefix(r, "4") && !strings.HasPrefix(r, "ERROR") {
		t.Errorf("the message whose next hop did not answer got %q, want a 4xx or no reply", r)
	}
	select {
	case out := <-stopped:
		if want := fmt.Sprintf("Daemon [%d] terminated by SIGTERM\n", d.cmd.Process.Pid); out != want {
			t.Errorf("stop said %q, want %q", out, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("stop did not return; daemon stderr:\n%s", d.Stderr())
	}
	if took := time.Since(begin); took > 3*time.Second+5*time.Second {
		t.Errorf("stop took %v with child_timeout 3 s", took)
	}
	t.Logf("stop took %v", time.Since(begin))
}
