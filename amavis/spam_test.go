package amavis

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"amavisgo/hdr"
	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// debianSpamConf are Debian's spam settings (conf.d/20-debian_defaults) with the quarantine
// in qdir and log level 2.
func debianSpamConf(qdir, engines string) string {
	return fmt.Sprintf(`QUARANTINEDIR = %q
log_level = 2
sa_tag_level_deflt = 2.0
sa_tag2_level_deflt = 6.31
sa_kill_level_deflt = 6.31
sa_dsn_cutoff_level = 10
sa_mail_body_size_limit = 204800
sa_spam_subject_tag = "***SPAM*** "
%s`, qdir, engines)
}

// rspamdScanner is the [[spam_scanners]] entry of amavis's RspamdClient for rspamd at addr, with
// amavis's documented score_factor (tag2 / 15: GTUBE scores 6.31); TOML tables come last.
func rspamdScanner(addr string) string {
	return fmt.Sprintf(`
[[spam_scanners]]
name = "Local Rspamd"
type = "Amavis::SpamControl::RspamdClient"
url = "http://%s/checkv2"
score_factor = 0.42066666666666666
`, addr)
}

// spamFlags lists the copies the next hop got: their recipients and X-Spam-Flag.
func spamFlags(h *smtptest.NextHop) string {
	var copies []string
	for _, m := range h.Msgs() {
		flag, _ := hdr.Get(m.Data, "X-Spam-Flag")
		copies = append(copies, fmt.Sprint(m.Rcpts, " ", flag))
	}
	return fmt.Sprint(copies)
}

func gtubeMessage(id string) string {
	return "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Message-ID: <" + id + ">\r\nSubject: test\r\n\r\n" + testenv.GTUBE + "\r\n"
}

func hamMessage(id string) string {
	return "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Message-ID: <" + id + ">\r\nSubject: lunch\r\n\r\nHello,\r\nshall we have lunch on Friday?\r\nBob\r\n"
}

// spamRun is one message through a daemon with the given spam settings.
type spamRun struct {
	reply   string
	line    string // the main log line
	log     string
	copies  []smtptest.Msg
	qfiles  []string
	mailID  string
	hopData string // the first copy as the next hop got it
}

func runSpam(t *testing.T, settings, from, msg string) spamRun {
	t.Helper()
	h := hop(t, smtptest.Options{})
	qdir := t.TempDir()
	return sendSpam(t, h, startDaemon(t, h.Addr, debianSpamConf(qdir, settings)), qdir, from, msg)
}

// sendSpam sends msg from from to x@example.com through td and collects what runSpam reports.
func sendSpam(t *testing.T, h *smtptest.NextHop, td *testDaemon, qdir, from, msg string) spamRun {
	t.Helper()
	got := sendMessage(t, td, false, from, []string{"x@example.com"}, msg)
	waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
	r := spamRun{reply: got[0], line: mainLogLines(td.log.String())[0], log: td.log.String(), copies: h.Msgs()}
	r.qfiles, _ = filepath.Glob(filepath.Join(qdir, "spam-*.gz"))
	if m := regexp.MustCompile(`mail_id: (\S+),`).FindStringSubmatch(r.line); m != nil {
		r.mailID = m[1]
	}
	if len(r.copies) > 0 {
		r.hopData = string(r.copies[0].Data)
	}
	return r
}

// spamBlock is the block of X-Spam-* fields of a forwarded copy, as received (CRLF, folds).
func spamBlock(data string) string {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	var b strings.Builder
	in := false
	for _, l := range strings.SplitAfter(head, "\r\n") {
		switch {
		case strings.HasPrefix(l, "X-Spam-"):
			in = true
		case strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t"):
		default:
			in = false
		}
		if in {
			b.WriteString(l)
		}
	}
	return b.String()
}

// TestRspamdThroughDaemon: GTUBE and ham through the daemon and Debian's rspamd with amavis's
// documented score_factor (tag2 / 15): exact header blocks, the subject tag, the log line with
// Hits, the spam quarantine, the destinies and the sender lists.
func TestRspamdThroughDaemon(t *testing.T) {
	rs := testenv.StartRspamd(t)
	engine := rspamdScanner(rs.Addr)
	t.Run("GTUBE passed", func(t *testing.T) {
		r := runSpam(t, engine, "bob@sender.example.org", gtubeMessage("g1@sender.example.org"))
		if !strings.HasPrefix(r.reply, "250 2.0.0 ") || len(r.copies) != 1 {
			t.Fatalf("reply %q, %d copies", r.reply, len(r.copies))
		}
		want := "X-Spam-Flag: YES\r\nX-Spam-Score: 6.31\r\nX-Spam-Level: ******\r\n" +
			"X-Spam-Status: Yes, score=6.31 tagged_above=2 required=6.31 tests=[GTUBE=0]\r\n autolearn=unavailable\r\n"
		if got := spamBlock(r.hopData); got != want {
			t.Errorf("header block:\n%s\nwant:\n%s", got, want)
		}
		if !strings.HasPrefix(r.hopData, "X-Quarantine-ID: <"+r.mailID+">\r\nX-Virus-Scanned: amavis at example.com\r\nX-Spam-Flag: YES\r\n") ||
			!strings.Contains(r.hopData, "\r\nSubject: ***SPAM*** test\r\n") {
			t.Errorf("copy:\n%s", r.hopData)
		}
		shape := regexp.MustCompile(`^\(\d{5}-\d{2}\) Passed SPAM \{RelayedTaggedInbound,Quarantined\}, \[127\.0\.0\.1\] <bob@sender\.example\.org> -> <x@example\.com>, ` +
			`quarantine: ` + regexp.QuoteMeta("spam-"+r.mailID+".gz") + `, Message-ID: <g1@sender\.example\.org>, mail_id: ` + r.mailID + `, Hits: 6\.31, size: \d+, queued_as: SINKQ0001, \d+ ms$`)
		if !shape.MatchString(r.line) {
			t.Errorf("log line\n %s\ndoes not match\n %s", r.line, shape)
		}
		if len(r.qfiles) != 1 {
			t.Fatalf("spam quarantine: %v", r.qfiles)
		}
		stored := testenv.Gunzip(t, r.qfiles[0])
		for _, want := range []string{"X-Quarantine-ID: <" + r.mailID + ">\n", "X-Spam-Flag: YES\nX-Spam-Score: 6.31\nX-Spam-Level: ******\n" +
			"X-Spam-Status: Yes, score=6.31 tag=2 tag2=6.31 kill=6.31 tests=[GTUBE=0]\n autolearn=unavailable\n", "\nSubject: test\n"} {
			if !strings.Contains(stored, want) {
				t.Errorf("quarantined copy lacks %q:\n%s", want, stored)
			}
		}
		for _, want := range []string{
			"Local Rspamd rspamd skipped/score 6.31/6.31 (reject) GTUBE=0",
			"spam-tag, <bob@sender.example.org> -> <x@example.com>, Yes, score=6.31 tagged_above=2 required=6.31 tests=[GTUBE=0] autolearn=unavailable",
		} {
			if !strings.Contains(r.log, want) {
				t.Errorf("log lacks %q", want)
			}
		}
	})
	t.Run("GTUBE discarded", func(t *testing.T) {
		r := runSpam(t, "final_spam_destiny = \"D_DISCARD\"\n"+engine, "bob@sender.example.org", gtubeMessage("g2@sender.example.org"))
		if !strings.HasPrefix(r.reply, "250 2.7.0 Ok, discarded, id=PID-NN - spam") || len(r.copies) != 0 || len(r.qfiles) != 1 {
			t.Errorf("reply %q, %d copies, quarantine %v", r.reply, len(r.copies), r.qfiles)
		}
		if !strings.Contains(r.line, ") Blocked SPAM {DiscardedInbound,Quarantined}, ") || !strings.Contains(r.line, ", Hits: 6.31, ") {
			t.Errorf("log line %s", r.line)
		}
	})
	t.Run("spam admin notice", func(t *testing.T) {
		r := runSpam(t, "final_spam_destiny = \"D_DISCARD\"\nspam_admin = \"spamadmin@example.com\"\n"+engine, "bob@sender.example.org", gtubeMessage("g5@sender.example.org"))
		if len(r.copies) != 1 || len(r.copies[0].Rcpts) != 1 || r.copies[0].Rcpts[0] != "spamadmin@example.com" {
			t.Fatalf("next hop got %+v, want only the notice to spamadmin@example.com", r.copies)
		}
		for _, want := range []string{"\r\nSubject: Spam FROM [127.0.0.1] <bob@sender.example.org>\r\nTo: <spamadmin@example.com>\r\n", "\r\nCategory: Spam\r\n",
			"\r\nQuarantined as: spam-" + r.mailID + ".gz\r\n", "\r\nNot delivered to:\r\n  <x@example.com>"} {
			if !strings.Contains(r.hopData, want) {
				t.Errorf("notice lacks %q:\n%s", want, r.hopData)
			}
		}
	})
	t.Run("cutoffs", func(t *testing.T) {
		r := runSpam(t, "final_spam_destiny = \"D_DISCARD\"\nspam_admin = \"spamadmin@example.com\"\nsa_quarantine_cutoff_level = 6\n"+engine+
			"[[spam_notifyadmin_cutoff_level_maps]]\nconstant = 6.31\n", "bob@sender.example.org", gtubeMessage("g6@sender.example.org"))
		if len(r.copies) != 0 || len(r.qfiles) != 0 || !strings.Contains(r.line, ") Blocked SPAM {DiscardedInbound}, ") {
			t.Errorf("%d copies (no admin notice wanted), quarantine %v, log %s", len(r.copies), r.qfiles, r.line)
		}
	})
	t.Run("virus blocks everyone: rspamd not asked", func(t *testing.T) {
		clamd := testenv.StartClamd(t)
		av := fmt.Sprintf("[[av_scanners]]\nname = \"ClamAV-clamd\"\ntype = \"clamd\"\nsockets = [%q]\nquery = \"CONTSCAN {}\\n\"\n"+
			"clean_pattern = '\\bOK$'\ninfected_pattern = '\\bFOUND$'\nnames_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'\n", clamd.Socket)
		before := rs.Scanned(t)
		msg := strings.Replace(gtubeMessage("v1@sender.example.org"), testenv.GTUBE, testenv.EICAR, 1)
		r := runSpam(t, engine+av, "bob@sender.example.org", msg)
		if rs.Scanned(t) != before || !strings.Contains(r.line, ") Blocked INFECTED (") || !strings.Contains(r.line, ", Hits: -, ") {
			t.Errorf("rspamd scanned %d -> %d; log line %s", before, rs.Scanned(t), r.line)
		}
		// one recipient a virus lover: the message passes for it, so rspamd is asked
		r = runSpam(t, engine+av+"[[virus_lovers_maps]]\nacl = [\"x@example.com\"]\n", "bob@sender.example.org", msg)
		if rs.Scanned(t) != before+1 || !strings.Contains(r.line, ") Passed INFECTED (") || strings.Contains(r.line, ", Hits: -, ") {
			t.Errorf("with a virus lover: rspamd scanned %d -> %d; log line %s", before, rs.Scanned(t), r.line)
		}
	})
	t.Run("spam lover", func(t *testing.T) {
		r := runSpam(t, "final_spam_destiny = \"D_DISCARD\"\n"+engine+"\n[[spam_lovers_maps]]\nacl = [\"x@example.com\"]\n", "bob@sender.example.org", gtubeMessage("g3@sender.example.org"))
		if len(r.copies) != 1 || !strings.Contains(r.hopData, "X-Spam-Flag: YES\r\n") || !strings.Contains(r.line, ") Passed SPAM {RelayedTaggedInbound,Quarantined}, ") {
			t.Errorf("reply %q, %d copies, log %s", r.reply, len(r.copies), r.line)
		}
	})
	t.Run("ham", func(t *testing.T) {
		before := rs.Scanned(t)
		// the headers for every message, as amavis's sample configuration suggests
		r := runSpam(t, engine+"[[spam_tag_level_maps]]\nconstant = -999\n", "bob@sender.example.org", hamMessage("h1@sender.example.org"))
		if rs.Scanned(t) != before+1 {
			t.Errorf("rspamd was not asked")
		}
		block := spamBlock(r.hopData)
		if !regexp.MustCompile(`^X-Spam-Flag: NO\r\nX-Spam-Score: -?[0-9.]+\r\nX-Spam-Level:( \*+)?\r\nX-Spam-Status: No, score=-?[0-9.]+ tagged_above=-999 required=6\.31\r?\n? tests=\[`).MatchString(block) ||
			!strings.Contains(block, "MIME_GOOD=-0.1") {
			t.Errorf("ham block:\n%s", block)
		}
		if !strings.Contains(r.line, ") Passed CLEAN {RelayedInbound}, ") || len(r.qfiles) != 0 {
			t.Errorf("log line %s, quarantine %v", r.line, r.qfiles)
		}
	})
	lists := engine + `
[[whitelist_sender_maps]]
acl = ["friend@sender.example.org"]
[[blacklist_sender_maps]]
acl = [".spammer.example"]
`
	t.Run("whitelisted sender", func(t *testing.T) {
		r := runSpam(t, lists, "friend@sender.example.org", strings.Replace(gtubeMessage("g4@sender.example.org"), "bob@", "friend@", 1))
		if len(r.copies) != 1 || !strings.Contains(r.line, ") Passed CLEAN {RelayedInbound}, ") || strings.Contains(r.hopData, "***SPAM***") {
			t.Errorf("%d copies, log %s\n%s", len(r.copies), r.line, r.hopData)
		}
		if !strings.Contains(r.log, "wbl: whitelisted sender <friend@sender.example.org>") || strings.Contains(r.log, "rspamd score") {
			t.Errorf("log:\n%s", r.log)
		}
	})
	t.Run("blacklisted sender", func(t *testing.T) {
		before := rs.Scanned(t)
		r := runSpam(t, lists, "x@mail.spammer.example", hamMessage("b1@sender.example.org"))
		if rs.Scanned(t) != before {
			t.Errorf("rspamd was asked about a blacklisted sender")
		}
		want := "X-Spam-Flag: YES\r\nX-Spam-Score: 64\r\nX-Spam-Level: " + strings.Repeat("*", 64) + "\r\n" +
			"X-Spam-Status: Yes, score=x tagged_above=2 required=6.31 BLACKLISTED tests=[]\r\n autolearn=unavailable\r\n"
		if got := spamBlock(r.hopData); got != want {
			t.Errorf("block:\n%s\nwant:\n%s", got, want)
		}
		if !strings.Contains(r.line, ") Passed SPAM {RelayedTaggedInbound,Quarantined}, ") || !strings.Contains(r.line, ", Hits: -, ") {
			t.Errorf("log line %s", r.line)
		}
	})
}

// TestSpamdThroughDaemon: GTUBE through Debian's spamd: tagged with the score spamd gives,
// bounced above the DSN cutoff without a DSN.
func TestSpamdThroughDaemon(t *testing.T) {
	sd := testenv.StartSpamd(t)
	engine := fmt.Sprintf("\n[[spam_scanners]]\nname = \"Local spamd\"\ntype = \"Amavis::SpamControl::SpamdClient\"\naddress = %q\n", sd.Addr)
	t.Run("GTUBE passed", func(t *testing.T) {
		r := runSpam(t, engine, "bob@sender.example.org", gtubeMessage("s1@sender.example.org"))
		m := regexp.MustCompile(`Local spamd spamd score=(\S+), tests=(\S+)`).FindStringSubmatch(r.log)
		if m == nil {
			t.Fatalf("no spamd line in the log:\n%s", r.log)
		}
		f, err := strconv.ParseFloat(m[1], 64) // spamd's text, "1000.0"
		if err != nil {
			t.Fatal(err)
		}
		score, tests := strconv.FormatFloat(f, 'f', -1, 64), strings.Split(m[2], ",")
		if !strings.Contains(","+m[2]+",", ",GTUBE,") {
			t.Errorf("tests %s", m[2])
		}
		block := spamBlock(r.hopData)
		unfolded := strings.ReplaceAll(block, "\r\n ", " ")
		want := "X-Spam-Flag: YES\r\nX-Spam-Score: " + score + "\r\nX-Spam-Level: " + strings.Repeat("*", 64) + "\r\n" +
			"X-Spam-Status: Yes, score=" + score + " tagged_above=2 required=6.31 tests=[" + strings.Join(tests, ", ") + "] autolearn=unavailable\r\n"
		if unfolded != want {
			t.Errorf("block:\n%s\nwant (unfolded):\n%s", block, want)
		}
		// folded only after a comma or before a piece, at 78 columns
		for _, l := range strings.Split(strings.TrimSuffix(block, "\r\n"), "\r\n") {
			if len(l) > 78 {
				t.Errorf("line over 78: %q", l)
			}
		}
		if !strings.Contains(r.line, ") Passed SPAM {RelayedTaggedInbound,Quarantined}, ") || !strings.Contains(r.line, ", Hits: "+score+", ") ||
			!strings.Contains(r.hopData, "\r\nSubject: ***SPAM*** test\r\n") || len(r.qfiles) != 1 {
			t.Errorf("log line %s, quarantine %v\n%s", r.line, r.qfiles, r.hopData)
		}
	})
	t.Run("bounced above the cutoff: no DSN", func(t *testing.T) {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, debianSpamConf(t.TempDir(), "final_spam_destiny = \"D_BOUNCE\"\n"+engine))
		got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, gtubeMessage("s2@sender.example.org"))
		waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
		line := mainLogLines(td.log.String())[0]
		if got[0] != "250 2.5.0 Ok, id=PID-NN, DISCARD(bounce.suppressed)" || !strings.Contains(line, ") Blocked SPAM {NoBounceInbound,Quarantined}, ") {
			t.Errorf("reply %q, log %s", got[0], line)
		}
		if n := len(h.Msgs()); n != 0 {
			t.Errorf("next hop got %d messages (a DSN?)", n)
		}
	})
}

// TestSpamEngineFailures: an engine that is down, hangs or answers garbage: amavis's default
// passes the message with Hits 0 and logs the failure; "tempfail" answers 451 and forwards
// nothing.
func TestSpamEngineFailures(t *testing.T) {
	down := smtptest.Refused(t)
	hang := testenv.FaultServer(t, "")
	garbage := testenv.FaultServer(t, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n<html>")
	for _, tc := range []struct{ name, engine, logged string }{
		{"spamd down", fmt.Sprintf("[[spam_scanners]]\nname = \"s\"\ntype = \"spamd\"\naddress = %q\n", down), "s client failed: Can't connect to spamd"},
		{"spamd hangs", fmt.Sprintf("[[spam_scanners]]\nname = \"s\"\ntype = \"spamd\"\naddress = %q\n", hang), "s client failed: "},
		{"rspamd hangs", fmt.Sprintf("[[spam_scanners]]\nname = \"r\"\ntype = \"rspamd\"\nurl = \"http://%s/checkv2\"\ntimeout = 2\n", hang), "r client failed: Error calling rspamd: "},
		{"rspamd garbage", fmt.Sprintf("[[spam_scanners]]\nname = \"r\"\ntype = \"rspamd\"\nurl = \"http://%s/checkv2\"\n", garbage), "r client failed: bad rspamd response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := "child_timeout = 3\n"
			r := runSpam(t, timeout+tc.engine, "bob@sender.example.org", gtubeMessage("f1@sender.example.org"))
			if len(r.copies) != 1 || !strings.Contains(r.line, ") Passed CLEAN {RelayedInbound}, ") || !strings.Contains(r.line, ", Hits: 0, ") || !strings.Contains(r.log, tc.logged) {
				t.Errorf("%d copies, log line %s\n%s", len(r.copies), r.line, r.log)
			}
			h := hop(t, smtptest.Options{})
			td := startDaemon(t, h.Addr, debianSpamConf(t.TempDir(), "spam_scanner_failure = \"tempfail\"\n"+timeout+tc.engine))
			got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, gtubeMessage("f2@sender.example.org"))
			if !strings.HasPrefix(got[0], "451 4.5.0 Error in processing, id=PID-NN, spam_scan FAILED: ") || len(h.Msgs()) != 0 {
				t.Errorf("tempfail: reply %q, %d copies", got[0], len(h.Msgs()))
			}
		})
	}
}
