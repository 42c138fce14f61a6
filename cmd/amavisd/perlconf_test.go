package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"amavisgo/amavis"
	"amavisgo/delivery/deliverytest"
)

// runAmavisd runs the built daemon's command line and returns its output and exit status.
func runAmavisd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(amavisdBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func TestPerlConfigtestDebianStock(t *testing.T) {
	if _, err := os.Stat("/etc/amavis/conf.d/50-user"); err != nil {
		t.Skip("Debian's amavisd-new configuration is not installed")
	}
	out, errOut, code := runAmavisd(t, "-c", "/usr/share/amavis/conf.d", "-c", "/etc/amavis/conf.d", "configtest")
	if code != 0 || !strings.HasSuffix(out, "/etc/amavis/conf.d/50-user is OK\n") {
		t.Fatalf("configtest: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "amavisd: warning: /etc/amavis/conf.d/20-debian_defaults:30:1: $enable_db is not implemented by amavisgo") {
		t.Errorf("configtest does not warn about settings it ignores:\n%s", errOut)
	}
	// without -c and without our TOML file, a Debian system's conf.d is read in Debian's order
	if _, err := os.Stat(defaultConfFile); err != nil {
		out, errOut, code := runAmavisd(t, "configtest")
		if code != 0 || !strings.HasPrefix(out, "amavisd: configuration /usr/share/amavis/conf.d/") || !strings.HasSuffix(out, "/etc/amavis/conf.d/50-user is OK\n") {
			t.Errorf("configtest without -c: exit %d, stdout %q, stderr %.300q", code, out, errOut)
		}
	}
	// showconfig of the Perl files loads back to the same configuration
	shown, errOut, code := runAmavisd(t, "-c", "/usr/share/amavis/conf.d", "-c", "/etc/amavis/conf.d", "showconfig")
	if code != 0 {
		t.Fatalf("showconfig: exit %d: %s", code, errOut)
	}
	f := filepath.Join(t.TempDir(), "amavisd.toml")
	if err := os.WriteFile(f, []byte(shown), 0o644); err != nil {
		t.Fatal(err)
	}
	again, errOut, code := runAmavisd(t, "-c", f, "showconfig")
	if code != 0 {
		t.Fatalf("showconfig of the shown TOML: exit %d: %s", code, errOut)
	}
	body := func(s string) string { _, b, _ := strings.Cut(s, "\n"); return b }
	if body(again) != body(shown) {
		t.Errorf("the TOML showconfig printed does not load back to the same configuration")
	}
	for _, want := range []string{"\nMYHOME = \"/var/lib/amavis\"\n", `name = "ClamAV-clamd", names_pattern = "qr/^.*?: (?!Infected Archive)(.*) FOUND$/m"`, "\n[policy_bank.\"AM.PDP-SOCK\"]\n"} {
		if !strings.Contains(shown, want) {
			t.Errorf("showconfig lacks %q", want)
		}
	}
	// a TOML file after the Perl ones overrides them
	over := filepath.Join(t.TempDir(), "over.toml")
	if err := os.WriteFile(over, []byte("max_servers = 9\nMYHOME = \"/srv/amavis\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	shown, errOut, code = runAmavisd(t, "-c", "/usr/share/amavis/conf.d", "-c", "/etc/amavis/conf.d", "-c", over, "showconfig")
	if code != 0 || !strings.Contains(shown, "\nmax_servers = 9\n") || !strings.Contains(shown, "\nMYHOME = \"/srv/amavis\"\n") {
		t.Errorf("a TOML file after the Perl ones does not override: exit %d %s", code, errOut)
	}
}

func TestPerlConfigtestBrokenFiles(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unterminated string", "use strict;\n$max_servers = 2;\n$mydomain = 'example.com;\n1;\n", `:3:13: unterminated string: no closing '\''`},
		{"unknown helper", "use strict;\n\n  read_hashes('/etc/amavis/x');\n1;\n", ":3:3: unknown function read_hashes(): not one of Amavis::Conf's helpers"},
		{"sub as a callback", "use strict;\nsub my_filter { return 1 }\n1;\n", ":2:1: unsupported Perl: named subroutine definition 'sub my_filter'"},
		{"sub called at run time", "use strict;\n@bypass_spam_checks_maps = (1);\n@local_domains_maps = ( sub { my $r = shift; return $r =~ /example/ } );\n1;\n", ":3:1: unsupported Perl: a sub { ... } as a lookup table would run Perl code for each message"},
		{"syntax error mid-file", "use strict;\n$max_servers = 2;\n$log_level = 3 4;\n$child_timeout = 10;\n1;\n", `:3:16: syntax error: expected ';' after the statement, found "4"`},
		{"unknown variable", "use strict;\n$max_server = 2;\n1;\n", `:2:1: Global symbol "$max_server" requires explicit package name: $max_server is not one of amavis's variables (did you mean $max_servers?)`},
		{"eval", "use strict;\neval { $max_servers = 2 };\n1;\n", ":2:1: unsupported Perl: 'eval'; write the settings without eval"},
		{"bad value", "use strict;\n$max_servers = 0;\n@bypass_spam_checks_maps = (1);\n1;\n", ":2:1: $max_servers: must be at least 1, is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "50-user")
			if err := os.WriteFile(f, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runAmavisd(t, "-c", f, "configtest")
			want := "amavisd: " + f + tc.want
			if code != 78 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 78 and one line %q", code, out, errOut, want)
			}
		})
	}
}

// writePerl writes the env's configuration as amavis's Perl (what newEnv writes as TOML).
func (e *env) writePerl(nextHop, banner string, extra ...string) {
	e.t.Helper()
	text := fmt.Sprintf(`use strict;
$MYHOME = '%s';
$TEMPBASE = "$MYHOME/tmp";
$pid_file = "$MYHOME/amavisd.pid";
$LOGFILE = "$MYHOME/amavisd.log";
$inet_socket_port = %d;
$inet_socket_bind = '127.0.0.1';
$forward_method = '%s';
$child_timeout = 60;
@bypass_spam_checks_maps = (1);
$smtpd_greeting_banner = '%s ${helo-name}';
$sa_local_tests_only = 1;  # embedded SpamAssassin's: read, not used
$ENV{PATH} = '/usr/bin:/bin'; chomp($myhostname = `+"`hostname`"+`);
%s
1;
`, e.dir, e.port, nextHop, banner, strings.Join(extra, "\n"))
	if err := os.WriteFile(e.file, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func TestPerlReloadBrokenFileKeepsOld(t *testing.T) {
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String())
	e.file = filepath.Join(e.dir, "amavisd.conf")
	e.writePerl(next.Method.String(), "first")
	allow := filepath.Join(e.dir, "local.toml")
	if err := os.WriteFile(allow, []byte("allow_run_as_root = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := e.foreground("-c", allow)
	e.waitLog("(!)config: " + e.file + ":12:1: $sa_local_tests_only is not implemented by amavisgo; its setting is ignored")
	e.waitLog("config: " + e.file + ":13:51: ran `hostname`")
	if g := greetingOf(t, e.addr); g != "220 first [127.0.0.1]" {
		t.Fatalf("greeting %q", g)
	}
	// a good change is taken on SIGHUP
	e.writePerl(next.Method.String(), "second")
	syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP)
	e.waitNotify("RELOADING=1")
	e.waitNotify("READY=1")
	if g := greetingOf(t, e.addr); g != "220 second [127.0.0.1]" {
		t.Errorf("after a reload the greeting is %q", g)
	}
	// a broken file is refused, with its position, and the running configuration stays
	e.writePerl(next.Method.String(), "third", "$max_servers = 'oops;")
	syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP)
	e.waitNotify("RELOADING=1")
	e.waitNotify("READY=1")
	e.waitLog("(!)Rejecting reload, some config files unreadable or erroneous: " + e.file + ":14:16: unterminated string: no closing '\\''")
	if g := greetingOf(t, e.addr); g != "220 second [127.0.0.1]" {
		t.Errorf("after a refused reload the greeting is %q, want the old one", g)
	}
	c, _ := dial(t, e.addr)
	c.startData("after-refused-perl-reload@test")
	if r := c.finishData(); !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Errorf("a message after a refused reload: %s", r)
	}
}

// TestPerlStopWithBrokenFile: stop finds the daemon through the pid_file of the Perl files
// even when one file no longer loads.
func TestPerlStopWithBrokenFile(t *testing.T) {
	next := deliverytest.Start(t)
	e := newEnv(t, next.Method.String())
	e.file = filepath.Join(e.dir, "amavisd.conf")
	e.writePerl(next.Method.String(), "first")
	allow := filepath.Join(e.dir, "local.toml")
	if err := os.WriteFile(allow, []byte("allow_run_as_root = true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := e.foreground("-c", allow)
	broken := filepath.Join(e.dir, "zz-broken.conf")
	if err := os.WriteFile(broken, []byte("use strict;\n$max_servers = ;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runAmavisd(t, "-c", e.file, "-c", broken, "stop")
	if code != 0 || !strings.Contains(errOut, broken+":2:16: syntax error") {
		t.Fatalf("stop: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	<-d.done
}

// TestPerlRefusesWritableInclude: a file that a Perl configuration includes is checked like
// the configuration itself: the daemon user must not be able to write it.
func TestPerlRefusesWritableInclude(t *testing.T) {
	requireRoot(t)
	e := newEnv(t, "smtp:[127.0.0.1]:10025")
	e.file = filepath.Join(e.dir, "amavisd.conf")
	inc := filepath.Join(e.dir, "local.conf")
	if err := os.WriteFile(inc, []byte("$log_level = 1;\n1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(inc, 65534, 65534)
	e.writePerl("smtp:[127.0.0.1]:10025", "x", "$daemon_user = 'nobody';", "include_config_files('"+inc+"');")
	_, errOut, code := runAmavisd(t, "-c", e.file, "foreground")
	if want := fmt.Sprintf("amavisd: Config file %q is writable, UID 65534, EUID 65534, EGID 65534\nSECURITY PROBLEM, ABORTING\n", inc); code != 1 || !strings.HasSuffix(errOut, want) {
		t.Errorf("exit %d, %q, want %q", code, errOut, want)
	}
}

// TestSelftestConfigFromPerl: selftest's temporary daemon is built from a Perl configuration
// too, with every forwarding method, of the banks as well, sent to its capture server.
func TestSelftestConfigFromPerl(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "amavisd.conf")
	os.WriteFile(file, []byte(`use strict;
@bypass_spam_checks_maps = (1);
$inet_socket_port = [10024, 10026];
$forward_method = 'smtp:[192.0.2.1]:10025';
$interface_policy{'10026'} = 'ORIGINATING';
$policy_bank{'ORIGINATING'} = { forward_method => 'lmtp:[192.0.2.2]:24', originating => 1 };
1;
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
	p, err := cfg.Bank(&cfg.Policy, "ORIGINATING")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ForwardMethod != capture || p.ForwardMethod != capture || !p.Originating {
		t.Errorf("forward_method %s, ORIGINATING's %s (originating %v), want %s", cfg.ForwardMethod, p.ForwardMethod, p.Originating, capture)
	}
}
