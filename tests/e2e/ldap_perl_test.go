package e2e

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// ldapSide is one daemon of the comparison with its own next hop.
type ldapSide struct {
	name    string
	addr    string
	next    *smtptest.NextHop
	logFile string
}

// perlLDAPConf is a Debian-like amavisd.conf with LDAP lookups and two banned rule sets.
func perlLDAPConf(clamd, ldapAddr string) string {
	lhost, lport, _ := net.SplitHostPort(ldapAddr)
	return testenv.PerlPath + testenv.PerlClamd(clamd) + fmt.Sprintf(`$QUARANTINEDIR = undef;
$virus_quarantine_method = undef;
$banned_files_quarantine_method = undef;
@local_domains_acl = ( ".$mydomain" );
$log_recip_templ = undef;
@bypass_spam_checks_maps = (1);
$final_virus_destiny = D_DISCARD;
$final_banned_destiny = D_DISCARD;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
$virus_admin = undef;
$X_HEADER_LINE = "Debian $myproduct_name at $mydomain";
$banned_filename_re = new_RE(
  qr'\.[^./]*\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\.?$'i,
  qr'.\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i,
  qr'^\.(exe-ms)$',
);
%%banned_rules = ('DEFAULT' => $banned_filename_re, 'PASSALL' => new_RE([qr'^' => 0]));
$enable_ldap = 1;
$default_ldap = { hostname => '%s', port => %s, timeout => 5,
  base => 'ou=People,dc=example,dc=com' };
`, lhost, lport)
}

// oursLDAPConf is perlLDAPConf in our TOML.
func oursLDAPConf(home string, port int, next, clamdAddr, ldapAddr string) string {
	q := strconv.Quote
	lhost, lport, _ := net.SplitHostPort(ldapAddr)
	return strings.Join([]string{
		"MYHOME = " + q(home),
		"TEMPBASE = " + q(home+"/tmp"),
		"pid_file = " + q(home+"/amavisd.pid"),
		`daemon_user = "amavis"`,
		`daemon_group = "amavis"`,
		`myhostname = "amavis.example.com"`,
		`mydomain = "example.com"`,
		fmt.Sprintf("inet_socket_port = [%d]", port),
		`inet_socket_bind = ["127.0.0.1"]`,
		"forward_method = " + q("smtp:["+strings.Replace(next, ":", "]:", 1)),
		"max_servers = 1",
		"DO_SYSLOG = false",
		"LOGFILE = " + q(home+"/amavisd.log"),
		"log_level = 0",
		`log_recip_templ = ""`, // as the Perl side's undef
		`path = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]`,
		`final_virus_destiny = "D_DISCARD"`,
		`final_banned_destiny = "D_DISCARD"`,
		`X_HEADER_LINE = "Debian amavisd-new at example.com"`,
		"enable_ldap = true",
		"default_ldap = { hostname = [" + q(lhost) + "], port = " + lport + `, timeout = 5, base = "ou=People,dc=example,dc=com" }`,
		"[[local_domains_maps]]",
		`acl = [".example.com"]`,
		"[[av_scanners]]",
		`name = "ClamAV-clamd"`,
		`type = "clamd"`,
		"sockets = [" + q(clamdAddr) + "]",
		"[banned_rules]",
		`DEFAULT = ["qr'\\.[^./]*\\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\\.?$'i", "qr'.\\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i", "qr'^\\.(exe-ms)$'"]`,
		`PASSALL = [["qr'^'", false]]`,
	}, "\n") + "\n"
}

// startLDAPSide starts Debian's amavisd ("amavis") or ours and waits until it greets and its
// log says it listens.
func startLDAPSide(t *testing.T, name string, clamd *testenv.Clamd, slapd *testenv.Slapd) *ldapSide {
	t.Helper()
	sd := &ldapSide{name: name, next: smtptest.Start(t, smtptest.Options{})}
	if name == "amavis" {
		p := testenv.StartPerlAmavisd(t, testenv.PerlOptions{Hostname: "amavis.example.com", Domain: "example.com",
			Forward: sd.next.Addr, Modules: []string{"Net::LDAP"}, Conf: perlLDAPConf(clamd.TCPAddr, slapd.Addr)})
		sd.addr, sd.logFile = p.SMTPAddr, p.LogFile
		return sd
	}
	u, err := user.Lookup("amavis")
	if err != nil {
		t.Skipf("user amavis (package amavisd-new): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "ldapsbs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(home, "tmp"), filepath.Join(home, "db")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, uid, gid)
	}
	sd.logFile = filepath.Join(home, "amavisd.log")
	port := testenv.FreePort(t)
	sd.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	bin := amavisdBinary(t)
	conf := filepath.Join(dir, "amavisd.toml")
	os.WriteFile(conf, []byte(oursLDAPConf(home, port, sd.next.Addr, clamd.TCPAddr, slapd.Addr)), 0o644)
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf, "foreground")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, tail(readLog(sd.logFile), 6000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "stdout"))
			t.Fatalf("%s exited at start:\n%s\n%s", name, b, readLog(sd.logFile))
		default:
		}
		l := readLog(sd.logFile)
		if g, err := testenv.Greeting(sd.addr); err == nil && strings.HasPrefix(g, "220 ") &&
			(strings.Contains(l, "starting. ") || strings.Contains(l, "Net::Server: ")) {
			return sd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not greet on %s:\n%s", name, sd.addr, l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readLog(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// smtpSend sends one message over SMTP and returns the reply to the end of DATA, or the
// first reply that refused a command, prefixed with the command. from may be followed by MAIL
// parameters ("a@b SIZE=5000").
func smtpSend(t *testing.T, addr, from string, rcpts []string, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	tp := textproto.NewConn(c)
	step := func(cmd string, code int) (string, bool) {
		if cmd != "" {
			tp.PrintfLine("%s", cmd)
		}
		got, text, err := tp.ReadResponse(code)
		if err != nil {
			if got == 0 {
				t.Fatalf("%s: %s: %v", addr, cmd, err)
			}
			return fmt.Sprintf("%s: %d %s", strings.Fields(cmd + " ?")[0], got, text), false
		}
		return "", true
	}
	if r, ok := step("", 220); !ok {
		return r
	}
	addr0, params, _ := strings.Cut(from, " ")
	mail := "MAIL FROM:<" + addr0 + ">"
	if params != "" {
		mail += " " + params
	}
	cmds := []string{"EHLO mta.example.com", mail}
	for _, r := range rcpts {
		cmds = append(cmds, "RCPT TO:<"+r+">")
	}
	for _, cmd := range cmds {
		if r, ok := step(cmd, 250); !ok {
			return r
		}
	}
	if r, ok := step("DATA", 354); !ok {
		return r
	}
	w := tp.DotWriter()
	w.Write([]byte(msg))
	w.Close()
	code, text, err := tp.ReadResponse(0)
	if code == 0 {
		t.Fatalf("%s: after DATA: %v", addr, err)
	}
	tp.PrintfLine("QUIT")
	return fmt.Sprintf("%d %s", code, text)
}

var ldapNormalize = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`^.*?\]: `), ""},
	{regexp.MustCompile(`\b\d{5}-\d{2,}(-\d+)?\b`), "LOGID"},
	{regexp.MustCompile(`\[127\.0\.0\.1\]:\d+`), "[127.0.0.1]:PORT"},
	{regexp.MustCompile(`mail_id: [A-Za-z0-9_+-]{12}`), "mail_id: X"},
	{regexp.MustCompile(`\d+ ms$`), "N ms"},
	{regexp.MustCompile(`id=[A-Za-z0-9_+-]{12}\b`), "id=X"},
}

func normalizeLDAP(s string) string {
	for _, n := range ldapNormalize {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}

// mainLines are the Passed/Blocked lines of a log from byte offset from, normalised.
func mainLines(log string, from int) []string {
	var out []string
	for _, l := range strings.Split(log[from:], "\n") {
		if strings.Contains(l, ") Passed ") || strings.Contains(l, ") Blocked ") {
			out = append(out, normalizeLDAP(l))
		}
	}
	return out
}

// TestLDAPSideBySide: Debian's amavisd-new 2.13 and our daemon ask the same slapd for the
// same recipients and get the same messages: the replies, the main log lines and what each
// next hop received are the same. With slapd stopped both answer the RCPT with 421 and end
// the session, delivering nothing.
func TestLDAPSideBySide(t *testing.T) {
	t.Parallel()
	clamd := testenv.StartClamd(t)
	slapd := testenv.StartSlapd(t, testenv.SlapdPeople)
	sides := []*ldapSide{startLDAPSide(t, "amavis", clamd, slapd), startLDAPSide(t, "ours", clamd, slapd)}
	pe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), make([]byte, 112)...)
	head := "From: sender@sender.example.org\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\nMessage-ID: <MSGID@sender.example.org>\r\nSubject: ldap\r\n"
	eicar := head + "\r\n" + testenv.EICAR + "\r\n"
	exe := head + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(pe) + "\r\n--b1--\r\n"
	clean := head + "\r\nclean\r\n"
	const (
		passed    = "reply: 250 2.0.0 from MTA("
		discarded = "reply: 250 2.7.0 Ok, discarded, id=LOGID - "
	)
	cases := []struct {
		name, msg string
		rcpts     []string
		want      string // the start of both replies, normalised
	}{
		{"lover", eicar, []string{"alice@example.com"}, passed},
		{"lover-and-default", eicar, []string{"alice@example.com", "bob@example.com"}, passed},
		{"bypass", eicar, []string{"bypass@example.com"}, passed},
		{"default", eicar, []string{"bob@example.com"}, discarded + "INFECTED: " + clamd.VirusName},
		{"passall", exe, []string{"exe@example.com"}, passed},
		{"banned-default", exe, []string{"bob@example.com"}, discarded + "BANNED: "},
		{"not-local", clean, []string{"carol@example.com"}, passed},
		{"local-by-entry", clean, []string{"dan@example.net"}, passed},
		{"unknown", clean, []string{"nobody@example.org"}, passed},
		{"size-limit", clean, []string{"small@example.com"}, "reply: RCPT: 552 5.3.4 Declared message size (100000 B) exceeds size limit for recipient <small@example.com>"},
		{"size-default", clean, []string{"bob@example.com"}, passed},
	}
	for _, c := range cases {
		var got [2][]string
		for i, sd := range sides {
			from := len(readLog(sd.logFile))
			msgs := len(sd.next.Msgs())
			mailFrom := "sender@sender.example.org"
			if strings.HasPrefix(c.name, "size-") {
				mailFrom += " SIZE=100000"
			}
			reply := smtpSend(t, sd.addr, mailFrom, c.rcpts, strings.Replace(c.msg, "MSGID", c.name, 1))
			got[i] = append(got[i], "reply: "+normalizeLDAP(reply))
			var lines []string
			for deadline := time.Now().Add(10 * time.Second); len(lines) == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				lines = mainLines(readLog(sd.logFile), from)
			}
			got[i] = append(got[i], lines...)
			for _, m := range sd.next.Msgs()[msgs:] {
				got[i] = append(got[i], fmt.Sprint("delivered to ", m.Rcpts))
			}
		}
		if !strings.HasPrefix(got[1][0], c.want) {
			t.Errorf("%s: ours %q, want %q...", c.name, got[1][0], c.want)
		}
		if strings.Join(got[0], "\n") != strings.Join(got[1], "\n") {
			t.Errorf("%s:\namavis:\n  %s\nours:\n  %s", c.name, strings.Join(got[0], "\n  "), strings.Join(got[1], "\n  "))
		}
	}
	slapd.Stop()
	var replies []string
	var logs [2][]string
	perlLine := regexp.MustCompile(` at /usr/share/perl5/\S+ line \d+\.`)
	for i, sd := range sides {
		msgs := len(sd.next.Msgs())
		from := len(readLog(sd.logFile))
		reply := smtpSend(t, sd.addr, "sender@sender.example.org", []string{"bob@example.com"}, strings.Replace(clean, "MSGID", "down", 1))
		replies = append(replies, reply)
		if n := len(sd.next.Msgs()) - msgs; n != 0 {
			t.Errorf("%s with slapd stopped: %d delivered", sd.name, n)
		}
		want := "Requesting process rundown after fatal error"
		for deadline := time.Now().Add(10 * time.Second); !strings.Contains(readLog(sd.logFile)[from:], want) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		}
		for _, l := range strings.Split(strings.TrimSpace(readLog(sd.logFile)[from:]), "\n") {
			logs[i] = append(logs[i], perlLine.ReplaceAllString(normalizeLDAP(l), ""))
		}
	}
	if replies[0] != replies[1] || replies[1] != "RCPT: 421 4.3.2 Service shutting down, closing channel" {
		t.Errorf("slapd stopped:\namavis: %s\nours:   %s", replies[0], replies[1])
	}
	if got := strings.Join(logs[1], "\n"); !strings.Contains(got, "NOTICE: do_search: trying again: LDAP_OPERATIONS_ERROR\n") ||
		!strings.Contains(got, "(!!)TROUBLE in process_request: connect_to_ldap: unable to connect\n") {
		t.Errorf("slapd stopped, our log lacks amavis's lines:\n%s", got)
	}
	if strings.Join(logs[0], "\n") != strings.Join(logs[1], "\n") {
		t.Errorf("slapd stopped, the log:\namavis:\n  %s\nours:\n  %s", strings.Join(logs[0], "\n  "), strings.Join(logs[1], "\n  "))
	}
}
