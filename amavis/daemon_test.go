package amavis

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/smtp/smtptest"
)

// syncBuffer is a log destination shared by sessions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testDaemon is a daemon on a free loopback port, forwarding to a test next hop.
type testDaemon struct {
	*Daemon
	addr     string
	port     string
	log      *syncBuffer
	tempbase string
	hopPort  string
}

// startDaemon runs a daemon with the test configuration plus extra TOML lines; hopAddr is
// the next hop ("" for one that refuses connections).
func startDaemon(t testing.TB, hopAddr, extra string) *testDaemon {
	t.Helper()
	tmp := t.TempDir()
	if hopAddr == "" {
		hopAddr = smtptest.Refused(t)
	}
	_, hopPort, _ := net.SplitHostPort(hopAddr)
	fwd := ""
	if !strings.Contains(extra, "forward_method") {
		fwd = fmt.Sprintf(`forward_method = "smtp:[127.0.0.1]:%s"`, hopPort)
	}
	if !strings.Contains(extra, "inet_socket_port") {
		fwd += "\ninet_socket_port = \"127.0.0.1:0\""
	}
	if !strings.Contains(extra, "max_servers") {
		fwd += "\nmax_servers = 4"
	}
	if !regexp.MustCompile(`(?m)^myhostname\s*=`).MatchString(extra) {
		fwd += "\nmyhostname = \"mx.example.com\""
	}
	text := fmt.Sprintf(`
MYHOME = %q
TEMPBASE = %q
mydomain = "example.com"
%s
%s

[[local_domains_maps]]
acl = [".example.com"]
`, tmp, tmp, fwd, extra)
	cfg, err := conf.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &syncBuffer{}
	d := New(cfg, NewWriterLog(logBuf, "mx.example.com", NoOverride))
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
		<-done
		if t.Failed() {
			t.Logf("daemon log:\n%s", logBuf.String())
		}
	})
	addr := d.Addrs()[0].String()
	_, port, _ := net.SplitHostPort(addr)
	return &testDaemon{Daemon: d, addr: addr, port: port, log: logBuf, tempbase: tmp, hopPort: hopPort}
}

// normalizer replaces what changes from run to run: process ids in log ids, mail ids,
// dates, elapsed times, and the test ports (shown as amavis's usual 10024 and 10025).
type normalizer struct {
	pid            string
	port, hopPort  string
	mailID, date   *regexp.Regexp
	elapsed, logid *regexp.Regexp
}

func newNormalizer(td *testDaemon) *normalizer {
	return &normalizer{
		pid:     fmt.Sprintf("%05d-", os.Getpid()),
		port:    td.port,
		hopPort: td.hopPort,
		mailID:  regexp.MustCompile(`(\bid |mail_id: )[A-Za-z0-9_-]{12}\b`),
		date:    regexp.MustCompile(`[A-Z][a-z]{2}, [ \d]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \([A-Za-z0-9+-]+\)`),
		elapsed: regexp.MustCompile(`, \d+ ms$`),
		logid:   regexp.MustCompile(`PID-\d{2,}`), // the connection counter has two digits at least
	}
}

func (n *normalizer) line(s string) string {
	s = strings.ReplaceAll(s, n.pid, "PID-")
	s = n.logid.ReplaceAllString(s, "PID-NN")
	s = strings.ReplaceAll(s, "]:"+n.hopPort, "]:10025")
	s = strings.ReplaceAll(s, "port "+n.port+")", "port 10024)")
	s = strings.ReplaceAll(s, "]:"+n.port+" ", "]:10024 ")
	s = n.mailID.ReplaceAllString(s, "${1}MAILID")
	s = n.date.ReplaceAllString(s, "DATE")
	return n.elapsed.ReplaceAllString(s, ", N ms")
}

// mainLogLines are the main Passed/Blocked lines of the log ($log_short_templ, not the
// per-recipient ones of $log_recip_templ), without the logfile prefix.
func mainLogLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, "]: "); i >= 0 {
			l = l[i+3:]
		}
		if (strings.Contains(l, ") Passed ") || strings.Contains(l, ") Blocked ")) && !strings.Contains(l, ", tag=") {
			out = append(out, l)
		}
	}
	return out
}

// openData connects a client and takes it through HELO, MAIL, RCPT <x@example.com> and DATA
// to the 354: what follows is the message.
func openData(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, r := dial(t, addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "HELO mta.example.com", "MAIL FROM:<a@sender.example.org>", "RCPT TO:<x@example.com>", "DATA")
	for range 3 {
		expectPrefix(t, r, "250 ")
	}
	expectPrefix(t, r, "354 ")
	return c, r
}

// dial connects a raw client and returns its reader.
func dial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// expect reads one reply line and compares it.
func expect(t testing.TB, r *bufio.Reader, want string) {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading reply (want %q): %v", want, err)
	}
	if got := strings.TrimSuffix(line, "\r\n"); got != want {
		t.Fatalf("reply\n got %q\nwant %q", got, want)
	}
}

// expectPrefix reads one reply line and checks its beginning.
func expectPrefix(t testing.TB, r *bufio.Reader, want string) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading reply (want %q...): %v", want, err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !strings.HasPrefix(line, want) {
		t.Fatalf("reply\n got %q\nwant %q...", line, want)
	}
	return line
}

func send(t testing.TB, c net.Conn, lines ...string) {
	t.Helper()
	if _, err := c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// hop starts a next hop for a test.
func hop(t testing.TB, o smtptest.Options) *smtptest.NextHop { return smtptest.Start(t, o) }

// Shutdown may come while Serve is still starting (a signal right after start-up): both
// return, and nothing Serve starts afterwards escapes Shutdown's wait.
func TestShutdownDuringStartup(t *testing.T) {
	h := hop(t, smtptest.Options{})
	for i := 0; i < 20; i++ {
		td := startDaemon(t, h.Addr, "")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := td.Shutdown(ctx); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		cancel()
	}
}

// DO_SYSLOG: lines go to syslog with ident amavis, facility mail, the priority of their
// level (Amavis::Log), and lines over logline_maxlen are split with "..." marks; log_level
// holds back what is above it. The syslog daemon is a unixgram socket of the test.
func TestSyslogDestination(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	syslogNetwork, syslogAddr = "unixgram", sock
	defer func() { syslogNetwork, syslogAddr = "", "" }()
	cfg, err := conf.Parse("syslog.toml", []byte("DO_SYSLOG = true\nlog_level = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(&cfg.Global, NoOverride, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tl := &taskLog{l: l, id: "01234-01", level: cfg.Policy.LogLevel}
	tl.Logf(0, "Passed CLEAN {RelayedInbound}")
	tl.Logf(2, "not sent at log_level 1")
	tl.Logf(-1, "a warning")
	tl.Logf(1, "%s", strings.Repeat("x", 1500))

	// Go's log/syslog writes "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG" to a local socket.
	prefix := regexp.MustCompile(`^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d amavis\[` + fmt.Sprint(os.Getpid()) + `\]: `)
	want := []struct {
		pri  string
		text string
	}{
		{"21", "(01234-01) Passed CLEAN {RelayedInbound}"}, // mail.notice
		{"20", "(01234-01) (!)a warning"},                  // mail.warning
		{"22", "(01234-01) " + strings.Repeat("x", 980-11-3) + "..."},
		{"22", "(01234-01) ..." + strings.Repeat("x", 1500-(980-11-3))},
	}
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for i, w := range want {
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i+1, err)
		}
		got := strings.TrimSuffix(string(buf[:n]), "\n")
		m := prefix.FindStringSubmatch(got)
		if m == nil || m[1] != w.pri || got[len(m[0]):] != w.text {
			t.Errorf("datagram %d:\n got %q\nwant <%s>... amavis[pid]: %q", i+1, got, w.pri, w.text)
		}
	}
	ln.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := ln.Read(buf); err == nil {
		t.Errorf("unexpected datagram %q", buf[:n])
	}
}

// smtpd_message_size_limit is announced with EHLO SIZE, raised to 64 KiB while
// enforce_smtpd_message_size_limit_64kb_min is on (Amavis::In::SMTP); the global limit alone
// rejects nothing.
func TestSizeLimitAnnounced(t *testing.T) {
	for _, tc := range []struct{ extra, size string }{
		{"smtpd_message_size_limit = 1000", "250-SIZE 65536"},
		{"smtpd_message_size_limit = 1000\nenforce_smtpd_message_size_limit_64kb_min = false", "250-SIZE 1000"},
		{"smtpd_message_size_limit = 10485760", "250-SIZE 10485760"},
		{"", "250-SIZE"},
	} {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, tc.extra)
		c, r := dial(t, td.addr)
		expectPrefix(t, r, "220 ")
		send(t, c, "EHLO mta.example.com")
		for _, want := range []string{"250-[127.0.0.1]", "250-VRFY", "250-PIPELINING", tc.size} {
			expect(t, r, want)
		}
		if tc.extra != "" && strings.HasSuffix(tc.size, " 1000") {
			for l := expectPrefix(t, r, "250"); !strings.HasPrefix(l, "250 "); l = expectPrefix(t, r, "250") {
			}
			send(t, c, "MAIL FROM:<a@sender.example.org>", "RCPT TO:<x@example.com>", "DATA")
			expectPrefix(t, r, "250 2.1.0")
			expectPrefix(t, r, "250 2.1.5")
			expectPrefix(t, r, "354 ")
			send(t, c, "Subject: over the global limit", "", strings.Repeat("x", 2000), ".")
			expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:")
		}
	}
}

// A client inet_acl denies is closed without a greeting; the log names the entry that
// denied it, if one did (Amavis.pm's access_is_allowed).
func TestInetACLDeniedByRule(t *testing.T) {
	for _, tc := range []struct{ acl, log string }{
		{`["10.0.0.0/8"]`, "DENIED ACCESS from IP 127.0.0.1, policy bank ''\n"},
		{`["10.0.0.0/8", "!127.0.0.0/8", "0.0.0.0/0"]`, "DENIED ACCESS from IP 127.0.0.1, policy bank '', blocked by rule !127.0.0.0/8\n"},
	} {
		td := startDaemon(t, "", "inet_acl = "+tc.acl)
		_, r := dial(t, td.addr)
		if line, err := r.ReadString('\n'); err == nil {
			t.Fatalf("denied client got %q", line)
		}
		waitFor(t, "log", func() bool { return strings.Contains(td.log.String(), "DENIED ACCESS") })
		if l := td.log.String(); !strings.Contains(l, ") (!)"+tc.log) {
			t.Errorf("inet_acl %s: log lacks %q:\n%s", tc.acl, tc.log, l)
		}
	}
}

// Non-canonical quoting (Amavis::In::SMTP, Amavis::Out::SMTP): the replies repeat the addresses as
// received; the next hop gets each recipient canonical, with an ORCPT of the original form when it
// offers DSN (an ORCPT the client gave is kept), and the sender as received (amavis's sender_smtp).
func TestRequotedAddresses(t *testing.T) {
	h := hop(t, smtptest.Options{DSN: true})
	td := startDaemon(t, h.Addr, "")
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "HELO mta.example.com")
	expect(t, r, "250 [127.0.0.1]")
	for _, step := range [][2]string{
		{`MAIL FROM:<"alice"@sender.example.org>`, `250 2.1.0 Sender <"alice"@sender.example.org> OK`},
		{`RCPT TO:<"x"@example.com>`, `250 2.1.5 Recipient <"x"@example.com> OK`},
		{`RCPT TO:<"y"@example.com> ORCPT=rfc822;y+2Bold@example.com`, `250 2.1.5 Recipient <"y"@example.com> OK`},
		{`RCPT TO:<"z z"@example.com>`, `250 2.1.5 Recipient <"z z"@example.com> OK`},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
	} {
		send(t, c, step[0])
		expect(t, r, step[1])
	}
	send(t, c, "Subject: quoting", "", "body", ".")
	expect(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:"+h.Port()+"): 250 2.0.0 Ok: queued as SINKQ0001")
	want := []string{
		`MAIL FROM:<"alice"@sender.example.org> BODY=7BIT`,
		`RCPT TO:<x@example.com> ORCPT=rfc822;"x"@example.com`,
		`RCPT TO:<y@example.com> ORCPT=rfc822;y+2Bold@example.com`,
		`RCPT TO:<"z z"@example.com>`,
		"DATA",
	}
	got := h.Lines()
	if len(got) < 7 || strings.Join(got[2:7], "\n") != strings.Join(want, "\n") {
		t.Errorf("next hop got\n  %s\nwant after EHLO and XFORWARD\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// The log shows the sender as received and the recipients quoted canonically.
	waitFor(t, "log line", func() bool { return len(mainLogLines(td.log.String())) == 1 })
	if l, want := mainLogLines(td.log.String())[0], ` <"alice"@sender.example.org> -> <x@example.com>,<y@example.com>,<"z z"@example.com>, `; !strings.Contains(l, want) {
		t.Errorf("log line %q lacks %q", l, want)
	}
}

// NewWriterLog logs in the LOGFILE format to w (the tests' log).
func NewWriterLog(w io.Writer, hostname string, level int) *Log {
	l := &Log{w: w, hostname: hostname, progname: os.Args[0], pid: os.Getpid()}
	l.override.Store(int32(level))
	return l
}
