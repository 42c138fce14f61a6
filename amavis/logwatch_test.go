package amavis

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// syslogFile is a syslog daemon of the test: it takes the datagrams of log/syslog on a Unix
// socket and writes them as rsyslog writes mail.log ("Mmm dd hh:mm:ss host amavis[pid]: ...").
type syslogFile struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startSyslog(t *testing.T) *syslogFile {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	syslogNetwork, syslogAddr = "unixgram", sock
	s := &syslogFile{done: make(chan struct{})}
	t.Cleanup(func() {
		syslogNetwork, syslogAddr = "", ""
		ln.Close()
		<-s.done
	})
	pri := regexp.MustCompile(`^<\d+>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (.*)$`)
	go func() {
		defer close(s.done)
		buf := make([]byte, 8192)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			if m := pri.FindStringSubmatch(strings.TrimSuffix(string(buf[:n]), "\n")); m != nil {
				s.mu.Lock()
				s.lines = append(s.lines, m[1]+" mx "+m[2])
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *syslogFile) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n") + "\n"
}

// waitFor waits until a line matches re.
func (s *syslogFile) waitFor(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(15 * time.Second); !rx.MatchString(s.text()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matches %s:\n%s", re, s.text())
		}
	}
}

// A day of our log at log_level 0 through syslog, as a site has it in mail.log: start, a
// reload, a clean message, EICAR (discarded and quarantined), a banned program, a bad header,
// a message while clamd is down, a release from the quarantine over AM.PDP, and the stop. Debian's
// logwatch, with its amavis service, reports no Unmatched Entries, and its report has the
// sections of these events, the virus scanner connection failure among them.
func TestLogwatchReport(t *testing.T) {
	logwatch := testenv.RequireProgram(t, "logwatch", "/usr/sbin/logwatch")
	clamd := testenv.StartClamd(t)
	h := hop(t, smtptest.Options{})
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	sock := filepath.Join(home, "amavisd.sock")
	_, hopPort, _ := net.SplitHostPort(h.Addr)
	text := fmt.Sprintf(`MYHOME = %q
QUARANTINEDIR = %q
DO_SYSLOG = true
log_level = 0
log_recip_templ = "" # Debian's undef, as on the sites whose logs logwatch reads
myhostname = "mx.example.com"
mydomain = "example.com"
inet_socket_port = "127.0.0.1:0"
forward_method = "smtp:[127.0.0.1]:%s"
unix_socketname = %q
interface_policy = { SOCK = "AM.PDP-SOCK" }
[[local_domains_maps]]
acl = [".example.com"]
[[av_scanners]]
name = "ClamAV-clamd"
type = "clamd"
sockets = [%q]
query = "INSTREAM"
%s
[policy_bank."AM.PDP-SOCK"]
protocol = "AM.PDP"
auth_required_release = false
`, home, filepath.Join(home, "virusmails"), hopPort, sock, clamd.Socket, rules)
	os.Mkdir(filepath.Join(home, "virusmails"), 0o750)
	cfg, err := conf.Parse(filepath.Join(home, "amavisd.toml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	sl := startSyslog(t)
	log, err := NewLog(&cfg.Global, NoOverride, false)
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, log)
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	td := &testDaemon{Daemon: d, addr: d.Addrs()[0].String()}
	sl.waitFor(t, `Found primary av scanner ClamAV-clamd at `)
	if err := d.Reload(cfg); err != nil {
		t.Fatal(err)
	}

	// The same events for Debian's Perl amavisd, up to clamd going down, for the reference report.
	perl := testenv.StartPerlAmavisd(t, testenv.PerlOptions{Hostname: "mx.example.com", Domain: "example.com",
		Forward: "127.0.0.1:" + hopPort, MaxServers: 2, AMPDP: true, Conf: testenv.PerlReference(clamd.TCPAddr)})
	for _, target := range []struct {
		addr, sock, qdir string
	}{{td.addr, sock, filepath.Join(home, "virusmails")}, {perl.SMTPAddr, perl.Socket, filepath.Join(perl.Home, "virusmails")}} {
		dayEvents(t, &testDaemon{addr: target.addr}, target.sock, target.qdir)
	}
	sl.waitFor(t, `Passed BAD-HEADER`)
	clamd.Stop()
	for _, addr := range []string{td.addr, perl.SMTPAddr} {
		sendMessage(t, &testDaemon{addr: addr}, false, "bob@sender.example.org", []string{"x@example.com"},
			mimeMessage("text/plain", "while clamd is down\r\n"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Shutdown(ctx)
	<-served
	log.Close()
	sl.waitFor(t, `Server closing!`)

	day := sl.text()
	report := logwatchReport(t, logwatch, day)
	if strings.Contains(report, "Unmatched Entries") {
		t.Errorf("logwatch reports Unmatched Entries:\n%s\nfor the log:\n%s", report, day)
	}
	for _, section := range []string{
		"Clean passed", "Malware blocked", "Banned name blocked", "Bad header passed",
		"Virus scanner connection failure", "Released from quarantine", "Amavis Startup",
		"ClamAV-clamd", ".zoo ", "tried: zoo, unzoo",
	} {
		if !strings.Contains(report, section) {
			t.Errorf("logwatch's report lacks %q:\n%s\nfor the log:\n%s", section, report, day)
		}
	}
	// Perl's LOGFILE as syslog would have it (ident amavis, as its syslog_ident)
	perlLog, err := os.ReadFile(perl.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	perlDay := regexp.MustCompile(`(?m)^(\w{3} [ \d]\d \d\d:\d\d:\d\d) \S+ \S*amavisd\[`).ReplaceAllString(string(perlLog), "$1 mx amavis[")
	perlReport := logwatchReport(t, logwatch, perlDay)
	ours, theirs := sections(report), sections(perlReport)
	if strings.Join(ours, "\n") != strings.Join(theirs, "\n") {
		t.Errorf("logwatch's sections for our log:\n%s\nfor Perl amavisd's log of the same events:\n%s\n\nour report:\n%s\nPerl's:\n%s",
			strings.Join(ours, "\n"), strings.Join(theirs, "\n"), report, perlReport)
	}
}

// dayEvents sends a clean message, EICAR, a zip with a program, a bad header, and releases
// the quarantined EICAR over AM.PDP (as amavisd-release asks).
func dayEvents(t *testing.T, td *testDaemon, sock, qdir string) {
	t.Helper()
	send := func(body string) {
		t.Helper()
		sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, body)
	}
	send(mimeMessage("text/plain", "clean\r\n"))
	send(mimeMessage("text/plain", testenv.EICAR+"\r\n"))
	pe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), make([]byte, 112)...)
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	f, _ := zw.Create("run.exe")
	f.Write(pe)
	zw.Close()
	send(mimeMessage(`multipart/mixed; boundary="b1"`, "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
		"--b1\r\nContent-Type: application/zip; name=\"files.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		wrap76(base64.StdEncoding.EncodeToString(zipped.Bytes()))+"--b1--\r\n"))
	send(strings.Replace(mimeMessage("text/plain", "bad header\r\n"), "Subject: test", "Subject: caf\xe9", 1))

	qfiles, _ := filepath.Glob(filepath.Join(qdir, "virus-*"))
	sub, _ := filepath.Glob(filepath.Join(qdir, "*", "virus-*")) // quarantine_subdir_levels 1
	if qfiles = append(qfiles, sub...); len(qfiles) != 1 {
		t.Fatalf("quarantine %s holds %v, want one virus", qdir, qfiles)
	}
	rel, _ := filepath.Rel(qdir, qfiles[0])
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	resp := ask(t, bufio.NewReader(c), c, "request=release", "mail_id="+strings.TrimPrefix(filepath.Base(qfiles[0]), "virus-"),
		"quar_type=F", "mail_file="+rel, "requested_by=<admin@example.com>")
	if len(resp) == 0 || !strings.HasPrefix(resp[0], "setreply=250 ") {
		t.Errorf("release: %q", resp)
	}
}

// logwatchReport runs logwatch's amavis service on day as the mail.log of a directory.
func logwatchReport(t *testing.T, logwatch, day string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mail.log"), []byte(day), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(logwatch, "--service", "amavis", "--logdir", dir, "--range", "All",
		"--detail", "High", "--output", "stdout").CombinedOutput()
	if err != nil {
		t.Fatalf("logwatch: %v\n%s", err, out)
	}
	return string(out)
}

// sections are the titles of a logwatch amavis report's summary and detail lines, without the
// counts; the unmatched lines (Perl amavisd's starting line is one of them) are not sections.
func sections(report string) []string {
	report, _, _ = strings.Cut(report, "**Unmatched Entries**")
	// a title follows its count by 3 spaces, a summary's sub-title by 5; the details below a
	// detail title are indented further
	title := regexp.MustCompile(`^\s+[\d.,]+[KMGT]?(?: {3}| {5})(\S.*?)\s*(?:-{3,}|\s{2,}[\d.]+%|\s{2,}[\d,]+)?$`)
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(report, "\n") {
		if m := title.FindStringSubmatch(l); m != nil && !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}
