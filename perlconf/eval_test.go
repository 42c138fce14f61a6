package perlconf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/lookup"
)

// run evaluates src as one file and fails the test on an error.
func run(t *testing.T, src string) *Interp {
	t.Helper()
	in := NewInterp()
	if err := in.Run("f.conf", src); err != nil {
		t.Fatal(err)
	}
	return in
}

func dumpJSON(v Value) string {
	var b strings.Builder
	var w func(any)
	w = func(x any) {
		switch y := x.(type) {
		case []any:
			b.WriteString("[")
			for i, e := range y {
				if i > 0 {
					b.WriteString(",")
				}
				w(e)
			}
			b.WriteString("]")
		case map[string]any:
			b.WriteString("{")
			for i, k := range sortedNames(y) {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString(k + ":")
				w(y[k])
			}
			b.WriteString("}")
		case nil:
			b.WriteString("undef")
		default:
			b.WriteString(perlString(y))
		}
	}
	w(dumpValue(v, 0))
	return b.String()
}

func TestEvaluation(t *testing.T) {
	for _, tc := range []struct{ name, src, expr, want string }{
		{"live scalar reference", `@spam_tag2_level_maps = (\$sa_tag2_level_deflt); $sa_tag2_level_deflt = 6.31;`, "@spam_tag2_level_maps", "[6.31]"},
		{"live array reference in a default map", `@bypass_virus_checks_acl = qw( a@b .c );`, "@bypass_virus_checks_maps", "[{},[a@b,.c],undef]"},
		{"anonymous hash copies", `$X_HEADER_TAG = 'a'; $policy_bank{'P'} = { X_HEADER_TAG => $X_HEADER_TAG, v => \$virus_admin }; $virus_admin = 'late'; $X_HEADER_TAG = 'b';`, "%policy_bank", "{P:{X_HEADER_TAG:a,v:late}}"},
		{"qw does not interpolate", `@whitelist_sender_acl = qw( .$mydomain );`, "@whitelist_sender_acl", "[.$mydomain]"},
		{"interpolation and escapes", `$mydomain = 'ex.com'; $virus_admin = "postmaster\@$mydomain\t${mydomain}";`, "$virus_admin", "postmaster@ex.com\tex.com"},
		{"element interpolation", `$ENV{X_T} = 'v'; $myhostname = "h-$ENV{X_T}";`, "$myhostname", "h-v"},
		{"arithmetic and concatenation", `$sa_mail_body_size_limit = 400*1024 - (32*1024) + 2**3; $X_HEADER_LINE = 'a' . 1+1 . 'b';`, "$sa_mail_body_size_limit", "376840"},
		{"minor categories", `$defang_maps_by_ccat{+CC_VIRUS} = 1; $defang_by_ccat{CC_BADH.",3"} = 1; $defang_by_ccat{&CC_SPAM} = 0; $defang_by_ccat{CC_BANNED} = 2;`, "%defang_maps_by_ccat", "{4,3:1,6:0,9:1,CC_BANNED:2}"},
		{"aliases are one variable", `$DO_SYSLOG = 1;`, "$do_syslog", "1"},
		{"here-doc", "$log_templ = <<'EOD';\n[? %#V |]$x\nEOD\n$log_level = 2;", "$log_templ", "[? %#V |]$x\n"},
		{"interpolating here-doc", "$mydomain = 'd';\n$log_templ = <<\"EOD\" . 'z';\nat $mydomain\nEOD\n", "$log_templ", "at d\nz"},
		{"qr with flags and delimiters", `$banned_filename_re = new_RE( qr'\.exe$'i, [qr{^\.zip$} => 0], qr/(?x) a b /m );`, "$banned_filename_re", "{object:Amavis::Lookup::RE,value:[{flags:i,re:\\.exe$},[{flags:,re:^\\.zip$},0],{flags:mx,re:(?x) a b }]}"},
		{"scanner entry", `@av_scanners = (['c', \&ask_daemon, ["CONTSCAN {}\n", '/s'], qr/\bOK$/m, [1..3], sub {chdir('/') or die "x"}]);`, "@av_scanners", "[[c,{code:true},[CONTSCAN {}\n,/s],{flags:m,re:\\bOK$},[1,2,3],{code:true}]]"},
		{"push and unshift", `@mynetworks = qw(a); push @mynetworks, 'b', 'c'; unshift(@mynetworks, 'z');`, "@mynetworks", "[z,a,b,c]"},
		{"map and for", "%bypass_spam_checks = map { $_ => 1 } qw(x y);\nfor (qw(p q)) { $virus_lovers{$_} = 1 }\n$spam_lovers{$_} = 2 for qw(r);", "%bypass_spam_checks", "{x:1,y:1}"},
		{"chained assignment", `$ENV{PATH} = $path = '/bin:/usr/bin';`, "$path", "/bin:/usr/bin"},
		{"array assigned a scalar", `@local_domains_maps = 1;`, "@local_domains_maps", "[1]"},
		{"chomp of an assignment", "$myhostname = \"a\\n\";\nchomp($mydomain = $myhostname);", "$mydomain", "a"},
		{"ternary and defined-or", `$log_level = defined($undecipherable_subject_tag) ? 1 : 0; $daemon_user //= 'amavis';`, "$daemon_user", "amavis"},
		{"delete", `$interface_policy{'SOCK'} = 'X'; $interface_policy{'10026'} = 'O'; delete $interface_policy{'SOCK'};`, "%interface_policy", "{10026:O}"},
		{"lc and split", `@inet_acl = split(/,/, lc 'A,B');`, "@inet_acl", "[a,b]"},
		{"no final 1; needed, __END__ ends the file", "$max_servers = 3\n__END__\n$max_servers = 4;", "$max_servers", "3"},
		{"POD is skipped", "=pod\n$max_servers = 9;\n=cut\n$max_servers = 5;", "$max_servers", "5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := run(t, tc.src)
			vs, isArray := in.valueOf(tc.expr)
			v := vs[0]
			if isArray {
				v = Value{Kind: ArrayRef, A: &Array{E: vs}}
			} else if len(vs) == 1 && tc.expr[0] == '$' {
				v = vs[0]
			}
			if got := dumpJSON(v); got != tc.want {
				t.Errorf("%s = %s, want %s", tc.expr, got, tc.want)
			}
		})
	}
}

func TestHelpersReadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hash := write("hash", "# comment\nUser@Example.COM  some value # trailing\n.example.net\n\"quoted user\"@x.org 2\n")
	arr := write("arr", "a.example # c\n\n  \nb.example\n")
	inc := write("inc.conf", "$max_servers = 7;\n1;\n")
	in := run(t, `
@local_domains_maps = ( read_hash("`+hash+`") );
@local_domains_acl = read_array('`+arr+`');
include_config_files('`+inc+`');
include_optional_config_files('/nonexistent/x.conf');
$notify_sender_templ = read_text('`+hash+`');
`)
	if got := dumpJSON(Value{Kind: ArrayRef, A: &Array{E: in.Array("local_domains_maps")}}); got != "[{.example.net:1,quoted user@x.org:2,user@example.com:some value}]" {
		t.Errorf("read_hash: %s", got)
	}
	if got := dumpJSON(Value{Kind: ArrayRef, A: &Array{E: in.Array("local_domains_acl")}}); got != "[[a.example,b.example]]" {
		t.Errorf("read_array: %s", got)
	}
	if got := in.Scalar("max_servers").String(); got != "7" {
		t.Errorf("include_config_files: $max_servers = %s", got)
	}
	if v := in.Scalar("notify_sender_templ"); v.File != hash || !strings.HasPrefix(v.S, "# comment") {
		t.Errorf("read_text: %+v", v)
	}
	if len(in.Files) != 2 {
		t.Errorf("files read: %v", in.Files)
	}
}

func TestRequireIfExists(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "local.conf")
	if err := os.WriteFile(f, []byte("$max_servers = 9;\n1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := run(t, "require '"+f+"' if -e '"+f+"';\nrequire '/nonexistent/x.conf' if -e '/nonexistent/x.conf';\n$log_level = -f '"+f+"' ? 2 : 0;\n")
	if in.Scalar("max_servers").String() != "9" || in.Scalar("log_level").String() != "2" {
		t.Errorf("require ... if -e: $max_servers = %s, $log_level = %s", in.Scalar("max_servers"), in.Scalar("log_level"))
	}
	if err := NewInterp().Run("f.conf", "require DBI;"); err == nil || !strings.Contains(err.Error(), "f.conf:1:1: unsupported Perl: 'require' of a module") {
		t.Errorf("require of a module: %v", err)
	}
}

func TestBounded(t *testing.T) {
	for _, src := range []string{
		"for (1..60000) { for (1..60000) { $log_level = 1 } }",
		"@mynetworks = (1..60000); push @mynetworks, @mynetworks;",
		"@mynetworks = (1..1000000);",
		"$log_templ = 'x' x 100000000;",
		"$log_templ = 'xxxxxxxxxxxxxxxx'; $log_templ = $log_templ . $log_templ for (1..40);",
	} {
		start := time.Now()
		err := NewInterp().Run("f.conf", src)
		if err == nil || !strings.HasPrefix(err.Error(), "f.conf:1:") {
			t.Errorf("%q: %v", src, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q took %v", src, d)
		}
	}
}

func TestIsPerl(t *testing.T) {
	for text, perl := range map[string]bool{
		"use strict;\n$max_servers = 2;\n":             true,
		"# c\n\n$x = 1;":                               true,
		"read_l10n_templates('en_US', '/etc/amavis');": true,
		"@bypass_spam_checks_maps = (1);":              true,
		"max_servers = 4\n":                            false,
		"# c\n[policy_bank.MYNETS]\n":                  false,
		"\"10026\" = \"ORIGINATING\"":                  false,
		"":                                             false,
	} {
		if got := IsPerl([]byte(text)); got != perl {
			t.Errorf("IsPerl(%q) = %v", text, got)
		}
	}
}

func TestBacktick(t *testing.T) {
	in := run(t, "$ENV{PATH} = '/usr/bin:/bin';\nchomp($myhostname = `echo host.example`);\n$mydomain = `printf x`;")
	if in.Scalar("myhostname").S != "host.example" || in.Scalar("mydomain").S != "x" {
		t.Errorf("backticks: %q %q", in.Scalar("myhostname").S, in.Scalar("mydomain").S)
	}
	if os.Geteuid() == 0 {
		in = run(t, "$ENV{PATH} = '/usr/bin:/bin';\n$daemon_user = 'nobody';\n$myhostname = `id -u`;")
		if in.Scalar("myhostname").S != "65534\n" {
			t.Errorf("started as root, a command runs as daemon_user nobody; it ran as uid %q", in.Scalar("myhostname").S)
		}
	}
	saved := BacktickTimeout
	BacktickTimeout = 200 * time.Millisecond
	defer func() { BacktickTimeout = saved }()
	err := NewInterp().Run("f.conf", "$ENV{PATH} = '/usr/bin:/bin';\n$mydomain = `sleep 30`;")
	if err == nil || err.Error() != "f.conf:2:13: `sleep 30` did not finish within 200ms" {
		t.Errorf("a hanging command: %v", err)
	}
}

// TestErrors: each broken file gives one error line FILE:LINE:COL naming the construct.
func TestErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"$mydomain = 'x;\n", "f.conf:1:13: unterminated string: no closing '\\''"},
		{"$log_templ = <<EOD;\nabc\n", "f.conf:1:14: here-document <<EOD has no terminating line \"EOD\""},
		{"use strict;\n$max_server = 1;", `f.conf:2:1: Global symbol "$max_server" requires explicit package name: $max_server is not one of amavis's variables (did you mean $max_servers?)`},
		{"%dkim_signing_keys = ();", `f.conf:1:1: Global symbol "%dkim_signing_keys" requires explicit package name: %dkim_signing_keys is not one of amavis's variables (did you mean %dkim_signing_keys_by_domain?)`},
		{"$max_servers = foo(1);", `f.conf:1:16: unknown function foo(): not one of Amavis::Conf's helpers (new_RE, read_hash, read_array, read_cidr, read_text, read_l10n_templates, include_config_files, dkim_key, Opaque, idn_to_ascii, ...) nor a supported builtin`},
		{"$max_servers = bareword;", "f.conf:1:16: Bareword \"bareword\" not allowed while \"strict subs\" in use: quote the string, or use one of amavis's D_*/CC_* constants"},
		{"sub peek { 1 }\n", "f.conf:1:1: unsupported Perl: named subroutine definition 'sub peek'; a configuration cannot define functions; set the variables directly (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)"},
		{"my $x = 1;", "f.conf:1:1: unsupported Perl: 'my' variable declaration; assign to amavis's own variables (a temporary variable can be replaced by repeating its value) (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)"},
		{"use DBI;", "f.conf:1:1: unsupported Perl: 'use DBI'; only use strict, use warnings and use vars are accepted; the helpers of Amavis::Conf need no module (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)"},
		{"if ($max_servers) { $log_level = 1 }", "f.conf:1:1: unsupported Perl: 'if' block; write the settings unconditionally, or use a statement modifier on a simple assignment (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)"},
		{"$policy_bank{''}{x} = 1;", "f.conf:1:17: unsupported Perl: nested element policy_bank{...}{...}; assign the whole inner hash, e.g. $policy_bank{'NAME'} = { key => value } (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)"},
		{"$max_servers = $Amavis::MSGINFO->sender;", "f.conf:1:16: unsupported Perl: package variable $Amavis::MSGINFO; use amavis's own variable without a package name (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)"},
		{"$mydomain = `hostname | cut -d. -f2`;", "f.conf:1:13: unsupported Perl: backticks with shell syntax `hostname | cut -d. -f2`; amavisgo runs commands without a shell: write a plain command and its arguments"},
		{"$max_servers = 2;\n$log_level = 3 4;\n", `f.conf:2:16: syntax error: expected ';' after the statement, found "4"`},
		{"@inet_acl = ( '127.0.0.1',\n  '[::1]';\n", `f.conf:2:10: syntax error: expected ')' to close the one at 1:13, found ";"`},
		{"$defang_by_ccat{a} = c('forward_method');", "f.conf:1:22: unsupported Perl: c() looks up a policy setting while mail is processed; it may only appear inside sub { c('name') } in a *_by_ccat map"},
		{"@av_scanners = (['x', \\&my_scan, []]);", "f.conf:1:23: unknown function \\&my_scan: a configuration may refer to amavis's scanner and decoder functions only (ask_daemon, ask_clamav, do_*)"},
		{"$banned_filename_re = read_hash('/nonexistent/list');", "f.conf:1:23: read_hash: Can't open file /nonexistent/list for reading: no such file or directory"},
	} {
		err := NewInterp().Run("f.conf", tc.src)
		if err == nil || err.Error() != tc.want || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

// TestConversionErrors: values conf cannot take name the file, line and column that set them.
func TestConversionErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ src, want string }{
		{"@bypass_spam_checks_maps = (1);\n@local_domains_maps = (sub { 1 });\n", ":2:1: unsupported Perl: a sub { ... } as a lookup table would run Perl code for each message; write a hash { 'address' => value }, an ACL [ '.domain', ... ] or new_RE(qr'...')"},
		{"@bypass_spam_checks_maps = (1);\n$forward_method = 'smtp:[127.0.0.1]:x';\n", `:2:1: $forward_method: method "smtp:[127.0.0.1]:x": bad port "x"`},
		{"@bypass_spam_checks_maps = (1);\n$policy_bank{'B'} = { log_level => 'x', final_virus_destiny => 7 };\n", `:2:1: $policy_bank{'B'}{final_virus_destiny}: unknown destiny 7`},
		{"$bounce_killer_score = 100;\n", ":1:1: the bounce killer is switched on ($bounce_killer_score) but amavisgo does not implement it yet; switch it off, or set allow_unimplemented = true in a TOML file to run without it"},
		{"@storage_sql_dsn = (['DBI:Pg:x']);\n$penpals_bonus_score = 8;\n", ":2:1: pen pals is switched on ($penpals_bonus_score) but amavisgo does not implement it yet; switch it off, or set allow_unimplemented = true in a TOML file to run without it"},
		{"@spam_scanners = (['DSPAM', 'Amavis::SpamControl::ExtProg', 'dspam', []]);\n", `:1:1: spam_scanners entry "DSPAM": the engine Amavis::SpamControl::ExtProg is not implemented by amavisgo (SpamdClient, RspamdClient and SpamAssassin through spamd are); spam checking is on (@bypass_spam_checks_maps): remove the entry, or set allow_unimplemented = true in a TOML file to run without it`},
		{"@bypass_spam_checks_maps = (1);\n$partition_tag = sub { 'x' };\n", ":2:1: partition_tag must be a number or a string, found a code reference (amavis's code form is not taken)"},
		{"@bypass_spam_checks_maps = (1);\n@dkim_signature_options_bysender_maps = (new_RE([qr'x' => {}]));\n", ":2:1: dkim_signature_options_bysender_maps table 1: only a hash { 'address' => { option => value } } is supported, found a new_RE list"},
		{"@bypass_spam_checks_maps = (1);\n$default_ldap = { hostname => 'h', port => [1] };\n", ":2:1: default_ldap: parameter port: want a plain value (array reference given)"},
	} {
		f := filepath.Join(dir, "amavisd.conf")
		if err := os.WriteFile(f, []byte(tc.src), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load([]string{f}, Options{})
		if err == nil || err.Error() != f+tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, f+tc.want)
		}
	}
}

func TestPolicyBankWarnings(t *testing.T) {
	f := filepath.Join(t.TempDir(), "amavisd.conf")
	src := "@bypass_spam_checks_maps = (1);\n$policy_bank{'M'} = { bypass_virus_check_maps => [1], sa_userconf_maps => ['x'], spam_kill_level_maps => [9] };\n$warnspamsender = 1;\n$sql_select_policy = 'SELECT *';\n  ' ORDER BY users.priority DESC';\n1;\n"
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load([]string{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(r.Warnings, "\n")
	for _, want := range []string{
		f + ":2:1: policy bank 'M': unknown field 'bypass_virus_check_maps' (amavis ignores it too)",
		f + ":2:1: policy bank 'M': sa_userconf_maps is not implemented by amavisgo; it is ignored",
		f + ":3:1: Variable $warnspamsender was retired, changing its value has no effect",
		f + ":5:3: a string on its own is not used (a ';' too many before it?)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	// spam levels are read in a policy bank like any other key
	if strings.Contains(got, "spam_kill_level_maps") {
		t.Errorf("a warning about spam_kill_level_maps:\n%s", got)
	}
	m, err := r.Config.Bank(&r.Config.Policy, "M")
	if err != nil {
		t.Fatal(err)
	}
	if lv := conf.Level(m.SpamKillLevelMaps, nil, "u@example.com", lookup.Options{}); lv == nil || *lv != 9 {
		t.Errorf("policy bank M: spam_kill_level_maps gives %v, want 9", lv)
	}
}

// TestMixedOrder: Perl and TOML files mixed; each file overrides what came before it.
func TestMixedOrder(t *testing.T) {
	dir := t.TempDir()
	perl := filepath.Join(dir, "amavisd.conf")
	tomlFile := filepath.Join(dir, "local.toml")
	os.WriteFile(perl, []byte("@bypass_spam_checks_maps = (1);\n$max_servers = 3;\n$log_level = 1;\n$policy_bank{'MYNETS'} = { log_level => 4, originating => 1 };\n1;\n"), 0o644)
	os.WriteFile(tomlFile, []byte("max_servers = 7\n[policy_bank.MYNETS]\nlog_level = 5\n"), 0o644)
	r, err := Load([]string{perl, tomlFile}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Config.Bank(&r.Config.Policy, "MYNETS")
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.MaxServers != 7 || r.Config.LogLevel != 1 || b.LogLevel != 5 || !b.Originating {
		t.Errorf("Perl then TOML: max_servers %d, log_level %d, MYNETS log_level %d originating %v", r.Config.MaxServers, r.Config.LogLevel, b.LogLevel, b.Originating)
	}
	r, err = Load([]string{tomlFile, perl}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err = r.Config.Bank(&r.Config.Policy, "MYNETS")
	if err != nil {
		t.Fatal(err)
	}
	if r.Config.MaxServers != 3 || b.LogLevel != 4 {
		t.Errorf("TOML then Perl: max_servers %d, MYNETS log_level %d; want the Perl file's 3 and 4", r.Config.MaxServers, b.LogLevel)
	}
	if len(r.Files) != 2 {
		t.Errorf("files read: %v", r.Files)
	}
	os.WriteFile(tomlFile, []byte("\nmax_server = 7\n"), 0o644)
	if _, err := Load([]string{perl, tomlFile}, Options{}); err == nil || err.Error() != tomlFile+`:2: key "max_server": unknown setting` {
		t.Errorf("a TOML file's error: %v", err)
	}
}

// TestDeclaredMatchesAmavis: the variables we accept are exactly those amavis's installed
// Amavis::Conf declares (when Debian's amavisd-new is installed).
func TestDeclaredMatchesAmavis(t *testing.T) {
	if _, err := os.Stat("/usr/share/perl5/Amavis/Conf.pm"); err != nil {
		t.Skip("amavisd-new is not installed")
	}
	out, err := exec.Command("perl", "-MExporter", "-e", `require Amavis::Conf; my %t = %Amavis::Conf::EXPORT_TAGS;
		print "$_\n" for grep { /^[\$\@\%]/ } map { @{$t{$_}} } qw(dynamic_confvars confvars sa platform hidden_confvars legacy_dynamic_confvars legacy_confvars);`).Output()
	if err != nil {
		t.Fatalf("perl: %v", err)
	}
	theirs := map[string]bool{}
	for _, n := range strings.Fields(string(out)) {
		theirs[n] = true
		if _, ok := declared[n]; !ok {
			t.Errorf("amavis declares %s, we do not", n)
		}
	}
	for n, tag := range declared {
		if !theirs[n] && tag != "alias" {
			t.Errorf("we declare %s, amavis does not", n)
		}
	}
}

// TestFeatureSettings: the Perl shapes of amavis's spam, SQL, LDAP and DKIM settings give
// conf's values, and what conf cannot take is named in a warning.
func TestFeatureSettings(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "amavisd.conf")
	src := `use strict;
$sql_select_policy = 'SELECT *, users.id FROM users WHERE users.email IN (%k)';
@lookup_sql_dsn = ( ['DBI:mysql:database=mail;host=127.0.0.1;port=3306', 'amavis', 'secret'] );
@storage_sql_dsn = @lookup_sql_dsn;
%sql_clause = ( 'sel_policy' => \$sql_select_policy, 'ins_mailadr' => 'INSERT x' );
$sql_partition_tag = 7;
$enable_ldap = 1;
$default_ldap = { hostname => ['ldap1.example.com', 'ldap2.example.com'], tls => 1, timeout => 5,
  base => 'ou=People,dc=example,dc=com', sasl => 0 };
$enable_dkim_signing = 1;
dkim_key('example.com', 'dkim', '/var/lib/dkim/example.com.pem', t => 's');
@dkim_signature_options_bysender_maps = ( { '.' => { ttl => 21*24*3600, c => 'relaxed/simple' } } );
$signed_header_fields{'Received'} = 0;
$sa_tag_level_deflt = undef;
$sa_kill_level_deflt = 8.5;
@score_sender_maps = ({ '.' => [ new_RE([qr'^offers@'i => 5.0]), { 'Friend@Example.org' => -3 } ] });
@spam_scanners = ( ['R', 'Amavis::SpamControl::RspamdClient', url => 'http://127.0.0.1:11333/checkv2',
  timeout => 30, credentials => { username => 'u', password => 'p', realm => 'r' }, ssl_opts => {} ] );
1;
`
	if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Load([]string{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Config
	if len(c.LookupSQLDSN) != 1 || c.LookupSQLDSN[0] != (conf.SQLDSN{DSN: "DBI:mysql:database=mail;host=127.0.0.1;port=3306", User: "amavis", Password: "secret"}) || len(c.StorageSQLDSN) != 1 {
		t.Errorf("DSNs: lookup %+v, storage %+v", c.LookupSQLDSN, c.StorageSQLDSN)
	}
	if got := c.Clause("sel_policy", ""); !strings.HasPrefix(got, "SELECT *, users.id") || len(c.SQLClause) != 1 || c.PartitionTag != int64(7) {
		t.Errorf("sql_clause %v, partition_tag %#v", c.SQLClause, c.PartitionTag)
	}
	l := c.DefaultLDAP
	if !c.EnableLDAP || strings.Join(l.Hostname, " ") != "ldap1.example.com ldap2.example.com" || !l.TLS || l.Timeout != 5 || l.Base != "ou=People,dc=example,dc=com" || l.Scope != "sub" {
		t.Errorf("default_ldap %+v", l)
	}
	if len(c.DKIMKeys) != 1 || c.DKIMKeys[0].Domain != "example.com" || c.DKIMKeys[0].Selector != "dkim" || c.DKIMKeys[0].KeyFile != "/var/lib/dkim/example.com.pem" || c.DKIMKeys[0].Options["t"] != "s" {
		t.Errorf("dkim_key %+v", c.DKIMKeys)
	}
	if m := c.DKIMSignatureOptionsBysenderMaps; len(m) != 1 || m[0]["."]["ttl"] != int64(21*24*3600) || m[0]["."]["c"] != "relaxed/simple" {
		t.Errorf("dkim_signature_options_bysender_maps %+v", m)
	}
	if !c.EnableDKIMSigning || c.SignedHeaderFields["received"] != 0 || c.SignedHeaderFields["from"] != 2 {
		t.Errorf("enable_dkim_signing %v, signed_header_fields received %d from %d", c.EnableDKIMSigning, c.SignedHeaderFields["received"], c.SignedHeaderFields["from"])
	}
	if c.SaTagLevelDeflt != nil || c.SaKillLevelDeflt == nil || *c.SaKillLevelDeflt != 8.5 {
		t.Errorf("levels: tag %v, kill %v", c.SaTagLevelDeflt, c.SaKillLevelDeflt)
	}
	if got := c.ScoreSenderMaps.Score("x@example.com", "friend@example.org", lookup.Options{}); got != -3 {
		t.Errorf("score_sender_maps gives friend@example.org %v, want -3", got)
	}
	if s := c.SpamScanners; len(s) != 1 || s[0].Type != "rspamd" || s[0].URL != "http://127.0.0.1:11333/checkv2" || s[0].Timeout != 30 || s[0].Username != "u" || s[0].Password != "p" {
		t.Errorf("spam_scanners %+v", s)
	}
	got := strings.Join(r.Warnings, "\n")
	for _, want := range []string{
		f + ":5:1: %sql_clause{'ins_mailadr'} is not a statement amavis uses; it is ignored",
		f + ":8:1: default_ldap: parameter sasl is not implemented by amavisgo; it is ignored",
		f + ":16:1: score_sender_maps: recipient \".\": a regular-expression table of senders is not implemented by amavisgo; its 1 rules are ignored",
		f + ":17:1: spam_scanners entry \"R\": option ssl_opts is not implemented by amavisgo; it is ignored",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
}
