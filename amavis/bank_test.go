package amavis

import (
	"bufio"
	"bytes"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/internal/testenv"
	"amavisgo/notify"
	"amavisgo/smtp/smtptest"
)

// The MYNETS bank is loaded when the client (XFORWARD ADDR) is in mynetworks:
// the mail is originating (LOCAL, RelayedInternal), the bank path shows in the log, and the
// bank's settings show in the passed header (here its own X_HEADER_LINE).
func TestMynetsBank(t *testing.T) {
	h := hop(t, smtptest.Options{KeepData: 4096})
	td := startDaemon(t, h.Addr, `mynetworks = ["192.0.2.0/24"]

[policy_bank.MYNETS]
log_level = 0
X_HEADER_LINE = "amavis (MYNETS) at example.com"
`)
	for _, addr := range []string{"192.0.2.10", "198.51.100.7"} {
		c, r := dial(t, td.addr)
		expectPrefix(t, r, "220 ")
		send(t, c, "HELO mta.example.com", "XFORWARD ADDR="+addr+" PORT=1025", "MAIL FROM:<a@example.com>",
			"RCPT TO:<x@example.com>", "DATA")
		for range 4 {
			expectPrefix(t, r, "2")
		}
		expectPrefix(t, r, "354 ")
		send(t, c, "From: a@example.com", "Date: Sun, 22 Nov 2026 09:45:23 +0000", "Subject: mynets", "", "x", ".", "QUIT")
		expectPrefix(t, r, "250 2.0.0 from MTA")
		expectPrefix(t, r, "221 ")
	}
	waitFor(t, "log lines", func() bool { return len(mainLogLines(td.log.String())) == 2 })
	lines := mainLogLines(td.log.String())
	if !strings.Contains(lines[0], "Passed CLEAN {RelayedInternal}, MYNETS LOCAL [192.0.2.10]:1025 [192.0.2.10] <a@example.com>") {
		t.Errorf("mynets: %q", lines[0])
	}
	if !strings.Contains(lines[1], "Passed CLEAN {RelayedInbound}, [198.51.100.7]:1025 [198.51.100.7] <a@example.com>") {
		t.Errorf("outside: %q", lines[1])
	}
	msgs := h.Msgs()
	if len(msgs) != 2 {
		t.Fatalf("%d messages at the next hop", len(msgs))
	}
	for i, want := range []string{"X-Virus-Scanned: amavis (MYNETS) at example.com\r\n", "X-Virus-Scanned: amavis at example.com\r\n"} {
		if !bytes.Contains(msgs[i].Data, []byte(want)) {
			t.Errorf("message %d lacks %q:\n%s", i, want, msgs[i].Data)
		}
	}
}

// Without XFORWARD the client is 0.0.0.0 for client_ipaddr_policy (Amavis::In::SMTP): mail
// from a local MTA in mynetworks does not load MYNETS and is not originating, though the log
// shows the peer's address.
func TestNoXforwardNotMynets(t *testing.T) {
	h := hop(t, smtptest.Options{KeepData: 4096})
	td := startDaemon(t, h.Addr, `[policy_bank.MYNETS]
X_HEADER_LINE = "amavis (MYNETS) at example.com"
`)
	body := "From: a@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\nSubject: local\r\n\r\nx\r\n"
	sendMessage(t, td, false, "a@example.com", []string{"x@example.com"}, body)
	waitFor(t, "log lines", func() bool { return len(mainLogLines(td.log.String())) == 1 })
	if l := mainLogLines(td.log.String())[0]; !strings.Contains(l, ") Passed CLEAN {RelayedInbound}, [127.0.0.1] <a@example.com> -> <x@example.com>, ") {
		t.Errorf("log line %q", l)
	}
	if msgs := h.Msgs(); len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("X-Virus-Scanned: amavis at example.com\r\n")) {
		t.Errorf("next hop got %d messages, want one with the base bank's X-Virus-Scanned", len(msgs))
	}
}

// A second inet_socket_port with its own bank (the conventional 10026 -> ORIGINATING): mail
// on that port is originating (LOCAL, Internal/Outbound in the log), goes out through the
// bank's forward_method and carries the bank's X-Virus-Scanned; the first port keeps the
// base policy; MYNETS nests inside it.
func TestSecondPortOriginating(t *testing.T) {
	base, orig := hop(t, smtptest.Options{}), hop(t, smtptest.Options{})
	port := strconv.Itoa(testenv.FreePort(t))
	td := startDaemon(t, base.Addr, `forward_method = "smtp:[127.0.0.1]:`+base.Port()+`"
inet_socket_port = ["127.0.0.1:0", "127.0.0.1:`+port+`"]
interface_policy = { "`+port+`" = "ORIGINATING" }

mynetworks = ["192.0.2.0/24"]

[policy_bank.ORIGINATING]
originating = true
forward_method = "smtp:[127.0.0.1]:`+orig.Port()+`"
X_HEADER_LINE = "amavis (ORIGINATING) at example.com"

[policy_bank.MYNETS]
log_level = 0
`)
	if a := td.Addrs(); len(a) != 2 || !strings.HasSuffix(a[1].String(), ":"+port) {
		t.Fatalf("listening on %v, want a second socket on port %s", a, port)
	}
	body := "From: a@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\nSubject: ports\r\n\r\nx\r\n"
	first := sendMessage(t, td, false, "a@example.com", []string{"x@example.com", "y@remote.example.net"}, body)
	second := sendMessage(t, &testDaemon{Daemon: td.Daemon, addr: "127.0.0.1:" + port, port: port, log: td.log, hopPort: orig.Port()},
		false, "a@example.com", []string{"x@example.com", "y@remote.example.net"}, body)
	for i, got := range []string{first[0], second[0]} {
		if want := "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001"; got != want {
			t.Errorf("message %d: reply %q, want %q", i+1, got, want)
		}
	}
	waitFor(t, "log lines", func() bool { return len(mainLogLines(td.log.String())) == 2 })
	lines := mainLogLines(td.log.String())
	for i, want := range []string{
		") Passed CLEAN {RelayedInbound,RelayedOpenRelay}, [127.0.0.1] <a@example.com> -> <x@example.com>,<y@remote.example.net>, ",
		") Passed CLEAN {RelayedInternal,RelayedOutbound}, ORIGINATING LOCAL [127.0.0.1] <a@example.com> -> <x@example.com>,<y@remote.example.net>, ",
	} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("log line %d %q lacks %q", i+1, lines[i], want)
		}
	}
	// Banks nest: a client in mynetworks on the second port gets ORIGINATING/MYNETS, and the
	// ORIGINATING settings stay (amavis's $log_short_templ in Amavis.pm logs the path:
	// "ORIGINATING/MYNETS LOCAL [10.1.2.3]").
	c, r := dial(t, "127.0.0.1:"+port)
	expectPrefix(t, r, "220 ")
	send(t, c, "HELO mta.example.com", "XFORWARD ADDR=192.0.2.10 PORT=1025", "MAIL FROM:<a@example.com>", "RCPT TO:<x@example.com>", "DATA")
	for range 4 {
		expectPrefix(t, r, "2")
	}
	expectPrefix(t, r, "354 ")
	send(t, c, "From: a@example.com", "Date: Sun, 22 Nov 2026 09:45:23 +0000", "Subject: nested", "", "x", ".", "QUIT")
	expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:"+orig.Port()+"): ")
	expectPrefix(t, r, "221 ")
	waitFor(t, "log lines", func() bool { return len(mainLogLines(td.log.String())) == 3 })
	if l := mainLogLines(td.log.String())[2]; !strings.Contains(l, ") Passed CLEAN {RelayedInternal}, ORIGINATING/MYNETS LOCAL [192.0.2.10]:1025 [192.0.2.10] <a@example.com> -> <x@example.com>, ") {
		t.Errorf("nested banks: log line %q", l)
	}
	for i, tc := range []struct {
		h      *smtptest.NextHop
		header string
		n      int
	}{{base, "X-Virus-Scanned: amavis at example.com\r\n", 1}, {orig, "X-Virus-Scanned: amavis (ORIGINATING) at example.com\r\n", 2}} {
		msgs := tc.h.Msgs()
		if len(msgs) != tc.n {
			t.Fatalf("hop %d got %d messages, want %d", i+1, len(msgs), tc.n)
		}
		for _, m := range msgs {
			if !bytes.Contains(m.Data, []byte(tc.header)) {
				t.Errorf("hop %d: a message without %q:\n%s", i+1, tc.header, m.Data)
			}
		}
	}
}

// interface_policy selects a bank by listening port; a bank with protocol LMTP greets LMTP.
func TestInterfacePolicyAndUnixSocket(t *testing.T) {
	h := hop(t, smtptest.Options{})
	sock := filepath.Join(t.TempDir(), "amavisd.sock")
	startDaemon(t, h.Addr, `unix_socketname = "`+sock+`"
interface_policy = { "`+sock+`" = "SOCK" }

[policy_bank.SOCK]
protocol = "LMTP"
smtpd_greeting_banner = "${helo-name} ${protocol} ${product} at ${myhostname}"
`)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expect(t, r, "220 [localhost] LMTP amavis at mx.example.com")
	send(t, c, "LHLO mta", "MAIL FROM:<a@example.com>", "RCPT TO:<x@example.com>", "RCPT TO:<y@example.com>", "DATA")
	for l := expectPrefix(t, r, "250"); !strings.HasPrefix(l, "250 "); l = expectPrefix(t, r, "250") {
	}
	for range 3 {
		expectPrefix(t, r, "250 ")
	}
	expectPrefix(t, r, "354 ")
	send(t, c, "Subject: unix", "", "x", ".")
	expectPrefix(t, r, "250 2.0.0 from MTA")
	expectPrefix(t, r, "250 2.0.0 from MTA")
	var received []string
	for _, l := range h.Lines() {
		if strings.HasPrefix(l, "Received:") || (len(received) > 0 && len(received) < 2 && strings.HasPrefix(l, " ")) {
			received = append(received, l)
		}
	}
	if len(received) < 1 || received[0] != "Received: from mta by localhost (amavis, unix socket) with LMTP" {
		t.Errorf("Received: %q", received)
	}
}

// Reload: new connections get the new configuration, an open session keeps its own and is
// not dropped, the listener stays open.
func TestReload(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	old, ro := dial(t, td.addr)
	expect(t, ro, "220 [127.0.0.1] ESMTP amavis service ready")

	cfg := *td.Config()
	next, err := conf.Parse("reloaded.toml", []byte(`
inet_socket_port = "127.0.0.1:0"
TEMPBASE = "`+td.tempbase+`"
MYHOME = "`+td.tempbase+`"
smtpd_greeting_banner = "${helo-name} reloaded"
forward_method = "`+cfg.ForwardMethod+`"
`))
	if err != nil {
		t.Fatal(err)
	}
	td.Reload(next)
	_, rn := dial(t, td.addr)
	expect(t, rn, "220 [127.0.0.1] reloaded")
	send(t, old, "NOOP")
	expect(t, ro, "250 2.0.0 Ok NOOP")
}

// The log file format: "Mon dd hh:mm:ss host prog[pid]: (id) text"; level marks (!) and
// (!!); levels above log_level are not written.
func TestLogFormats(t *testing.T) {
	var buf bytes.Buffer
	l := NewWriterLog(&buf, "mx.example.com", NoOverride)
	tl := &taskLog{l: l, id: "01234-01", level: 1}
	tl.Logf(0, "Passed CLEAN")
	tl.Logf(-1, "warning %d", 1)
	tl.Logf(-2, "error\nwith newline")
	tl.Logf(2, "not written at log_level 1")
	re := regexp.MustCompile(`^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mx\.example\.com \S+\[\d+\]: \(01234-01\) `)
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{"Passed CLEAN", "(!)warning 1", `(!!)error\x0Awith newline`}
	if len(lines) != len(want) {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	for i, l := range lines {
		if !re.MatchString(l) || re.ReplaceAllString(l, "") != want[i] {
			t.Errorf("line %q, want text %q", l, want[i])
		}
	}
	// stderr format: an sd-daemon priority prefix.
	var eb bytes.Buffer
	el := &Log{w: &eb, stderr: true}
	el.override.Store(5)
	el.logf("01234-01", 0, "notice")
	el.logf("", 3, "debug")
	if eb.String() != "<5>(01234-01) notice\n<7>debug\n" {
		t.Errorf("stderr format %q", eb.String())
	}
}

// An address of a family this host lacks (here: an IPv6 address that is not local, which
// fails like [::1] on a host without IPv6) is skipped, not fatal, when others bind.
func TestListenSkipsMissingFamily(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, `inet_socket_port = ["127.0.0.1:0", "[2001:db8::99]:0"]`)
	if n := len(td.Addrs()); n != 1 {
		t.Fatalf("%d listeners", n)
	}
	if !strings.Contains(td.log.String(), "(!)not listening on [2001:db8::99]:0") {
		t.Errorf("log:\n%s", td.log.String())
	}
}

type fakeSyslog struct{ lines []string }

func (f *fakeSyslog) rec(p string, s string) error { f.lines = append(f.lines, p+" "+s); return nil }
func (f *fakeSyslog) Debug(s string) error         { return f.rec("debug", s) }
func (f *fakeSyslog) Info(s string) error          { return f.rec("info", s) }
func (f *fakeSyslog) Notice(s string) error        { return f.rec("notice", s) }
func (f *fakeSyslog) Warning(s string) error       { return f.rec("warning", s) }
func (f *fakeSyslog) Err(s string) error           { return f.rec("err", s) }
func (f *fakeSyslog) Crit(s string) error          { return f.rec("crit", s) }
func (f *fakeSyslog) Close() error                 { return nil }

// Syslog: priorities by level, and lines over 980 characters split with "..." marks.
func TestSyslogLines(t *testing.T) {
	fs := &fakeSyslog{}
	l := &Log{sys: fs}
	l.override.Store(5)
	l.logf("01234-01", 0, "Passed CLEAN")
	l.logf("01234-01", -1, "%s", strings.Repeat("x", 1000))
	l.logf("", 3, "debug")
	if len(fs.lines) != 4 || fs.lines[0] != "notice (01234-01) Passed CLEAN" || fs.lines[3] != "debug debug" {
		t.Fatalf("%q", fs.lines)
	}
	first, second := fs.lines[1], fs.lines[2]
	if len(first) != len("warning ")+980 || !strings.HasPrefix(first, "warning (01234-01) (!)xxx") || !strings.HasSuffix(first, "x...") {
		t.Errorf("first part %d %q", len(first), first[:40])
	}
	if !strings.HasPrefix(second, "warning (01234-01) (!)...xxx") || strings.Count(first+second, "x") != 1000 {
		t.Errorf("continuation %q", second)
	}
}

// Records from the packages that log through slog: levels mapped to amavis's, attributes
// appended, and a record about one message under that message's log id.
func TestSlogAdapter(t *testing.T) {
	var buf bytes.Buffer
	l := NewWriterLog(&buf, "mx.example.com", NoOverride)
	l.override.Store(5)
	logger := slog.New(&slogHandler{l: l, level: 5})
	logger.Warn("NOTICE: UNABLE TO SEND DSN to <a@example.com>: 550 5.1.1 no", notify.LogIDKey, "01234-02")
	logger.Info("found", "decoder", "7z")
	re := regexp.MustCompile(`(?m)^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mx\.example\.com \S+\[\d+\]: `)
	if got, want := re.ReplaceAllString(buf.String(), ""), "(01234-02) (!)NOTICE: UNABLE TO SEND DSN to <a@example.com>: 550 5.1.1 no\nfound decoder=7z\n"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
