package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// quarantineRig is a pipeline whose daemon scans with a private clamd, quarantines under
// QUARANTINEDIR with one level of subdirectories, notifies the virus admin (a mailbox of
// the private Postfix) and serves AM.PDP on a Unix socket: Debian's amavis settings.
type quarantineRig struct {
	pipeline
	clamd *testenv.Clamd
	qdir  string // QUARANTINEDIR
	sock  string // the AM.PDP socket (unix_socketname)
	dir   string // holds qdir, sock and any site template
}

const virusAdmin = "postmaster@" + testenv.PostfixDomain

// startQuarantineRig starts clamd, Postfix and our daemon. bank are the lines of the
// AM.PDP-SOCK policy bank after its protocol; extra top-level TOML lines may use
// {{dir}} for the rig's directory.
func startQuarantineRig(t *testing.T, bank []string, extra ...string) *quarantineRig {
	t.Helper()
	clamd := testenv.StartClamd(t)
	// Short (a socket path fits in 108 bytes) and reachable by nobody, unlike t.TempDir().
	dir, err := os.MkdirTemp("", "amq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &quarantineRig{clamd: clamd, dir: dir, qdir: filepath.Join(dir, "virusmails"), sock: filepath.Join(dir, "amavisd.sock")}
	// The daemon writes the quarantine as daemon_user nobody.
	if err := os.Mkdir(r.qdir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(r.qdir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cfg := []string{
		fmt.Sprintf("QUARANTINEDIR = %q", r.qdir),
		"quarantine_subdir_levels = 1",
		fmt.Sprintf("virus_admin = %q", virusAdmin),
		fmt.Sprintf("unix_socketname = %q", r.sock),
		`interface_policy = { SOCK = "AM.PDP-SOCK" }`,
	}
	for _, l := range extra {
		cfg = append(cfg, strings.ReplaceAll(l, "{{dir}}", dir))
	}
	// Debian's @local_domains_acl = (".$mydomain"): the recipient is local, the mail Inbound.
	cfg = append(cfg, "[[local_domains_maps]]", `acl = [".example.com"]`, "[[av_scanners]]", `name = "ClamAV-clamd"`, `type = "clamd"`,
		fmt.Sprintf("sockets = [%q]", clamd.TCPAddr), `query = "INSTREAM"`,
		`[policy_bank."AM.PDP-SOCK"]`, `protocol = "AM.PDP"`)
	cfg = append(cfg, bank...)
	// Postfix logs the client's port, which our notice names.
	r.pipeline = startPipeline(t, "lmtp", 2, []string{"smtpd_client_port_logging = yes"}, cfg...)
	return r
}

// blocked is what the rig saw of one EICAR message: Postfix's queue id, the client's
// port, our log id and mail_id, and the quarantine file's path.
type blocked struct {
	qid, port, logID, mailID, file string
}

// submitEICAR sends an EICAR message from 127.0.0.2 and checks the discard as Postfix logs
// it and the Blocked line of our log; it returns what identifies the message.
func (r *quarantineRig) submitEICAR(t *testing.T, msgID string) blocked {
	t.Helper()
	qid, err := r.pf.SubmitFrom("127.0.0.2", sender, rcpt, message(msgID, "eicar quarantine", testenv.EICAR+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := blocked{qid: qid}
	client := r.pf.WaitLog(t, regexp.MustCompile(`postfix/smtpd\[\d+\]: `+qid+`: client=\S+\[127\.0\.0\.2\]:(\d+)$`), 10*time.Second)
	b.port = client[strings.LastIndex(client, ":")+1:]

	feed := r.pf.WaitLog(t, regexp.MustCompile(`postfix/amavisfeed/lmtp\[\d+\]: `+qid+`: to=<rcpt@example\.com>, .*status=sent \(`), 30*time.Second)
	discard := regexp.MustCompile(`status=sent \(250 2\.7\.0 Ok, discarded, id=([0-9-]+) - INFECTED: ` + regexp.QuoteMeta(r.clamd.VirusName) + `\)$`).FindStringSubmatch(feed)
	if discard == nil {
		t.Fatalf("Postfix's line for the EICAR message lacks our 250 2.7.0 discard reply:\n%s", feed)
	}
	b.logID = discard[1]

	// amavis's main log line ($log_short_templ in Amavis.pm): no oldest public IP (127.0.0.2 is not
	// public), the quarantine location relative to QUARANTINEDIR, Postfix's queue id from XFORWARD.
	line := r.am.waitLog(regexp.MustCompile(`Blocked INFECTED`), 10*time.Second)
	want := regexp.MustCompile(`\(` + regexp.QuoteMeta(b.logID) + `\) Blocked INFECTED \(` + regexp.QuoteMeta(r.clamd.VirusName) +
		`\) \{DiscardedInbound,Quarantined\}, \[127\.0\.0\.2\]:` + b.port + ` <sender@example\.org> -> <rcpt@example\.com>, ` +
		`quarantine: (\w)/virus-([A-Za-z0-9_-]{12}), Queue-ID: ` + qid + `, Message-ID: ` + regexp.QuoteMeta(msgID) +
		`, mail_id: ([A-Za-z0-9_-]{12}), Hits: -, size: \d+, \d+ ms$`)
	m := want.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("our Blocked line does not match %s:\n%s", want, line)
	}
	if m[2] != m[3] || m[1] != m[3][:1] {
		t.Errorf("quarantine %s/virus-%s for mail_id %s: want %s/virus-%s", m[1], m[2], m[3], m[3][:1], m[3])
	}
	b.mailID = m[3]
	r.am.waitLog(regexp.MustCompile(`\(`+regexp.QuoteMeta(b.logID)+`\) local delivery: <sender@example\.org> -> virus-quarantine, mbx=`+m[1]+`/virus-`+b.mailID+`$`), 10*time.Second)
	b.file = filepath.Join(r.qdir, b.mailID[:1], "virus-"+b.mailID)
	return b
}

// noticeFor waits for the virus admin's notice about mailID and returns it.
func (r *quarantineRig) noticeFor(t *testing.T, mailID string) testenv.MailboxMessage {
	t.Helper()
	id := "<VA" + mailID + "@" + daemonHostname + ">"
	for _, m := range r.pf.WaitMessages(t, 1, 30*time.Second) {
		if m.MessageID == id {
			return m
		}
	}
	msgs, _ := r.pf.Messages()
	t.Fatalf("no notice %s among the %d messages of the mailbox", id, len(msgs))
	return testenv.MailboxMessage{}
}

// releaseClient is Debian's amavisd-release with $socketname, the setting of its "USER
// CONFIGURABLE" block, pointing at socket.
func releaseClient(t *testing.T, socket string) string {
	t.Helper()
	prog := testenv.RequireProgram(t, "amavisd-release", "/usr/sbin/amavisd-release")
	src, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	const line = "$socketname = '/var/lib/amavis/amavisd.sock';"
	if !bytes.Contains(src, []byte(line)) {
		t.Fatalf("%s has no %q line to configure", prog, line)
	}
	script := filepath.Join(t.TempDir(), "amavisd-release")
	src = bytes.Replace(src, []byte(line), []byte("$socketname = '"+socket+"';"), 1)
	if err := os.WriteFile(script, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// release runs the client; it prints the server's setreply lines and exits 0 whatever they say.
func release(t *testing.T, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("amavisd-release %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// waitReleased waits for the released copy of msgID in the mailbox.
func (r *quarantineRig) waitReleased(t *testing.T, msgID string) testenv.MailboxMessage {
	t.Helper()
	for _, m := range r.pf.WaitMessages(t, 2, 30*time.Second) {
		if m.MessageID == msgID {
			return m
		}
	}
	msgs, _ := r.pf.Messages()
	t.Fatalf("%s not among the %d messages of the mailbox", msgID, len(msgs))
	return testenv.MailboxMessage{}
}

// checkReleased checks a released copy as the recipient sees it (as Amavis::Notify's
// msg_from_quarantine makes it): the Resent-* fields, a Received field of the release on top of
// ours, none of the quarantine's leading fields, the original header and body.
func checkReleased(t *testing.T, m testenv.MailboxMessage, b blocked) {
	t.Helper()
	one := func(name string) string {
		v := m.HeaderValues(name)
		if len(v) != 1 {
			t.Errorf("released copy has %d %s fields, want 1:\n%s", len(v), name, m.Header)
			return ""
		}
		return v[0]
	}
	if v := one("Delivered-To"); v != rcpt[0] {
		t.Errorf("released copy delivered to %q, want %s", v, rcpt[0])
	}
	if v := one("Resent-From"); v != `"Content-filter at `+daemonHostname+`" <postmaster@`+daemonHostname+`>` {
		t.Errorf("Resent-From = %q", v)
	}
	if v := one("Resent-To"); v != "<"+rcpt[0]+">" {
		t.Errorf("Resent-To = %q", v)
	}
	if v := one("Resent-Date"); v != "" {
		if d, err := time.Parse("Mon, _2 Jan 2006 15:04:05 -0700 (MST)", v); err != nil || time.Since(d) > time.Minute || time.Since(d) < -time.Minute {
			t.Errorf("Resent-Date %q: %v, want about now", v, err)
		}
	}
	if v := one("Resent-Message-ID"); !regexp.MustCompile(`^<` + regexp.QuoteMeta(b.mailID) + `-[A-Za-z0-9_-]{12}@` + regexp.QuoteMeta(daemonHostname) + `>$`).MatchString(v) {
		t.Errorf("Resent-Message-ID = %q, want <%s-NEWID@%s>", v, b.mailID, daemonHostname)
	}
	for _, f := range []string{"X-Quarantine-ID", "X-Envelope-From", "X-Envelope-To", "X-Envelope-To-Blocked", "X-Amavis-Alert"} {
		if v := m.HeaderValues(f); len(v) != 0 {
			t.Errorf("the quarantine's %s came along: %q", f, v)
		}
	}
	// Top down: the re-injection smtpd's, the release's, ours from the scan, Postfix's.
	var release, scan int = -1, -1
	for i, v := range m.HeaderValues("Received") {
		switch {
		case strings.Contains(v, "(amavis, unix socket) id ") && release < 0: // amavis's make_received_header_field
			release = i
		case strings.Contains(v, "(amavis, port ") && strings.Contains(v, " id "+b.mailID+" "):
			scan = i
		}
	}
	if release < 0 || scan < 0 || release > scan {
		t.Errorf("Received fields: want the release's (unix socket) above ours (id %s):\n%s", b.mailID, m.Header)
	}
	if v := one("Subject"); v != "eicar quarantine" {
		t.Errorf("Subject = %q", v)
	}
	if string(m.Body) != testenv.EICAR+"\n" {
		t.Errorf("released body %q, want EICAR", m.Body)
	}
}

// TestQuarantineNoticeRelease: through the real Postfix, EICAR with Debian's settings is
// discarded and quarantined, the virus admin's mailbox gets the notice, and Debian's
// amavisd-release puts the original into the recipient's mailbox by the file name our log
// names (the AM.PDP-SOCK bank has auth_required_release off, as Debian's has).
func TestQuarantineNoticeRelease(t *testing.T) {
	t.Parallel()
	r := startQuarantineRig(t, []string{"auth_required_release = false"})
	const msgID = "<quar@e2e>"
	b := r.submitEICAR(t, msgID)

	// The notice ($notify_virus_admin_templ in Amavis.pm): the admin's mailbox, our From, the
	// Subject with the client.
	n := r.noticeFor(t, b.mailID)
	if v := n.HeaderValues("Delivered-To"); len(v) != 1 || v[0] != virusAdmin {
		t.Errorf("notice delivered to %q, want %s", v, virusAdmin)
	}
	if want := "From postmaster@" + daemonHostname + " "; !strings.HasPrefix(n.FromLine, want) {
		t.Errorf("notice envelope %q, want sender postmaster@%s", n.FromLine, daemonHostname)
	}
	if v := n.HeaderValues("From"); len(v) != 1 || v[0] != `"Content-filter at `+daemonHostname+`" <postmaster@`+daemonHostname+`>` {
		t.Errorf("notice From %q", v)
	}
	wantSubject := "VIRUS (" + r.clamd.VirusName + ") in mail FROM [127.0.0.2]:" + b.port + " <" + sender + ">"
	if v := n.HeaderValues("Subject"); len(v) != 1 || v[0] != wantSubject {
		t.Errorf("notice Subject %q, want %q", v, wantSubject)
	}
	if v := n.HeaderValues("To"); len(v) != 1 || v[0] != virusAdmin && v[0] != "<"+virusAdmin+">" {
		t.Errorf("notice To %q, want %s", v, virusAdmin)
	}
	quarName := b.mailID[:1] + "/virus-" + b.mailID
	for _, want := range []string{"Virus found: " + r.clamd.VirusName, "Log reference: " + b.logID + "/" + b.mailID, "Quarantined as: " + quarName} {
		if !bytes.Contains(n.Body, []byte(want)) {
			t.Errorf("notice body lacks %q:\n%s", want, n.Body)
		}
	}

	// The quarantine file (Amavis.pm's prepare_header_edits_for_quarantine): the leading fields in
	// order, then the message as Postfix passed it to us.
	data, err := os.ReadFile(b.file)
	if err != nil {
		t.Fatalf("quarantine file: %v", err)
	}
	// folded before the virus name when longer than 78 columns, as amavis's hdr folds it
	alert := "X-Amavis-Alert: INFECTED, message contains virus: " + r.clamd.VirusName
	if len(alert) > 78 {
		alert = "X-Amavis-Alert: INFECTED, message contains virus:\n " + r.clamd.VirusName
	}
	lead := strings.Join([]string{
		"Return-Path: <" + sender + ">",
		"Delivered-To: virus-quarantine",
		"X-Envelope-From: <" + sender + ">",
		"X-Envelope-To: <" + rcpt[0] + ">",
		"X-Envelope-To-Blocked: <" + rcpt[0] + ">",
		"X-Quarantine-ID: <" + b.mailID + ">",
		alert,
		// No spam check ran: the quarantine's spam fields say so, as amavis's do.
		"X-Spam-Flag: NO",
		"X-Spam-Score: 0",
		"X-Spam-Level:",
		"X-Spam-Status: No, score=x tag=x tag2=x kill=x tests=[] autolearn=unavailable",
		"",
	}, "\n")
	if !bytes.HasPrefix(data, []byte(lead)) {
		t.Fatalf("quarantine file does not start with\n%s\nit starts:\n%s", lead, data[:min(len(data), len(lead)+200)])
	}
	rest := string(data[len(lead):])
	ours := regexp.MustCompile(`^Received: from ` + regexp.QuoteMeta(testenv.PostfixHostname) + ` \(\[127\.0\.0\.1\]\)\n by localhost \(` +
		regexp.QuoteMeta(daemonHostname) + ` \[127\.0\.0\.1\]\) \(amavis, port ` + portOf(r.am.Addr) + `\) with LMTP\n id ` + b.mailID +
		` for <rcpt@example\.com>; [A-Z][a-z]{2}, [ 0-9]?\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \([A-Z]+\)\n`).FindString(rest)
	if ours == "" {
		t.Fatalf("after the leading fields no Received field of ours:\n%s", rest[:min(len(rest), 600)])
	}
	orig := rest[len(ours):]
	// Postfix's own Received field for the submission, then the message as submitted.
	if !regexp.MustCompile(`^Received: from client\.example\.org \(\S+ \[127\.0\.0\.2\]\)\n\tby ` + regexp.QuoteMeta(testenv.PostfixHostname) + ` \(Postfix\) with ESMTP id ` + b.qid + `\n`).MatchString(orig) {
		t.Errorf("the original does not start with Postfix's Received field for %s:\n%s", b.qid, orig[:min(len(orig), 400)])
	}
	// Then every field and the body as submitted (Postfix's cleanup may add fields).
	submitted := strings.ReplaceAll(string(message(msgID, "eicar quarantine", testenv.EICAR+"\n")), "\r\n", "\n")
	subHdr, subBody, _ := strings.Cut(submitted, "\n\n")
	origHdr, origBody, _ := strings.Cut(orig, "\n\n")
	if origBody != subBody {
		t.Errorf("quarantined body %q, want %q", origBody, subBody)
	}
	for _, l := range strings.Split(subHdr, "\n") {
		if !strings.Contains(origHdr+"\n", "\n"+l+"\n") {
			t.Errorf("quarantined header lacks %q:\n%s", l, origHdr)
		}
	}
	if fi, err := os.Stat(b.file); err == nil && fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("quarantine file mode %v: readable by others", fi.Mode())
	}

	// Nothing reached the recipient: the mailbox holds the notice only.
	time.Sleep(300 * time.Millisecond)
	if msgs, err := r.pf.Messages(); err != nil || len(msgs) != 1 {
		t.Fatalf("mailbox before the release: %d messages, %v; want the notice only", len(msgs), err)
	}

	// Release by the file name of our log line.
	out := release(t, releaseClient(t, r.sock), "virus-"+b.mailID)
	reply := regexp.MustCompile(`^250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:` + portOf(r.pf.ForwardAddr) + `\): 250 2\.0\.0 Ok: queued as ([0-9A-F]+)\n$`).FindStringSubmatch(out)
	if reply == nil {
		t.Fatalf("amavisd-release printed %q, want one 250 2.0.0 from MTA(...) line", out)
	}
	m := r.waitReleased(t, msgID)
	checkReleased(t, m, b)
	r.pf.WaitLog(t, regexp.MustCompile(`postfix/local\[\d+\]: `+reply[1]+`: to=<rcpt@example\.com>, .*status=sent \(delivered to file`), 10*time.Second)
	r.am.waitLog(regexp.MustCompile(`\(`+regexp.QuoteMeta(b.mailID)+`\) SEND from <sender@example\.org> -> <rcpt@example\.com>, .*250 2\.0\.0 Ok: queued as `+reply[1]), 10*time.Second)
	if _, err := os.Stat(b.file); err != nil {
		t.Errorf("the quarantine file went with the release: %v", err)
	}
	assertDeliveredOnce(t, r.pf, []string{msgID, "<VA" + b.mailID + "@" + daemonHostname + ">"})
}

// A site's virus admin template (notify_virus_admin_templ) that hands the admin the
// secret_id, so the admin can release under auth_required_release.
const secretTemplate = `From: %f
Date: %d
Subject: VIRUS (%V) in mail %i
To: [%T|, ]
Message-ID: <VA%i@%h>

Release with: amavisd-release %q [:secret_id]
`

// TestReleaseRequiresSecret: with auth_required_release on (amavis's default) in the
// AM.PDP bank, amavisd-release without the secret_id or with a wrong one is refused and
// nothing is delivered; with the secret_id that the site's admin template passed on, the
// original reaches the recipient's mailbox.
func TestReleaseRequiresSecret(t *testing.T) {
	t.Parallel()
	// the daemon reads its templates at start, as amavis does
	tdir, err := os.MkdirTemp("", "amt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tdir) })
	os.Chmod(tdir, 0o755)
	templ := filepath.Join(tdir, "template-virus-admin.txt")
	if err := os.WriteFile(templ, []byte(secretTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startQuarantineRig(t, nil, fmt.Sprintf("notify_virus_admin_templ = %q", templ))
	const msgID = "<secret@e2e>"
	b := r.submitEICAR(t, msgID)
	n := r.noticeFor(t, b.mailID)
	line := regexp.MustCompile(`(?m)^Release with: amavisd-release (\S+) (\S+)$`).FindSubmatch(n.Body)
	if line == nil {
		t.Fatalf("the site's template gave no release line:\n%s", n.Body)
	}
	quarName, secret := string(line[1]), string(line[2])
	if quarName != b.mailID[:1]+"/virus-"+b.mailID || !regexp.MustCompile(`^[A-Za-z0-9_-]{12}$`).MatchString(secret) || secret == b.mailID {
		t.Fatalf("release line %q: want the quarantine name and a 12-character secret_id", line[0])
	}

	client := releaseClient(t, r.sock)
	wrong := "AAAAAAAAAAAA"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"virus-" + b.mailID}, "450 4.5.0 Failure: Secret_id is required, but missing\n"},
		{[]string{"virus-" + b.mailID, wrong}, "450 4.5.0 Failure: Secret_id " + wrong + " does not match mail_id " + b.mailID + "\n"},
		// The mail_id itself is not its secret; the path form names the file.
		{[]string{quarName, b.mailID}, "450 4.5.0 Failure: Secret_id " + b.mailID + " does not match mail_id " + b.mailID + "\n"},
	} {
		if out := release(t, client, tc.args...); out != tc.want {
			t.Errorf("amavisd-release %v printed %q, want %q", tc.args, out, tc.want)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if msgs, err := r.pf.Messages(); err != nil || len(msgs) != 1 {
		t.Fatalf("mailbox after refused releases: %d messages, %v; want the notice only", len(msgs), err)
	}

	// The path form (quar_type F with the subdirectory) and the right secret.
	out := release(t, client, quarName, secret)
	if !regexp.MustCompile(`^250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:` + portOf(r.pf.ForwardAddr) + `\): 250 2\.0\.0 Ok: queued as [0-9A-F]+\n$`).MatchString(out) {
		t.Fatalf("amavisd-release with the secret_id printed %q", out)
	}
	checkReleased(t, r.waitReleased(t, msgID), b)
	assertDeliveredOnce(t, r.pf, []string{msgID, "<VA" + b.mailID + "@" + daemonHostname + ">"})
}

// TestReadOnlyQuarantineDir: a quarantine directory that the daemon (daemon_user nobody)
// cannot write. Postfix gets our 451 and keeps the EICAR message deferred: no file, no
// notice, nothing delivered. Once the directory is writable again, a flush brings the
// message back; it is quarantined and discarded, and the admin gets the notice.
func TestReadOnlyQuarantineDir(t *testing.T) {
	t.Parallel()
	r := startQuarantineRig(t, nil)
	if err := os.Chmod(r.qdir, 0o555); err != nil {
		t.Fatal(err)
	}
	const msgID = "<readonly@e2e>"
	qid, err := r.pf.SubmitFrom("127.0.0.2", sender, rcpt, message(msgID, "eicar read-only", testenv.EICAR+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	feed := func(status string) *regexp.Regexp {
		return regexp.MustCompile(`postfix/amavisfeed/lmtp\[\d+\]: ` + qid + `: to=<rcpt@example\.com>, .*status=` + status)
	}
	r.pf.WaitLog(t, feed(`deferred \(.* said: 451 4\.5\.0 Error in processing, id=[0-9-]+, quar\+notif FAILED: temporarily unable to quarantine`), 30*time.Second)
	r.pf.WaitQueued(t, qid, "deferred", 10*time.Second)
	r.am.waitLog(regexp.MustCompile(`Local delivery\(1\) to `+regexp.QuoteMeta(r.qdir)+`/./virus-[A-Za-z0-9_-]{12} failed`), 10*time.Second)
	files := func() []string {
		var out []string
		filepath.WalkDir(r.qdir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
		return out
	}
	if f := files(); len(f) != 0 {
		t.Errorf("a failed quarantine left %v", f)
	}
	if msgs, err := r.pf.Messages(); err != nil || len(msgs) != 0 {
		t.Errorf("mailbox after the 451: %d messages, %v; want none", len(msgs), err)
	}
	if strings.Contains(r.am.Log(), "Blocked INFECTED") {
		t.Errorf("a Blocked line for a message that was not taken:\n%s", r.am.Log())
	}

	if err := os.Chmod(r.qdir, 0o750); err != nil {
		t.Fatal(err)
	}
	flushUntil(t, r.pf, 1, 60*time.Second)
	line := r.pf.WaitLog(t, feed(`sent \(250 2\.7\.0 Ok, discarded, id=[0-9-]+ - INFECTED: `+regexp.QuoteMeta(r.clamd.VirusName)+`\)$`), 10*time.Second)
	blocked := r.am.waitLog(regexp.MustCompile(`Blocked INFECTED \(.*\) \{DiscardedInbound,Quarantined\}, .*, Queue-ID: `+qid+`, `), 10*time.Second)
	m := regexp.MustCompile(`quarantine: (\w/virus-([A-Za-z0-9_-]{12})), .*mail_id: ([A-Za-z0-9_-]{12}),`).FindStringSubmatch(blocked)
	if m == nil || m[2] != m[3] {
		t.Fatalf("Blocked line %q: want the quarantine name of its mail_id", blocked)
	}
	if f := files(); len(f) != 1 || f[0] != filepath.Join(r.qdir, m[1]) {
		t.Errorf("quarantine holds %v, want %s (Postfix: %s)", f, m[1], line)
	}
	n := r.noticeFor(t, m[3])
	if !bytes.Contains(n.Body, []byte("Quarantined as: "+m[1])) {
		t.Errorf("the notice does not name %s:\n%s", m[1], n.Body)
	}
	assertDeliveredOnce(t, r.pf, []string{"<VA" + m[3] + "@" + daemonHostname + ">"})
}
