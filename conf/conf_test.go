package conf

import (
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	c, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxServers != 2 || c.ChildTimeout != 480 || c.SmtpdTimeout != 480 || c.TEMPBASE != "/var/amavis" ||
		c.ForwardMethod != "smtp:[127.0.0.1]:10025" || c.FinalVirusDestiny != D_DISCARD ||
		c.Forward().String() != "smtp:[127.0.0.1]:10025" || c.Notify() != c.Forward() {
		t.Errorf("defaults differ from amavis's (Amavis::Conf): %+v", c.Global)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"unknown key", "max_servers = 4\nmax_server = 3\n", `a.toml:2: key "max_server": unknown setting`},
		{"wrong type", "max_servers = \"four\"\n", `a.toml:1: key "max_servers": incompatible types`},
		{"impossible value", "\n\nmax_servers = 0\n", `a.toml:3: key "max_servers": must be at least 1, is 0`},
		{"bad method", "forward_method = \"smtp:127.0.0.1\"\n", `a.toml:1: key "forward_method": method "smtp:127.0.0.1": no port`},
		{"bad destiny", "final_virus_destiny = \"D_EXPLODE\"\n", `a.toml:1: key "final_virus_destiny": unknown destiny "D_EXPLODE"`},
		{"syntax", "max_servers = = 3\n", `a.toml:1: `},
		{"unknown key in bank", "[policy_bank.MYNETS]\noriginating = true\nbogus = 1\n", `a.toml:3: key "policy_bank.MYNETS.bogus": unknown setting in policy bank MYNETS`},
		{"bad value in bank", "[policy_bank.X]\n\nforward_method = \"smtp:[::1]:0\"\n", `a.toml:3: key "policy_bank.X.forward_method": method`},
		{"bad IP list", "inet_acl = [\"127.0.0.1\", \"nonsense\"]\n", `a.toml:1: key "inet_acl": bad IP address "nonsense"`},
		{"global key in bank", "[policy_bank.X]\nmax_servers = 3\n", `a.toml:2: key "policy_bank.X.max_servers": unknown setting`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("a.toml", []byte(tc.text))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestBankOverlaysOnlyItsKeys(t *testing.T) {
	c, err := Parse("a.toml", []byte(`
forward_method = "smtp:[127.0.0.1]:10025"
log_level = 1
interface_policy = { "10026" = "ORIGINATING" }
[policy_bank.ORIGINATING]
originating = true
forward_method = "smtp:[127.0.0.1]:10027"
[policy_bank.MYNETS]
log_level = 3
`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Bank(&c.Policy, "ORIGINATING")
	if err != nil {
		t.Fatal(err)
	}
	if !o.Originating || o.ForwardMethod != "smtp:[127.0.0.1]:10027" || o.LogLevel != 1 || o.PolicyBankPath != "ORIGINATING" {
		t.Errorf("ORIGINATING = %+v", o.ProtocolPolicy)
	}
	m, _ := c.Bank(o, "MYNETS")
	if m.PolicyBankPath != "ORIGINATING/MYNETS" || m.LogLevel != 3 || m.ForwardMethod != "smtp:[127.0.0.1]:10027" {
		t.Errorf("ORIGINATING/MYNETS = %+v", m.ProtocolPolicy)
	}
	if c.Originating || c.LogLevel != 1 || c.PolicyBankPath != "" {
		t.Errorf("the base bank changed: %+v", c.ProtocolPolicy)
	}
	if same, _ := c.Bank(&c.Policy, "NOSUCH"); same != &c.Policy {
		t.Errorf("a missing bank must leave the policy as it is")
	}
}

func TestListeners(t *testing.T) {
	c, err := Parse("a.toml", []byte("inet_socket_port = [10024, \"127.0.0.1:10026\"]\ninet_socket_bind = [\"127.0.0.1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners()
	if len(l) != 2 || l[0].Address != "127.0.0.1:10024" || l[1].Address != "127.0.0.1:10026" || l[1].Port != "10026" {
		t.Errorf("listeners = %+v", l)
	}
}

func TestInlineTablesInALookupList(t *testing.T) {
	c, err := Parse("a.toml", []byte("bypass_virus_checks_maps = [{ acl = [\"example.com\"] }]\n[policy_bank.X]\nbypass_banned_checks_maps = [{ acl = [\".\"] }]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.BypassVirusChecksMaps.Bool("u@example.com", c.LookupOptions()) || c.BypassVirusChecksMaps.Bool("u@other.example", c.LookupOptions()) {
		t.Errorf("inline ACL not applied")
	}
	x, err := c.Bank(&c.Policy, "X")
	if err != nil || !x.BypassBannedChecksMaps.Bool("u@any.example", x.LookupOptions()) {
		t.Errorf("inline ACL in a bank not applied: %v", err)
	}
}

func TestBankDoesNotWriteIntoBaseSlices(t *testing.T) {
	c, err := Parse("a.toml", []byte("smtpd_discard_ehlo_keywords = [\"DSN\", \"VRFY\"]\n[policy_bank.X]\nsmtpd_discard_ehlo_keywords = [\"PIPELINING\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := c.Bank(&c.Policy, "X")
	if err != nil || len(x.SmtpdDiscardEhloKeywords) != 1 || x.SmtpdDiscardEhloKeywords[0] != "PIPELINING" {
		t.Fatalf("bank X: %v %v", x.SmtpdDiscardEhloKeywords, err)
	}
	if got := c.SmtpdDiscardEhloKeywords; len(got) != 2 || got[0] != "DSN" || got[1] != "VRFY" {
		t.Errorf("base smtpd_discard_ehlo_keywords changed to %v", got)
	}
}

// FuzzParse: any text is a configuration or an *Error naming the file; never a panic.
func FuzzParse(f *testing.F) {
	f.Add("max_servers = 4\n[policy_bank.MYNETS]\noriginating = true\n")
	f.Add("inet_acl = [\"127.0.0.1\", \"!10/8\"]\nforward_method = \"lmtp:[::1]:24\"\n")
	f.Add("[[av_scanners]]\nname = \"x\"\ntype = \"clamd\"\nsockets = [\"/s\"]\n")
	f.Fuzz(func(t *testing.T, text string) {
		_, err := Parse("f.toml", []byte(text))
		if err != nil && !strings.HasPrefix(err.Error(), "f.toml") {
			t.Fatalf("error without the file name: %v", err)
		}
	})
}
