package perlconf

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/lookup"
)

// debianFiles lists Debian's stock configuration as amavis's Debian start-up does:
// run-parts --list of /usr/share/amavis/conf.d, then of /etc/amavis/conf.d.
func debianFiles(t testing.TB) []string {
	var files []string
	for _, d := range []string{"/usr/share/amavis/conf.d", "/etc/amavis/conf.d"} {
		out, err := exec.Command("run-parts", "--list", d).Output()
		if err != nil {
			t.Skipf("Debian's amavisd-new configuration is not installed: %v", err)
		}
		files = append(files, strings.Fields(string(out))...)
	}
	return files
}

func truth(v lookup.Value) bool {
	switch x := v.(type) {
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != "" && x != "0"
	}
	return false
}

func answers(m lookup.Maps, addr string) bool {
	v, _, found := m.Lookup(addr, lookup.Options{})
	return found && truth(v)
}

func mailname() string {
	b, _ := os.ReadFile("/etc/mailname")
	return strings.SplitN(string(b), "\n", 2)[0]
}

func TestDebianStockLoads(t *testing.T) {
	r, err := Load(debianFiles(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("MYHOME", c.MYHOME, "/var/lib/amavis")
	check("TEMPBASE", c.TEMPBASE, "/var/lib/amavis/tmp")
	check("QUARANTINEDIR", c.QUARANTINEDIR, "/var/lib/amavis/virusmails")
	check("pid_file", c.PidFile, "/var/run/amavis/amavisd.pid")
	check("daemon_user", c.DaemonUser, "amavis")
	check("inet_socket_port", strings.Join(c.InetSocketPort, ","), "10024")
	check("unix_socketname", c.UnixSocketname, "/var/lib/amavis/amavisd.sock")
	check("DO_SYSLOG", c.DO_SYSLOG, true)
	check("MAXFILES", c.MAXFILES, 1500)
	check("MAX_EXPANSION_QUOTA", c.MAX_EXPANSION_QUOTA, int64(300*1024*1024))
	check("final_virus_destiny", c.FinalVirusDestiny, conf.D_DISCARD)
	check("X_HEADER_LINE", c.X_HEADER_LINE, "Debian amavis at "+mailname())
	check("virus_admin", c.VirusAdmin.Lookup("u@example.com", lookup.Options{}), "postmaster@"+mailname())
	check("notify_virus_admin_templ", c.NotifyVirusAdminTempl, "/etc/amavis/en_US/template-virus-admin.txt")
	check("interface_policy SOCK", c.InterfacePolicy["SOCK"], "AM.PDP-SOCK")
	// 20-package switches virus and spam checks off
	check("bypass_virus_checks", answers(c.BypassVirusChecksMaps, "u@example.com"), true)
	check("av_scanners[0]", c.AvScanners[0].Name, "ClamAV-clamd")
	check("av_scanners[0] socket", c.AvScanners[0].Sockets[0], "/var/run/clamav/clamd.ctl")
	check("banned_rules DEFAULT", c.BannedRules["DEFAULT"].Len(), 7)
	if _, _, found, _ := c.BannedRules["DEFAULT"].MatchList([]string{"evil.exe\n"}); !found {
		t.Error("banned_rules DEFAULT does not ban \"evil.exe\\n\" (Perl's $ matches before a final newline)")
	}
	p, err := c.Bank(&c.Policy, "AM.PDP-SOCK")
	if err != nil {
		t.Fatal(err)
	}
	check("AM.PDP-SOCK protocol", p.Protocol, "AM.PDP")
	check("AM.PDP-SOCK auth_required_release", p.AuthRequiredRelease, false)
	// every warning names the file, line and column, once
	seen := map[string]bool{}
	for _, w := range r.Warnings {
		if !strings.Contains(w, "/conf.d/") || seen[w] {
			t.Errorf("warning without a position or repeated: %s", w)
		}
		seen[w] = true
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "20-debian_defaults:30:1: $enable_db is not implemented") {
		t.Errorf("no warning for $enable_db at 20-debian_defaults:30:1:\n%s", strings.Join(r.Warnings, "\n"))
	}
}

// siteEdits copies Debian's files into a temporary conf.d pair, applying the usual site edits:
// the virus and spam blocks of 15-content_filter_mode uncommented, and a 50-user.
func siteEdits(t *testing.T, user string) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for _, f := range debianFiles(t) {
		sub := filepath.Join(dir, filepath.Base(filepath.Dir(filepath.Dir(f))))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		switch filepath.Base(f) {
		case "15-content_filter_mode":
			text = strings.NewReplacer("#@bypass_", "@bypass_", "#   \\%", "   \\%").Replace(text)
		case "50-user":
			text = user
		}
		name := filepath.Join(sub, filepath.Base(f))
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	return out
}

const user50 = `use strict;
#
# Place your configuration directives here.  They will override those in
# earlier files.
@local_domains_acl = ( ".example.com", "example.org" );
@mynetworks = qw( 127.0.0.0/8 [::1] 10.1.0.0/16 );
$inet_socket_port = [10024, 10026];
$interface_policy{'10026'} = 'ORIGINATING';
$policy_bank{'ORIGINATING'} = {  # mail supposedly originating from our users
  originating => 1,
  virus_admin_maps => ["virusalert\@$mydomain"],
  bypass_banned_checks_maps => [1],
  smtpd_discard_ehlo_keywords => ['8BITMIME'],
  final_banned_destiny => D_REJECT,
};
$policy_bank{'MYNETS'} = { log_level => 2, };
@bypass_virus_checks_acl = qw( virus-lover@example.com );
$final_virus_destiny = D_BOUNCE;
#------------ Do not modify anything below this line -------------
1;  # ensure a defined return
`

func TestDebianSiteEdits(t *testing.T) {
	files := siteEdits(t, user50)
	// the uncommented spam block switches spam checking on: it loads as it is
	r, err := Load(files, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	// spam checking is on for local recipients, with amavis's default engine (SpamAssassin,
	// asked through spamd) and 20-debian_defaults' levels
	if answers(c.BypassSpamChecksMaps, "u@example.com") || len(c.SpamScanners) != 1 || c.SpamScanners[0].Type != "spamd" || c.SpamScanners[0].Name != "SpamAssassin" {
		t.Errorf("spam checking: bypass %+v, spam_scanners %+v", c.BypassSpamChecksMaps, c.SpamScanners)
	}
	if c.SaTagLevelDeflt == nil || *c.SaTagLevelDeflt != 2.0 || c.SaKillLevelDeflt == nil || *c.SaKillLevelDeflt != 6.31 ||
		c.SaDsnCutoffLevel == nil || *c.SaDsnCutoffLevel != 10 || c.SaSpamSubjectTag != "***SPAM*** " || c.SaMailBodySizeLimit != 200*1024 {
		t.Errorf("spam levels: tag %v kill %v dsn cutoff %v subject tag %q body limit %d", c.SaTagLevelDeflt, c.SaKillLevelDeflt, c.SaDsnCutoffLevel, c.SaSpamSubjectTag, c.SaMailBodySizeLimit)
	}
	if got := strings.Join(c.InetSocketPort, ","); got != "10024,10026" {
		t.Errorf("inet_socket_port = %s", got)
	}
	if c.InterfacePolicy["10026"] != "ORIGINATING" || c.InterfacePolicy["SOCK"] != "AM.PDP-SOCK" {
		t.Errorf("interface_policy = %v", c.InterfacePolicy)
	}
	if !answers(c.LocalDomainsMaps, "u@sub.example.com") || !answers(c.LocalDomainsMaps, "u@example.org") || answers(c.LocalDomainsMaps, "u@sub.example.org") {
		t.Errorf("local_domains_maps does not follow @local_domains_acl: %+v", c.LocalDomainsMaps)
	}
	if !c.Mynetworks.Contains(netip.MustParseAddr("10.1.2.3")) || c.Mynetworks.Contains(netip.MustParseAddr("192.168.1.1")) {
		t.Errorf("mynetworks = %v", c.Mynetworks)
	}
	// the virus block of 15-content_filter_mode puts the live references back: the
	// @bypass_virus_checks_acl of 50-user, set later, is what the maps answer
	if answers(c.BypassVirusChecksMaps, "u@example.com") || !answers(c.BypassVirusChecksMaps, "virus-lover@example.com") {
		t.Error("bypass_virus_checks_maps does not see @bypass_virus_checks_acl of 50-user")
	}
	if c.FinalVirusDestiny != conf.D_BOUNCE {
		t.Errorf("final_virus_destiny = %v", c.FinalVirusDestiny)
	}
	o, err := c.Bank(&c.Policy, "ORIGINATING")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Originating || o.FinalBannedDestiny != conf.D_REJECT || !answers(o.BypassBannedChecksMaps, "x@y") ||
		o.VirusAdmin.Lookup("x@y", lookup.Options{}) != "virusalert@"+mailname() || strings.Join(o.SmtpdDiscardEhloKeywords, ",") != "8BITMIME" {
		t.Errorf("policy bank ORIGINATING = %+v", o)
	}
	m, err := c.Bank(&c.Policy, "MYNETS")
	if err != nil || m.LogLevel != 2 {
		t.Errorf("policy bank MYNETS: log_level %d, %v", m.LogLevel, err)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), `spam_scanners entry "SpamAssassin": amavisgo does not embed SpamAssassin; it asks spamd at 127.0.0.1:783`) {
		t.Errorf("no warning that SpamAssassin is asked through spamd:\n%s", strings.Join(r.Warnings, "\n"))
	}
}
