package conf

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated table in docs/amavis-variables.md")

// showRoundTrip loads text, shows it, loads the output, and checks both configurations agree.
func showRoundTrip(t *testing.T, name string, text []byte) string {
	t.Helper()
	c, err := Parse(name, text)
	if err != nil {
		t.Fatal(err)
	}
	back, out := reparseShown(t, c)
	if !reflect.DeepEqual(c.Global, back.Global) {
		t.Errorf("globals differ after the round trip:\n%+v\n%+v", c.Global, back.Global)
	}
	if !reflect.DeepEqual(c.Policy, back.Policy) {
		t.Errorf("base policy differs after the round trip:\n%+v\n%+v", c.Policy, back.Policy)
	}
	for bank := range c.PolicyBanks {
		want, _ := c.Bank(&c.Policy, bank)
		got, err := back.Bank(&back.Policy, bank)
		if err != nil || !reflect.DeepEqual(want, got) {
			t.Errorf("policy bank %s differs after the round trip (%v):\n%+v\n%+v", bank, err, want, got)
		}
	}
	var again bytes.Buffer
	back.Show(&again)
	if again.String() != out {
		t.Errorf("showconfig of showconfig's output differs:\n%s\n----\n%s", out, again.String())
	}
	return out
}

// reparseShown loads what showconfig prints for c.
func reparseShown(t *testing.T, c *Config) (*Config, string) {
	t.Helper()
	var out bytes.Buffer
	if err := c.Show(&out); err != nil {
		t.Fatal(err)
	}
	back, err := Parse(c.File, out.Bytes())
	if err != nil {
		t.Fatalf("showconfig output does not load: %v\n%s", err, out.String())
	}
	return back, out.String()
}

func TestShowRoundTrip(t *testing.T) {
	bundled, err := os.ReadFile("../etc/amavisd.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		text string
	}{
		{"defaults", ""},
		{"bundled", string(bundled)},
		{"banks", `
inet_socket_port = [10024, "127.0.0.1:10026", "unix:/run/amavisgo/amavisd.sock"]
interface_policy = { "10026" = "ORIGINATING", "unix:/run/amavisgo/amavisd.sock" = "AM.PDP-SOCK" }
mynetworks = ["10/8", "!10.1.0.0/16", "192.168.0.0/255.255.0.0"]
final_virus_destiny = "D_REJECT"
final_banned_destiny = -3
MIN_EXPANSION_FACTOR = 2.5
smtpd_greeting_banner = "say \"hi\" ${helo-name}"
viruses_that_fake_sender_maps = [['(?i)\bEICAR\b', false], ['.', true]]
virus_admin = { "example.com" = "virusalert@example.com", "." = "postmaster@example.com" }
[[av_scanners]]
name = "ClamAV-clamd"
type = "clamd"
sockets = ["/var/run/clamav/clamd.ctl"]
query = "CONTSCAN {}\n"
clean_pattern = '\bOK$'
infected_pattern = '\bFOUND$'
names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'
[[av_scanners_backup]]
name = "ClamAV-clamscan"
command = ["clamscan"]
args = "--stdout --no-summary -r {}"
clean_codes = [0]
infected_codes = [1]
[policy_bank.ORIGINATING]
originating = true
forward_method = "smtp:[127.0.0.1]:10027"
inet_acl = ["127.0.0.1"]
[policy_bank.MYNETS]
final_spam_destiny = "D_BOUNCE"
[policy_bank."AM.PDP-SOCK"]
protocol = "AM.PDP"
auth_required_release = false
`},
	} {
		t.Run(tc.name, func(t *testing.T) { showRoundTrip(t, "a.toml", []byte(tc.text)) })
	}
}

// TestShowNamesEveryKey: showconfig prints every key, each once, and the values the file set.
func TestShowNamesEveryKey(t *testing.T) {
	out := showRoundTrip(t, "a.toml", []byte("max_servers = 7\n[policy_bank.X]\nlog_level = 3\n"))
	base, _, _ := strings.Cut(out, "\n[policy_bank.")
	for _, k := range Keys() {
		if k.Key == "policy_bank" {
			continue
		}
		// "key = value", or a comment "# key is not set" / "# key = ... (cannot be shown as TOML)"
		n := len(regexp.MustCompile(`(?m)^(# )?`+regexp.QuoteMeta(k.Key)+` (=|is not set)`).FindAllString(base, -1))
		if n != 1 {
			t.Errorf("showconfig shows %s %d times", k.Key, n)
		}
	}
	for _, want := range []string{"\nmax_servers = 7\n", "\n[policy_bank.X]\nlog_level = 3\n", "# amavisgo effective configuration from a.toml\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("showconfig lacks %q:\n%s", want, out)
		}
	}
}

const tableMarker = "<!-- generated from conf's struct tags: go test ./conf -run TestMigrationTable -update -->\n"

// TestMigrationTable keeps docs/amavis-variables.md equal to what the code accepts. When it
// fails after you added a key: run the -update command in the marker line and commit the file.
func TestMigrationTable(t *testing.T) {
	const path = "../docs/amavis-variables.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(doc), tableMarker)
	if !ok {
		t.Fatalf("%s lacks the marker line %q", path, tableMarker)
	}
	want := head + tableMarker + MigrationTable()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(doc) != want {
		t.Errorf("%s is out of date with conf's keys; run: go test ./conf -run TestMigrationTable -update", path)
	}
}

// TestKeysAreAmavisVariables checks every key we call an amavis variable against amavis's own
// Conf.pm, so that the migration table never invents one. A key amavis lacks belongs in
// ourOwnKeys with its reason.
func TestKeysAreAmavisVariables(t *testing.T) {
	src, err := os.ReadFile("/usr/share/perl5/Amavis/Conf.pm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("amavisd-new's Conf.pm is needed to check the variable names: %v", err)
		}
		t.Skipf("amavisd-new not installed: %v", err)
	}
	for _, k := range Keys() {
		if k.Amavis == "" {
			continue
		}
		re := regexp.MustCompile(regexp.QuoteMeta(k.Amavis) + `\b`)
		if k.Amavis[0] == '%' { // a hash is mostly spelled by its elements: $interface_policy{...}
			re = regexp.MustCompile(`(%` + regexp.QuoteMeta(k.Amavis[1:]) + `|\$` + regexp.QuoteMeta(k.Amavis[1:]) + `\{)\b`)
		}
		if !re.Match(src) {
			t.Errorf("%s (key %s) is not an amavis variable in Conf.pm: fix the sigil (amavisSigils) or list it in ourOwnKeys", k.Amavis, k.Key)
		}
	}
}

func TestCheckStartable(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"inet_socket_port = 10024\ndaemon_user = \"nobody\"\ndaemon_group = \"nogroup\"\n", ""},
		{"inet_socket_port = 10024\ndaemon_user = \"65534\"\n", ""},
		{"daemon_user = \"nobody\"\n", `a.toml: key "inet_socket_port": No listen sockets or ports specified`},
		{"unix_socketname = \"/run/a.sock\"\n", ""},
		{"inet_socket_port = 10024\n\ndaemon_user = \"no-such-user-here\"\n", `a.toml:3: key "daemon_user": no such user "no-such-user-here"`},
		{"inet_socket_port = 10024\ndaemon_group = \"no-such-group-here\"\n", `a.toml:2: key "daemon_group": no such group "no-such-group-here"`},
	} {
		c, err := Parse("a.toml", []byte(tc.text))
		if err != nil {
			t.Fatal(err)
		}
		err = c.CheckStartable()
		if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.want)
		}
	}
}

// TestDebianConfdCovered: every variable Debian's amavisd-new package sets in its conf.d files
// is a key here, or README's migration section says what becomes of it, so that a Debian
// administrator finds each line of the old configuration.
func TestDebianConfdCovered(t *testing.T) {
	var files []string
	for _, dir := range []string{"/usr/share/amavis/conf.d", "/etc/amavis/conf.d"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*"))
		files = append(files, m...)
	}
	if len(files) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("Debian's amavisd-new conf.d files are missing (scripts/install-deps installs amavisd-new)")
		}
		t.Skip("amavisd-new is not installed")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, migration, _ := strings.Cut(string(readme), "## Migrating from the Perl amavisd")
	migration, _, _ = strings.Cut(migration, "\n## ")
	keys := map[string]bool{}
	for _, k := range Keys() {
		if k.Amavis != "" {
			keys[k.Amavis[1:]] = true
		}
	}
	assign := regexp.MustCompile(`(?m)^\s*([$@%])([A-Za-z_]\w*)\s*(\{[^}]*\})?\s*=`)
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range assign.FindAllStringSubmatch(string(text), -1) {
			sigil, name := m[1], m[2]
			if m[3] != "" {
				sigil = "%" // $interface_policy{'10026'} = ... sets the hash
			}
			if name == "ENV" || keys[name] {
				continue
			}
			if !regexp.MustCompile("`" + regexp.QuoteMeta(sigil+name) + "[ `]").MatchString(migration) {
				t.Errorf("%s sets %s%s: neither a key (docs/amavis-variables.md) nor named in README's migration section", f, sigil, name)
			}
		}
	}
}

// MigrationTable is the documentation table "amavis variable → TOML key", generated from the
// struct tags so that it cannot drift from what Load accepts.
func MigrationTable() string {
	var b strings.Builder
	b.WriteString("| amavis variable | amavisgo TOML key | policy bank | default | notes |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, k := range Keys() {
		amavis := "—"
		if k.Amavis != "" {
			amavis = "`" + k.Amavis + "`"
		}
		bank := ""
		if k.Bank {
			bank = "yes"
		}
		def := ""
		if k.Default != "" {
			def = "`" + strings.ReplaceAll(k.Default, "|", `\|`) + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s |\n", amavis, k.Key, bank, def, k.Note)
	}
	return b.String()
}
