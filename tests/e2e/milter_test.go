package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// milterRig is Debian's amavisd-milter in front of a private Postfix (smtpd_milters), talking
// AM.PDP to our daemon on a Unix socket in MYHOME, as Debian lays it out; no content_filter:
// the milter's verdict is the only check.
type milterRig struct {
	pf     *testenv.Postfix
	am     *daemon
	clamd  *testenv.Clamd
	sock   string // our AM.PDP socket
	milter *exec.Cmd
}

// nobody is daemon_user in these tests; the clients of our socket run as it too, as
// amavisd-milter and amavisd-submit run as Debian's amavis user.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

func startMilterRig(t *testing.T) *milterRig {
	t.Helper()
	milterBin := testenv.RequireProgram(t, "amavisd-milter", "/usr/sbin/amavisd-milter")
	clamd := testenv.StartClamd(t)
	milterPort := testenv.FreePort(t)
	pf := testenv.StartPostfix(t, testenv.PostfixOptions{MainCF: []string{
		fmt.Sprintf("smtpd_milters = inet:127.0.0.1:%d", milterPort),
		"milter_default_action = tempfail",
		"milter_protocol = 6",
	}})
	rules, err := os.ReadFile("../../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	am := newDaemon(t, daemonConfig{Port: testenv.FreePort(t), ForwardPort: atoi(t, portOf(pf.ForwardAddr)), Extra: []string{
		`unix_socketname = "{{home}}/amavisd.sock"`,
		`interface_policy = { SOCK = "AM.PDP-SOCK" }`,
		// a client from 127.0.0.2 gets D_REJECT for viruses, to see a reject through the milter
		`client_ipaddr_policy = [[["127.0.0.2"], "REJECTING"]]`,
		"[[local_domains_maps]]", `acl = [".example.com"]`,
		"[[av_scanners]]", `name = "ClamAV-clamd"`, `type = "clamd"`,
		fmt.Sprintf("sockets = [%q]", clamd.TCPAddr), `query = "INSTREAM"`,
		string(rules),
		`[policy_bank."AM.PDP-SOCK"]`, `protocol = "AM.PDP"`, `auth_required_release = false`,
		`[policy_bank.REJECTING]`, `final_virus_destiny = "D_REJECT"`,
	}})
	home := filepath.Join(am.Dir, "home")
	cfg, err := os.ReadFile(am.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(am.Config, bytes.ReplaceAll(cfg, []byte("{{home}}"), []byte(home)), 0o644); err != nil {
		t.Fatal(err)
	}
	am.start()
	r := &milterRig{pf: pf, am: am, clamd: clamd, sock: filepath.Join(home, "amavisd.sock")}

	// amavisd-milter writes each message below its working directory, which must not be
	// world-accessible: TEMPBASE, as Debian's /var/lib/amavis/tmp.
	r.milter = exec.Command(milterBin, "-f", "-s", fmt.Sprintf("inet:%d@127.0.0.1", milterPort),
		"-S", r.sock, "-w", filepath.Join(home, "tmp"), "-p", filepath.Join(home, "amavisd-milter.pid"))
	r.milter.SysProcAttr = &syscall.SysProcAttr{Credential: nobody, Setpgid: true}
	var milterOut bytes.Buffer
	r.milter.Stdout, r.milter.Stderr = &milterOut, &milterOut
	if err := r.milter.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { r.milter.Wait(); close(exited) }()
	t.Cleanup(func() {
		r.milter.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			r.milter.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("amavisd-milter printed:\n%s", milterOut.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", milterPort), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("amavisd-milter exited: %s\n%s", r.milter.ProcessState, milterOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("amavisd-milter does not listen on port %d:\n%s", milterPort, milterOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// mimeAttachment builds a multipart message with one attachment named name.
func mimeAttachment(id, name string, data []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString(data)
	var body strings.Builder
	for len(b64) > 76 {
		body.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	body.WriteString(b64 + "\r\n")
	return []byte("From: Sender <sender@example.org>\r\nTo: <rcpt@" + testenv.PostfixDomain + ">\r\n" +
		"Subject: attachment\r\nMessage-ID: " + id + "\r\nDate: Sun, 22 Nov 2026 12:00:00 +0000\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		body.String() + "--b1--\r\n")
}

// windowsProgram is the start of a Windows program, enough for file(1) to say so.
var windowsProgram = append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), bytes.Repeat([]byte{0}, 112)...)

// TestMilterVerdicts: Debian's amavisd-milter in front of Postfix asks us over AM.PDP. A clean
// message is delivered with the header fields amavis adds (X-Virus-Scanned inserted on top), EICAR
// is discarded (Postfix logs the milter's DISCARD) or, for a client whose policy bank has
// final_virus_destiny D_REJECT, rejected with our 554 reply; a banned program is discarded. Our
// log has amavis's main line for each, and no directory of the milter's is left behind.
func TestMilterVerdicts(t *testing.T) {
	t.Parallel()
	r := startMilterRig(t)

	if _, err := r.pf.Submit(sender, rcpt, message("<milter-clean@e2e>", "clean", "nothing to see\n")); err != nil {
		t.Fatal(err)
	}
	msgs := r.pf.WaitMessages(t, 1, 30*time.Second)
	m := msgs[0]
	if v := m.HeaderValues("X-Virus-Scanned"); len(v) != 1 || v[0] != "amavis at example.com" {
		t.Errorf("delivered X-Virus-Scanned = %q, want [amavis at example.com]:\n%s", v, m.Header)
	}
	// insheader at index 0: above Postfix's Received field, below what local(8) adds
	if x, rcvd := strings.Index(m.Header, "\nX-Virus-Scanned:"), strings.Index(m.Header, "\nReceived: from client.example.org"); x < 0 || rcvd < x {
		t.Errorf("X-Virus-Scanned is not above Postfix's Received field:\n%s", m.Header)
	}
	clean := r.am.waitLog(regexp.MustCompile(`Passed CLEAN \{RelayedInbound\}, AM\.PDP-SOCK `), 10*time.Second)
	for _, want := range []string{"[127.0.0.1]", "<sender@example.org> -> <rcpt@example.com>", "Message-ID: <milter-clean@e2e>"} {
		if !strings.Contains(clean, want) {
			t.Errorf("our Passed line lacks %q:\n%s", want, clean)
		}
	}

	qid, err := r.pf.Submit(sender, rcpt, message("<milter-eicar@e2e>", "eicar", testenv.EICAR+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	r.pf.WaitLog(t, regexp.MustCompile(qid+`: milter-discard: END-OF-MESSAGE from \S+: milter triggers DISCARD action;`), 30*time.Second)
	r.am.waitLog(regexp.MustCompile(`Blocked INFECTED \(`+regexp.QuoteMeta(r.clamd.VirusName)+`\) \{DiscardedInbound\}, AM\.PDP-SOCK .*Message-ID: <milter-eicar@e2e>`), 10*time.Second)

	_, err = r.pf.SubmitFrom("127.0.0.2", sender, rcpt, message("<milter-reject@e2e>", "eicar", testenv.EICAR+"\n"))
	want := regexp.MustCompile(`554: Reject, id=[0-9A-Za-z-]+ - INFECTED: ` + regexp.QuoteMeta(r.clamd.VirusName) + `$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Errorf("EICAR from 127.0.0.2 (D_REJECT): %v, want an error matching %s", err, want)
	}
	r.pf.WaitLog(t, regexp.MustCompile(`milter-reject: END-OF-MESSAGE from \S+\[127\.0\.0\.2\]: 5\.7\.0 Reject, id=[0-9A-Za-z-]+ - INFECTED: `+
		regexp.QuoteMeta(r.clamd.VirusName)+`;`), 10*time.Second)
	r.am.waitLog(regexp.MustCompile(`Blocked INFECTED \(`+regexp.QuoteMeta(r.clamd.VirusName)+`\) \{RejectedInbound\}, AM\.PDP-SOCK/REJECTING `), 10*time.Second)

	qid, err = r.pf.Submit(sender, rcpt, mimeAttachment("<milter-banned@e2e>", "setup.exe", windowsProgram))
	if err != nil {
		t.Fatal(err)
	}
	r.pf.WaitLog(t, regexp.MustCompile(qid+`: milter-discard: END-OF-MESSAGE from \S+: milter triggers DISCARD action;`), 30*time.Second)
	r.am.waitLog(regexp.MustCompile(`Blocked BANNED \(application/octet-stream,\.exe,\.exe-ms,setup\.exe\) \{DiscardedInbound\}`), 10*time.Second)

	// One more clean message after the blocked ones: only the two clean ones are delivered.
	if _, err := r.pf.Submit(sender, rcpt, message("<milter-clean2@e2e>", "clean", "still fine\n")); err != nil {
		t.Fatal(err)
	}
	r.pf.WaitMessages(t, 2, 30*time.Second)
	assertDeliveredOnce(t, r.pf, []string{"<milter-clean@e2e>", "<milter-clean2@e2e>"})
	if left := leftInTempbase(filepath.Join(r.am.Dir, "home", "tmp")); len(left) != 0 {
		t.Errorf("left in TEMPBASE: %v", left)
	}
}

// leftInTempbase lists what is in tempbase but our own message directories, which stay emptied
// for the next messages (amavis's TempDir), and their empty parts/.
func leftInTempbase(tempbase string) []string {
	var left []string
	filepath.WalkDir(tempbase, func(path string, e fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(tempbase, path)
		if err == nil && rel != "." && !(e.IsDir() && ourEmptiedDir.MatchString(rel)) {
			left = append(left, rel)
		}
		return nil
	})
	return left
}

// ourEmptiedDir: a message directory of ours and its parts/, what an emptied one holds.
var ourEmptiedDir = regexp.MustCompile(`^amavis-\d{8}T\d{6}-\d+-[A-Za-z0-9_-]{8}(/parts)?$`)

// submitClient is Debian's amavisd-submit with its USER CONFIGURABLE settings pointing at
// our socket and TEMPBASE, and log_level 2, so that it prints the response's attributes.
func submitClient(t *testing.T, dir, socket, tempbase string) string {
	t.Helper()
	prog := testenv.RequireProgram(t, "amavisd-submit", "/usr/sbin/amavisd-submit")
	src, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{
		{"$log_level = 0;", "$log_level = 2;"},
		{"$tempbase = '/var/lib/amavis/tmp';", "$tempbase = '" + tempbase + "';"},
		{"$socketname = '/var/lib/amavis/amavisd.sock';", "$socketname = '" + socket + "';"},
	} {
		if !bytes.Contains(src, []byte(kv[0])) {
			t.Fatalf("%s has no %q line to configure", prog, kv[0])
		}
		src = bytes.Replace(src, []byte(kv[0]), []byte(kv[1]), 1)
	}
	// readable by nobody, which runs it
	script := filepath.Join(dir, "amavisd-submit")
	if err := os.WriteFile(script, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestSubmitVerdicts: Debian's amavisd-submit gets the verdicts the milter gets, as response
// attributes: continue with an insheader for X-Virus-Scanned, discard for EICAR and for a
// banned program; its exit code is 0 for each (it treats discard as done), and the directory it
// made below TEMPBASE is gone (tempdir_removed_by=server).
func TestSubmitVerdicts(t *testing.T) {
	t.Parallel()
	r := startMilterRig(t)
	home := filepath.Join(r.am.Dir, "home")
	script := submitClient(t, r.am.Dir, r.sock, filepath.Join(home, "tmp"))
	for _, tc := range []struct {
		name string
		msg  []byte
		want []string
	}{
		{"clean", message("<submit-clean@e2e>", "clean", "fine\n"), []string{
			`< setreply=250 2.5.0 Ok, id=\S+, continue delivery`, `< insheader=0 X-Virus-Scanned amavis at example.com`,
			`< return_value=continue`, `< exit_code=0`}},
		{"eicar", message("<submit-eicar@e2e>", "eicar", testenv.EICAR+"\n"), []string{
			`< setreply=250 2.7.0 Ok, discarded, id=\S+ - INFECTED: ` + regexp.QuoteMeta(r.clamd.VirusName), `< return_value=discard`, `< exit_code=99`}},
		{"banned", mimeAttachment("<submit-banned@e2e>", "setup.exe", windowsProgram), []string{
			`< setreply=250 2.7.0 Ok, discarded, id=\S+ - BANNED: application/octet-stream,\.exe,\.exe-ms,setup\.exe`, `< return_value=discard`, `< exit_code=99`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, script, sender, rcpt[0])
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
			cmd.Stdin = bytes.NewReader(tc.msg)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("amavisd-submit: %v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !regexp.MustCompile(`(?m)^` + w + `$`).Match(out) {
					t.Errorf("amavisd-submit printed no line matching %s:\n%s", w, out)
				}
			}
		})
	}
	if left := leftInTempbase(filepath.Join(home, "tmp")); len(left) != 0 {
		t.Errorf("left in TEMPBASE: %v", left)
	}
}

// responseOf runs amavisd-submit (script) as the given user and returns the response's
// attributes it printed, sorted, with log ids and mail ids replaced by ID.
func responseOf(t *testing.T, script string, cred *syscall.Credential, msg []byte) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, sender, rcpt[0])
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("amavisd-submit: %v\n%s", err, out)
	}
	ids := regexp.MustCompile(`id=[^ ,]+`)
	var attrs []string
	for _, l := range strings.Split(string(out), "\n") {
		if a, ok := strings.CutPrefix(l, "< "); ok && !strings.HasPrefix(a, "log_id=") {
			attrs = append(attrs, ids.ReplaceAllString(a, "id=ID"))
		}
	}
	sort.Strings(attrs)
	return attrs
}

// TestSubmitSideBySidePerl: amavisd-submit gets the same response attributes from us as from
// Debian's Perl amavisd for a clean message, EICAR and a banned program (setreply,
// return_value, exit_code and the header fields to insert), ids aside.
func TestSubmitSideBySidePerl(t *testing.T) {
	t.Parallel()
	r := startMilterRig(t)
	perl := testenv.StartPerlAmavisd(t, testenv.PerlOptions{Hostname: daemonHostname, Domain: "example.com",
		Forward: "127.0.0.1:" + portOf(r.pf.ForwardAddr), MaxServers: 2, AMPDP: true, Conf: testenv.PerlReference(r.clamd.TCPAddr)})
	ours := submitClient(t, r.am.Dir, r.sock, filepath.Join(r.am.Dir, "home", "tmp"))
	theirsDir, err := os.MkdirTemp("", "perl-submit")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(theirsDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(theirsDir) })
	theirs := submitClient(t, theirsDir, perl.Socket, filepath.Join(perl.Home, "tmp"))
	u, _ := user.Lookup("amavis")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	amavisUser := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"clean", message("<side-clean@e2e>", "clean", "fine\n")},
		{"eicar", message("<side-eicar@e2e>", "eicar", testenv.EICAR+"\n")},
		{"banned", mimeAttachment("<side-banned@e2e>", "setup.exe", windowsProgram)},
	} {
		// a Unix mail file has LF line ends (CR in it would be a bad header to amavis)
		msg := bytes.ReplaceAll(tc.msg, []byte("\r\n"), []byte("\n"))
		got := responseOf(t, ours, nobody, msg)
		want := responseOf(t, theirs, amavisUser, msg)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: our response\n%s\nPerl amavisd's\n%s", tc.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
