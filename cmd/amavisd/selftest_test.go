package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"amavisgo/amavis"
	"amavisgo/internal/testenv"
)

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		r         sendResult
		delivered bool
		want      string
	}{
		{sendResult{code: 250}, true, "PASSED"},
		{sendResult{code: 250}, false, "BLOCKED"}, // discarded
		{sendResult{code: 554}, false, "BLOCKED"}, // rejected
		{sendResult{code: 451}, false, "TEMPFAIL"},
		{sendResult{code: 554}, true, "UNEXPECTED"},
		{sendResult{err: fmt.Errorf("connection reset")}, false, "ERROR"},
	} {
		if got := verdict(tc.r, tc.delivered); got != tc.want {
			t.Errorf("verdict(%d, delivered %v) = %s, want %s", tc.r.code, tc.delivered, got, tc.want)
		}
	}
}

// TestSelftestConfigStaysInside: every way out of the temporary daemon leads to the capture
// next hop or below its own directory, in the base and in every policy bank.
func TestSelftestConfigStaysInside(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "site.toml")
	os.WriteFile(file, []byte(`
inet_socket_port = [10024, 10026]
unix_socketname = "/run/amavisgo/amavisd.sock"
forward_method = "smtp:[192.0.2.1]:10025"
TEMPBASE = "/var/lib/amavisgo/tmp"
DO_SYSLOG = true
interface_policy = { "10026" = "ORIGINATING" }
[policy_bank.ORIGINATING]
forward_method = "lmtp:[192.0.2.2]:24"
notify_method = "smtp:[192.0.2.3]:25"
[policy_bank.MYNETS]
virus_quarantine_method = "local:virus-%m"
`), 0o644)
	o := &options{confFiles: []string{file}, level: amavis.NoOverride}
	orig, err := o.loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := selftestConfig(o, orig, dir, "127.0.0.1:4242")
	if err != nil {
		t.Fatal(err)
	}
	const capture = "smtp:[127.0.0.1]:4242"
	if l := cfg.Listeners(); len(l) != 1 || l[0].Address != "127.0.0.1:0" {
		t.Errorf("listeners %+v, want only 127.0.0.1:0", l)
	}
	if cfg.TEMPBASE != filepath.Join(dir, "tmp") || cfg.QUARANTINEDIR != filepath.Join(dir, "quarantine") ||
		cfg.LOGFILE != filepath.Join(dir, "amavisd.log") || cfg.DO_SYSLOG {
		t.Errorf("TEMPBASE %s, QUARANTINEDIR %s, LOGFILE %s, DO_SYSLOG %v", cfg.TEMPBASE, cfg.QUARANTINEDIR, cfg.LOGFILE, cfg.DO_SYSLOG)
	}
	for _, bank := range []string{"", "ORIGINATING", "MYNETS", "ORIGINATING/MYNETS"} {
		p := &cfg.Policy
		for _, name := range strings.Split(bank, "/") {
			if name != "" {
				if p, err = cfg.Bank(p, name); err != nil {
					t.Fatal(err)
				}
			}
		}
		for name, m := range map[string]string{"forward": p.Forward().String(), "notify": p.Notify().String(),
			"requeue_method": p.RequeueMethod} {
			if m != capture {
				t.Errorf("bank %q: %s goes to %s, want %s", bank, name, m, capture)
			}
		}
		if p.ReleaseMethod != "" && p.ReleaseMethod != capture {
			t.Errorf("bank %q: release_method %s", bank, p.ReleaseMethod)
		}
	}
}

func TestBlockedAsVirus(t *testing.T) {
	for reply, want := range map[string]bool{
		"250 2.7.0 Ok, discarded, id=01782-02 - INFECTED: Eicar-Test-Signature":         true,
		"554 5.7.0 Reject, id=01782-02 - INFECTED: Eicar-Test-Signature":                true,
		"250 2.5.0 Ok, id=01782-02, BOUNCE":                                             true,
		"250 2.7.0 Ok, discarded, id=01782-03 - BANNED: application/zip,.zip,eicar.zip": false,
		"554 5.7.0 Reject, id=01782-03 - UNCHECKED: encrypted":                          false,
	} {
		if got := blockedAsVirus(reply); got != want {
			t.Errorf("blockedAsVirus(%q) = %v, want %v", reply, got, want)
		}
	}
}

// selftestLine matches the line of one case: name, verdict, mark, reply.
func selftestLine(name, verdict, mark, reply string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+":") + ` +` + verdict + ` +` + regexp.QuoteMeta(mark) + ` +` + reply + `$`)
}

// TestSelftestFailsWithoutVirusChecks: a daemon whose virus checks are bypassed lets EICAR
// through, and selftest says so and exits non-zero. A zip blocked by a banned-file rule does
// not count as EICAR blocked.
func TestSelftestFailsWithoutVirusChecks(t *testing.T) {
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true", "bypass_virus_checks_maps = true",
		"[banned_rules]", `DEFAULT = ["qr'^\\.zip$'"]`)
	out, errOut, code := e.amavisd("selftest")
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr %q", code, errOut)
	}
	const fwd = `250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:\d+\): 250 .*`
	for _, re := range []*regexp.Regexp{
		selftestLine("clean message", "PASSED", "ok", fwd),
		selftestLine("EICAR plain", "PASSED", "FAILED, want BLOCKED", fwd),
		selftestLine("EICAR in a zip", "BLOCKED", "FAILED, want INFECTED", `250 2\.7\.0 Ok, discarded, id=\S+ - BANNED: .*`),
		regexp.MustCompile(`(?m)^selftest: FAILED; the temporary daemon's log is ` + regexp.QuoteMeta(e.dir) + `/tmp/selftest-\d+/amavisd\.log$`),
	} {
		if !re.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	t.Logf("selftest output:\n%s", out)
}

// TestSelftestWithClamd: with a real clamd in av_scanners and the bundled Debian banned-file
// rules, EICAR and the .exe are blocked and clean mail passes, and selftest exits 0.
func TestSelftestWithClamd(t *testing.T) {
	clamd := testenv.StartClamd(t)
	debianBanned, err := os.ReadFile("../../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true",
		"[[av_scanners]]", `name = "ClamAV-clamd"`, `type = "clamd"`, fmt.Sprintf("sockets = [%q]", clamd.Socket),
		`query = "CONTSCAN {}\n"`, `clean_pattern = '\bOK$'`, `infected_pattern = '\bFOUND$'`,
		`names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'`, string(debianBanned))
	out, errOut, code := e.amavisd("selftest")
	t.Logf("selftest output:\n%s%s", out, errOut)
	const fwd = `250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:\d+\): 250 .*`
	if code != 0 {
		t.Errorf("exit %d, want 0; stderr %q", code, errOut)
	}
	infected := regexp.QuoteMeta(clamd.VirusName)
	for _, re := range []*regexp.Regexp{
		selftestLine("clean message", "PASSED", "ok", fwd),
		selftestLine("EICAR plain", "BLOCKED", "ok", `250 2\.7\.0 Ok, discarded, id=\S+ - INFECTED: `+infected),
		selftestLine("EICAR in a zip", "BLOCKED", "ok", `250 2\.7\.0 Ok, discarded, id=\S+ - INFECTED: `+infected),
		selftestLine("banned .exe attachment", "BLOCKED", "ok", `250 2\.7\.0 Ok, discarded, id=\S+ - BANNED: \S*invoice\.exe`),
		regexp.MustCompile(`(?m)^selftest: PASSED$`),
	} {
		if !re.MatchString(out) {
			t.Errorf("output lacks %s", re)
		}
	}
}
