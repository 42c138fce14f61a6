package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// The settings both daemons get for the side-by-side comparison: Debian's spam levels, no
// virus scanning, the spam quarantine, log level 2.
const sideSpamPerl = `
@bypass_spam_checks_maps = (0);
@bypass_virus_checks_maps = (1);
$sa_tag_level_deflt = %s;
$sa_tag2_level_deflt = 6.31;
$sa_kill_level_deflt = 6.31;
$sa_dsn_cutoff_level = 10;
$sa_spam_subject_tag = '***SPAM*** ';
$final_spam_destiny = D_PASS;
@spam_scanners = ( ['Local Rspamd', 'Amavis::SpamControl::RspamdClient',
  url => 'http://%s/checkv2', score_factor => 6.31/15 ] );
@blacklist_sender_maps = ( ['black@sender.example.org'] );
@whitelist_sender_maps = ( ['white@sender.example.org'] );
@score_sender_maps = ( { '.' => [ { 'soft@sender.example.org' => -2.5 } ] } );
`

func sideSpamOurs(tag, rspamd string) []string {
	return []string{
		"sa_tag_level_deflt = " + tag, "sa_tag2_level_deflt = 6.31", "sa_kill_level_deflt = 6.31",
		"sa_dsn_cutoff_level = 10", `sa_spam_subject_tag = "***SPAM*** "`, "quarantine_subdir_levels = 1",
		"[[bypass_virus_checks_maps]]", "constant = true",
		"[[local_domains_maps]]", `acl = [".example.com"]`,
		"[[blacklist_sender_maps]]", `acl = ["black@sender.example.org"]`,
		"[[whitelist_sender_maps]]", `acl = ["white@sender.example.org"]`,
		"[[score_sender_maps]]", `senders = { "soft@sender.example.org" = -2.5 }`,
		"[[spam_scanners]]", `name = "Local Rspamd"`, `type = "Amavis::SpamControl::RspamdClient"`,
		fmt.Sprintf(`url = "http://%s/checkv2"`, rspamd), "score_factor = 0.42066666666666666",
	}
}

// startPerlAmavis starts Debian's amavisd-new for the spam comparisons at log level 2, with the
// spam quarantine and extra's settings.
func startPerlAmavis(t *testing.T, nextHop, extra string) *testenv.PerlAmavisd {
	t.Helper()
	return testenv.StartPerlAmavisd(t, testenv.PerlOptions{Hostname: "amavis.example.com", Domain: "example.com",
		Forward: nextHop, LogLevel: 2, Conf: `$QUARANTINEDIR = "$MYHOME/virusmails";
$quarantine_subdir_levels = 1;
@local_domains_acl = ( ".$mydomain" );
$log_recip_templ = undef;
$X_HEADER_LINE = "$myproduct_name at $mydomain";
@av_scanners = ();
# the spam quarantine's gzip writer and SpamdClient's socket class, which Debian's
# configuration gets loaded with its AM.PDP and SQL modules
@additional_perl_modules = ('Amavis::IO::Zlib', 'Amavis::IO::RW');
` + extra + "\n"})
}

// sendXForward submits one message as Postfix's amavisfeed does (ESMTP with XFORWARD) and
// returns the reply to the final dot.
func sendXForward(t *testing.T, addr, msg string) string {
	return sendXForwardFrom(t, addr, "bob@sender.example.org", msg)
}

func sendXForwardFrom(t *testing.T, addr, from, msg string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	read := func() string { // the last line of a reply
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading from %s: %v", addr, err)
			}
			if len(l) < 4 || l[3] != '-' {
				return strings.TrimRight(l, "\r\n")
			}
		}
	}
	read()
	for _, cmd := range []string{"EHLO mx.example.com", "XFORWARD NAME=client.example.org ADDR=192.0.2.7 PORT=4321 PROTO=ESMTP HELO=client.example.org",
		"XFORWARD IDENT=4ABC123 SOURCE=REMOTE", "MAIL FROM:<" + from + ">", "RCPT TO:<x@example.com>", "DATA"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		read()
	}
	fmt.Fprintf(c, "%s.\r\n", msg)
	reply := read()
	fmt.Fprintf(c, "QUIT\r\n")
	return reply
}

// sideNorm replaces what differs from run to run and between the two daemons' processes:
// log ids, mail ids, elapsed times.
func sideNorm(s string, mailID string) string {
	s = regexp.MustCompile(`^.*?\(\d+-\d+(-\d+)?\) `).ReplaceAllString(s, "")
	if mailID != "" {
		s = strings.ReplaceAll(s, mailID[:1]+"/spam-"+mailID, "C/spam-"+mailID) // the subdirectory
		s = strings.ReplaceAll(s, mailID, "MAILID")
	}
	return regexp.MustCompile(`, \d+ ms$`).ReplaceAllString(s, ", N ms")
}

// TestSpamSideBySidePerl: the same GTUBE and ham messages through Debian's Perl amavisd-new
// (its RspamdClient) and through ours, both asking the same rspamd: equal X-Spam-* blocks and
// Subject, equal main log lines and spam-tag lines after the usual normalisation.
func TestSpamSideBySidePerl(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRspamd(t)
	gtube := "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Message-ID: <side-g@sender.example.org>\r\nSubject: test\r\n\r\n" + testenv.GTUBE + "\r\n"
	ham := "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Message-ID: <side-h@sender.example.org>\r\nSubject: lunch\r\n\r\nHello,\r\nshall we have lunch on Friday?\r\nBob\r\n"
	for _, tag := range []string{"2.0", "-999"} {
		perlHop := smtptest.Start(t, smtptest.Options{})
		perl := startPerlAmavis(t, perlHop.Addr, fmt.Sprintf(sideSpamPerl, tag, rs.Addr))
		oursHop := smtptest.Start(t, smtptest.Options{})
		qdir, err := os.MkdirTemp("", "amq")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(qdir) })
		os.Chmod(qdir, 0o750)
		os.Chown(qdir, 65534, 65534) // our daemon runs as nobody
		ours := newDaemon(t, daemonConfig{Port: testenv.FreePort(t), ForwardPort: atoi(t, portOf(oursHop.Addr)), Extra: append([]string{
			fmt.Sprintf("QUARANTINEDIR = %q", qdir)}, sideSpamOurs(tag, rs.Addr)...)})
		ours.start()
		// GTUBE, ham, ham from a blacklisted sender (no engine asked: score=x), GTUBE from a
		// whitelisted one, ham from one that score_sender_maps gives -2.5 (AM.WBL)
		froms := []string{"bob", "bob", "black", "white", "soft"}
		for i, msg := range []string{gtube, ham, strings.Replace(ham, "side-h@", "side-b@", 1),
			strings.Replace(gtube, "side-g@", "side-w@", 1), strings.Replace(ham, "side-h@", "side-s@", 1)} {
			name := fmt.Sprintf("tag %s, message %d", tag, i+1)
			from := froms[i] + "@sender.example.org"
			pr, or := sendXForwardFrom(t, perl.SMTPAddr, from, msg), sendXForwardFrom(t, ours.Addr, from, msg)
			pm, om := perlHop.Msgs(), oursHop.Msgs()
			if len(pm) != i+1 || len(om) != i+1 {
				t.Fatalf("%s: next hops got %d (Perl, %q) and %d (ours, %q) messages", name, len(pm), pr, len(om), or)
			}
			pd, od := string(pm[i].Data), string(om[i].Data)
			if i == 2 && !strings.Contains(spamFields(od), "score=x tagged_above="+strings.TrimSuffix(tag, ".0")+" required=6.31 BLACKLISTED") {
				t.Errorf("%s: no BLACKLISTED status without a score:\n%s", name, spamFields(od))
			}
			if i == 3 && tag == "-999" && !strings.Contains(spamFields(od), "WHITELISTED") || i == 4 && tag == "-999" && !strings.Contains(spamFields(od), "tests=[AM.WBL=-2.5,") {
				t.Errorf("%s: whitelisted or soft-listed sender not shown:\n%s", name, spamFields(od))
			}
			if pb, ob := sortTests(spamFields(pd)), sortTests(spamFields(od)); pb != ob {
				t.Errorf("%s: X-Spam-* fields differ\nPerl:\n%s\nours:\n%s", name, pb, ob)
			}
			pLine, pTag := perlLines(t, perl.LogFile, i+1)
			oLine, oTag := perlLines(t, ours.LogFile, i+1)
			pid, oid := mailIDOf(pLine), mailIDOf(oLine)
			if a, b := sideNorm(pLine, pid), sideNorm(oLine, oid); a != b {
				t.Errorf("%s: main log lines differ\nPerl: %s\nours: %s", name, a, b)
			}
			if a, b := sortTests(sideNorm(pTag, pid)), sortTests(sideNorm(oTag, oid)); a != b {
				t.Errorf("%s: spam-tag lines differ\nPerl: %s\nours: %s", name, a, b)
			}
			if i == 0 { // the spam quarantine's X-Spam-* fields
				pq := testenv.Gunzip(t, filepath.Join(perl.Home, "virusmails", pid[:1], "spam-"+pid+".gz"))
				oq := testenv.Gunzip(t, filepath.Join(qdir, oid[:1], "spam-"+oid+".gz"))
				lf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
				if a, b := sortTests(spamFields(lf(pq))), sortTests(spamFields(lf(oq))); a != b || !strings.Contains(a, "X-Spam-Status: ") {
					t.Errorf("%s: quarantined X-Spam-* fields differ\nPerl:\n%s\nours:\n%s", name, a, b)
				}
			}
		}
	}
}

// sortTests unfolds the text and sorts each tests=[...] list: amavis lists rspamd's symbols in
// Perl's hash order, which changes from run to run; we sort them by name.
func sortTests(s string) string {
	s = strings.ReplaceAll(s, "\r\n ", " ")
	return regexp.MustCompile(`tests=\[[^\]]*\]`).ReplaceAllStringFunc(s, func(l string) string {
		list := strings.Split(strings.TrimSuffix(strings.TrimPrefix(l, "tests=["), "]"), ", ")
		slices.Sort(list)
		return "tests=[" + strings.Join(list, ", ") + "]"
	})
}

// spamFields are the X-Spam-* fields and the Subject of a copy, as received.
func spamFields(data string) string {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	var b strings.Builder
	in := false
	for _, l := range strings.SplitAfter(head, "\r\n") {
		switch {
		case strings.HasPrefix(l, "X-Spam-") || strings.HasPrefix(l, "Subject:"):
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

// perlLines waits for the n-th main log line of a log file and returns it with the spam-tag
// line before it ("" when none).
func perlLines(t *testing.T, file string, n int) (main, spamTag string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		var mains, tags []string
		lastTag := ""
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case regexp.MustCompile(`\) (Passed|Blocked) `).MatchString(l):
				mains, tags = append(mains, l), append(tags, lastTag)
				lastTag = ""
			case strings.Contains(l, ") spam-tag, "):
				lastTag = l
			}
		}
		if len(mains) >= n {
			return mains[n-1], tags[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no main log line %d in %s:\n%s", n, file, tail(string(b), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mailIDOf(line string) string {
	if m := regexp.MustCompile(`mail_id: ([A-Za-z0-9_+-]+),`).FindStringSubmatch(line); m != nil {
		return m[1]
	}
	return ""
}

// TestSpamdSideBySidePerl: GTUBE and ham through Debian's Perl amavisd-new with its SpamdClient
// and through ours, both asking one spamd on 127.0.0.1:783 (the only address SpamdClient
// knows): equal X-Spam-* fields and Subject, main log lines and spam-tag lines.
func TestSpamdSideBySidePerl(t *testing.T) {
	t.Parallel()
	if l, err := net.Listen("tcp", "127.0.0.1:783"); err != nil {
		t.Skipf("port 783 is taken (SpamdClient needs it): %v", err)
	} else {
		l.Close()
	}
	testenv.StartSpamdOn(t, 783)
	gtube := "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Message-ID: <sided-g@sender.example.org>\r\nSubject: test\r\n\r\n" + testenv.GTUBE + "\r\n"
	ham := "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Message-ID: <sided-h@sender.example.org>\r\nSubject: lunch\r\n\r\nHello,\r\nshall we have lunch on Friday?\r\nBob\r\n"
	perlHop := smtptest.Start(t, smtptest.Options{})
	perl := startPerlAmavis(t, perlHop.Addr, `
@bypass_spam_checks_maps = (0);
@bypass_virus_checks_maps = (1);
$sa_tag_level_deflt = -999;
$sa_tag2_level_deflt = 6.31;
$sa_kill_level_deflt = 6.31;
$sa_spam_subject_tag = '***SPAM*** ';
@spam_scanners = ( ['Local spamd', 'Amavis::SpamControl::SpamdClient'] );
`)
	oursHop := smtptest.Start(t, smtptest.Options{})
	qdir, err := os.MkdirTemp("", "amq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(qdir) })
	os.Chmod(qdir, 0o750)
	os.Chown(qdir, 65534, 65534)
	ours := newDaemon(t, daemonConfig{Port: testenv.FreePort(t), ForwardPort: atoi(t, portOf(oursHop.Addr)), Extra: []string{
		fmt.Sprintf("QUARANTINEDIR = %q", qdir), "quarantine_subdir_levels = 1",
		"sa_tag_level_deflt = -999", "sa_tag2_level_deflt = 6.31", "sa_kill_level_deflt = 6.31", `sa_spam_subject_tag = "***SPAM*** "`,
		"[[bypass_virus_checks_maps]]", "constant = true", "[[local_domains_maps]]", `acl = [".example.com"]`,
		"[[spam_scanners]]", `name = "Local spamd"`, `type = "Amavis::SpamControl::SpamdClient"`}})
	ours.start()
	for i, msg := range []string{gtube, ham} {
		pr, or := sendXForward(t, perl.SMTPAddr, msg), sendXForward(t, ours.Addr, msg)
		pm, om := perlHop.Msgs(), oursHop.Msgs()
		if len(pm) != i+1 || len(om) != i+1 {
			t.Fatalf("message %d: next hops got %d (Perl, %q) and %d (ours, %q) messages", i+1, len(pm), pr, len(om), or)
		}
		if pb, ob := spamFields(string(pm[i].Data)), spamFields(string(om[i].Data)); pb != ob || !strings.Contains(pb, "X-Spam-Status: ") {
			t.Errorf("message %d: X-Spam-* fields differ\nPerl:\n%s\nours:\n%s", i+1, pb, ob)
		}
		pLine, pTag := perlLines(t, perl.LogFile, i+1)
		oLine, oTag := perlLines(t, ours.LogFile, i+1)
		pid, oid := mailIDOf(pLine), mailIDOf(oLine)
		if a, b := sideNorm(pLine, pid), sideNorm(oLine, oid); a != b {
			t.Errorf("message %d: main log lines differ\nPerl: %s\nours: %s", i+1, a, b)
		}
		if a, b := sideNorm(pTag, pid), sideNorm(oTag, oid); a != b {
			t.Errorf("message %d: spam-tag lines differ\nPerl: %s\nours: %s", i+1, a, b)
		}
	}
}
