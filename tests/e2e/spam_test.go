package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestSpamTaggedAndReleased: through the real Postfix, GTUBE checked by Debian's rspamd with
// Debian's spam settings and amavis's documented score_factor reaches the recipient's mailbox
// tagged (X-Spam-* fields, ***SPAM*** subject) with a copy in the spam quarantine as
// <c>/spam-<mail_id>.gz. From a client whose policy bank discards spam, GTUBE is blocked and
// quarantined, and Debian's amavisd-release puts it in the mailbox.
func TestSpamTaggedAndReleased(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRspamd(t)
	dir, err := os.MkdirTemp("", "ams")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	qdir, sock := filepath.Join(dir, "virusmails"), filepath.Join(dir, "amavisd.sock")
	if err := os.Mkdir(qdir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(qdir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	p := startPipeline(t, "lmtp", 2, []string{"smtpd_client_port_logging = yes"},
		fmt.Sprintf("QUARANTINEDIR = %q", qdir),
		"quarantine_subdir_levels = 1",
		fmt.Sprintf("unix_socketname = %q", sock),
		`interface_policy = { SOCK = "AM.PDP-SOCK" }`,
		"sa_tag_level_deflt = 2.0", "sa_tag2_level_deflt = 6.31", "sa_kill_level_deflt = 6.31",
		"sa_dsn_cutoff_level = 10", `sa_spam_subject_tag = "***SPAM*** "`,
		`client_ipaddr_policy = [[["127.0.0.3"], "DISCARDSPAM"]]`,
		"[[local_domains_maps]]", `acl = [".example.com"]`,
		"[[spam_scanners]]", `name = "Local Rspamd"`, `type = "Amavis::SpamControl::RspamdClient"`,
		fmt.Sprintf(`url = "http://%s/checkv2"`, rs.Addr), "score_factor = 0.42066666666666666",
		`[policy_bank."AM.PDP-SOCK"]`, `protocol = "AM.PDP"`, "auth_required_release = false",
		"[policy_bank.DISCARDSPAM]", `final_spam_destiny = "D_DISCARD"`)
	const msgID = "<gtube@e2e>"
	qid, err := p.pf.SubmitFrom("127.0.0.2", sender, rcpt, message(msgID, "gtube", testenv.GTUBE+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	line := p.am.waitLog(regexp.MustCompile(`Passed SPAM`), 30*time.Second)
	m := regexp.MustCompile(`\) Passed SPAM \{RelayedTaggedInbound,Quarantined\}, \[127\.0\.0\.2\]:\d+ <sender@example\.org> -> <rcpt@example\.com>, ` +
		`quarantine: (\w/spam-([A-Za-z0-9_-]{12})\.gz), Queue-ID: ` + qid + `, Message-ID: <gtube@e2e>, mail_id: ([A-Za-z0-9_-]{12}), Hits: 6\.31, size: \d+, queued_as: [0-9A-F]+, \d+ ms$`).FindStringSubmatch(line)
	if m == nil || m[2] != m[3] {
		t.Fatalf("our Passed line:\n%s", line)
	}
	mailID := m[3]

	msgs := p.pf.WaitMessages(t, 1, 30*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("mailbox holds %d messages", len(msgs))
	}
	got := msgs[0]
	want := "X-Quarantine-ID: <" + mailID + ">\nX-Virus-Scanned: amavis at example.com\nX-Spam-Flag: YES\nX-Spam-Score: 6.31\nX-Spam-Level: ******\n" +
		"X-Spam-Status: Yes, score=6.31 tagged_above=2 required=6.31 tests=[GTUBE=0]\n autolearn=unavailable\nReceived: from "
	if i := strings.Index(got.Header, "X-Quarantine-ID: "); i < 0 || !strings.HasPrefix(got.Header[i:], want) {
		t.Errorf("the delivered header lacks our block\n%s\nit is:\n%s", want, got.Header)
	}
	if v := got.HeaderValues("Subject"); len(v) != 1 || v[0] != "***SPAM*** gtube" {
		t.Errorf("Subject %q", v)
	}

	if _, err := os.Stat(filepath.Join(qdir, mailID[:1], "spam-"+mailID+".gz")); err != nil {
		t.Fatalf("spam quarantine: %v", err)
	}

	const msgID2 = "<gtube2@e2e>"
	qid, err = p.pf.SubmitFrom("127.0.0.3", sender, rcpt, message(msgID2, "gtube", testenv.GTUBE+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	line = p.am.waitLog(regexp.MustCompile(`Blocked SPAM`), 30*time.Second)
	m = regexp.MustCompile(`\) Blocked SPAM \{DiscardedInbound,Quarantined\}, DISCARDSPAM \[127\.0\.0\.3\]:\d+ <sender@example\.org> -> <rcpt@example\.com>, ` +
		`quarantine: (\w/spam-([A-Za-z0-9_-]{12})\.gz), Queue-ID: ` + qid + `, Message-ID: <gtube2@e2e>, mail_id: ([A-Za-z0-9_-]{12}), Hits: 6\.31, size: \d+, \d+ ms$`).FindStringSubmatch(line)
	if m == nil || m[2] != m[3] {
		t.Fatalf("our Blocked line:\n%s", line)
	}
	out := release(t, releaseClient(t, sock), m[1])
	if !regexp.MustCompile(`^250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:\d+\): 250 2\.0\.0 Ok: queued as [0-9A-F]+\n$`).MatchString(out) {
		t.Fatalf("amavisd-release printed %q", out)
	}
	all := p.pf.WaitMessages(t, 2, 30*time.Second)
	if len(all) != 2 || all[1].MessageID != msgID2 || len(all[1].HeaderValues("Resent-Message-ID")) != 1 {
		t.Fatalf("after the release the mailbox holds %d messages; the last:\n%s", len(all), all[len(all)-1].Header)
	}
	if v := all[1].HeaderValues("Subject"); len(v) != 1 || v[0] != "gtube" {
		t.Errorf("released copy: Subject %q, want the original", v)
	}
}

// TestSpamEngineDownTempfail: with spam_scanner_failure = "tempfail" and rspamd down, Postfix
// gets our 451 and keeps the message; once rspamd is up the message is delivered exactly once,
// checked and tagged.
func TestSpamEngineDownTempfail(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t)
	p := startPipeline(t, "lmtp", 2, nil,
		`spam_scanner_failure = "tempfail"`, "sa_tag_level_deflt = -999", "sa_tag2_level_deflt = 6.31",
		"[[local_domains_maps]]", `acl = [".example.com"]`,
		"[[spam_scanners]]", `name = "Local Rspamd"`, `type = "rspamd"`,
		fmt.Sprintf(`url = "http://127.0.0.1:%d/checkv2"`, port), "score_factor = 0.42066666666666666")
	qid, err := p.pf.Submit(sender, rcpt, message("<spamdown@e2e>", "gtube", testenv.GTUBE+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.pf.WaitQueued(t, qid, "deferred", 30*time.Second)
	reason := regexp.MustCompile(`said: 451 4\.5\.0 Error in processing, id=\S+, spam_scan FAILED: Local Rspamd: Error calling rspamd: `)
	if len(m.Recipients) != 1 || !reason.MatchString(m.Recipients[0].DelayReason) {
		t.Errorf("deferred %+v, want a delay reason matching %s", m, reason)
	}
	p.am.waitLog(regexp.MustCompile(`Local Rspamd client failed: Error calling rspamd: `), 10*time.Second)
	if msgs, err := p.pf.Messages(); err != nil || len(msgs) != 0 {
		t.Fatalf("mailbox while rspamd is down: %d messages, %v", len(msgs), err)
	}

	testenv.StartRspamdOn(t, port)
	flushUntil(t, p.pf, 1, 60*time.Second)
	msgs := p.pf.WaitMessages(t, 1, 30*time.Second)
	if v := msgs[0].HeaderValues("X-Spam-Flag"); len(v) != 1 || v[0] != "YES" {
		t.Errorf("delivered without X-Spam-Flag: YES:\n%s", msgs[0].Header)
	}
	assertDeliveredOnce(t, p.pf, []string{"<spamdown@e2e>"})
}
