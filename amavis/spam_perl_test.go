package amavis

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"amavisgo/internal/testenv"
	"amavisgo/perlconf"
	"amavisgo/smtp/smtptest"
)

// perlSpamConfd is a Debian-style conf.d: 20-debian_defaults' spam levels and a 50-user that
// names rspamd in @spam_scanners the way amavis's documentation does (RspamdClient, url,
// score_factor tag2 / 15).
var perlSpamConfd = map[string]string{
	"20-debian_defaults": `use strict;
$sa_spam_subject_tag = '***SPAM*** ';
$sa_tag_level_deflt  = 2.0;
$sa_tag2_level_deflt = 6.31;
$sa_kill_level_deflt = 6.31;
$sa_dsn_cutoff_level = 10;
$sa_mail_body_size_limit = 200*1024;
1;
`,
	"50-user": `use strict;
@spam_scanners = (
  [ 'Local Rspamd', 'Amavis::SpamControl::RspamdClient',
    url => 'http://%s/checkv2',
    score_factor => $sa_tag2_level_deflt / 15.0,
  ],
);
1;
`,
}

// runSpamPerl is runSpam with the spam settings read from a Perl conf.d.
func runSpamPerl(t *testing.T, rspamdAddr, from, msg string) spamRun {
	t.Helper()
	dir := t.TempDir()
	for name, text := range perlSpamConfd {
		if strings.Contains(text, "%s") {
			text = fmt.Sprintf(text, rspamdAddr)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := perlconf.Expand([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	res, err := perlconf.Load(files, perlconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Config.SpamScanners); n != 1 {
		t.Fatalf("the Perl conf.d gives %d spam engines", n)
	}
	h := hop(t, smtptest.Options{})
	qdir := t.TempDir()
	// the daemon runs on the configuration the Perl files give (the TOML conf decoded), with
	// the quarantine and log level runSpam's TOML also sets
	td := startDaemon(t, h.Addr, fmt.Sprintf("QUARANTINEDIR = %q\nlog_level = 2\n%s", qdir, res.TOML))
	return sendSpam(t, h, td, qdir, from, msg)
}

// TestRspamdFromPerlConfd: the same messages through the daemon configured by a Perl conf.d
// with amavis's @spam_scanners and by the equivalent TOML give the same reply, the same
// X-Spam-* fields, subject tag, quarantine and log line.
func TestRspamdFromPerlConfd(t *testing.T) {
	rs := testenv.StartRspamd(t)
	engine := fmt.Sprintf(`
[[spam_scanners]]
name = "Local Rspamd"
type = "Amavis::SpamControl::RspamdClient"
url = "http://%s/checkv2"
score_factor = 0.42066666666666666
`, rs.Addr)
	varying := regexp.MustCompile(`(?m)\(\d{5}-\d{2}\)|, \d+ ms$|id=\d+-\d+|\[127\.0\.0\.1\]:\d+`)
	show := func(r spamRun) string {
		s := strings.Join([]string{r.reply, r.line, spamBlock(r.hopData), fmt.Sprint(len(r.copies), " copies, ", len(r.qfiles), " quarantined")}, "\n")
		if r.mailID != "" {
			s = strings.ReplaceAll(s, r.mailID, "MAILID")
		}
		return varying.ReplaceAllString(s, "X")
	}
	for _, tc := range []struct {
		name, msg string
		spam      bool
	}{
		{"GTUBE", gtubeMessage("p1@sender.example.org"), true},
		{"ham", hamMessage("p2@sender.example.org"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perl := runSpamPerl(t, rs.Addr, "bob@sender.example.org", tc.msg)
			toml := runSpam(t, engine, "bob@sender.example.org", tc.msg)
			if show(perl) != show(toml) {
				t.Errorf("from the Perl conf.d:\n%s\nfrom TOML:\n%s", show(perl), show(toml))
			}
			// and the engine was asked (Hits is a score, not "-"): GTUBE is spam, tagged and
			// quarantined, the ham below the tag level has no X-Spam-* fields
			spammy := strings.Contains(perl.line, " SPAM {") && strings.Contains(perl.hopData, "\r\nSubject: ***SPAM*** test\r\n") &&
				len(perl.qfiles) == 1 && strings.Contains(perl.hopData, "\r\nX-Spam-Status: Yes, ")
			if spammy != tc.spam || !strings.Contains(perl.line, ", Hits: ") || strings.Contains(perl.line, ", Hits: -,") {
				t.Errorf("spam %v, want %v:\n%s\n%s", spammy, tc.spam, perl.line, perl.hopData)
			}
		})
	}
}
