package conf

import (
	"strings"
	"testing"
)

func TestVerdictSettings(t *testing.T) {
	c, err := Parse("a.toml", []byte(`
recipient_delimiter = "+"
allowed_header_tests = { utf8 = true, long = false }
allowed_added_header_fields = { "X-Amavis-Alert" = false }
[banned_rules]
DEFAULT = ["(?i)\\.exe$", ["^\\.zip$", false]]
[[local_domains_maps]]
acl = [".example.com", "!."]
[[bypass_virus_checks_maps]]
hash = { "Lover+x@Example.COM" = true }
[policy_bank.MYNETS]
[[policy_bank.MYNETS.bypass_virus_checks_maps]]
constant = true
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.LookupOptions()
	if !c.LocalDomainsMaps.Bool("u@sub.example.com", o) || c.LocalDomainsMaps.Bool("u@example.net", o) {
		t.Error("local_domains_maps")
	}
	if !c.BypassVirusChecksMaps.Bool("lover+x@example.com", o) || c.BypassVirusChecksMaps.Bool("other@example.com", o) {
		t.Error("bypass_virus_checks_maps with a mixed-case key")
	}
	if !c.AllowedHeaderTests["utf8"] || c.AllowedHeaderTests["long"] || !c.AllowedHeaderTests["8bit"] {
		t.Errorf("allowed_header_tests must merge over the defaults: %v", c.AllowedHeaderTests)
	}
	if c.HeaderFieldAllowed("x-amavis-alert") || !c.HeaderFieldAllowed("X-Quarantine-ID") || c.HeaderFieldAllowed("X-Spam-Report") {
		t.Error("allowed_added_header_fields")
	}
	if c.BannedRules["DEFAULT"].Len() != 2 {
		t.Error("banned_rules")
	}
	m, err := c.Bank(&c.Policy, "MYNETS")
	if err != nil || !m.BypassVirusChecksMaps.Bool("anyone@example.net", o) || c.BypassVirusChecksMaps.Bool("anyone@example.net", o) {
		t.Errorf("a bank overrides a map: %v", err)
	}
}

func TestVerdictErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"allowed_header_tests = { bogus = true }\n", `a.toml:1: key "allowed_header_tests": unknown test "bogus"`},
		{"local_domains_maps = [\".example.com\"]\n", `a.toml:1: key "local_domains_maps": ".example.com" would be a constant that answers every address`},
		{"[banned_rules]\nDEFAULT = [\"(unclosed\"]\n", `a.toml:2: key "banned_rules.DEFAULT"`},
		{"[[virus_lovers_maps]]\nacll = []\n", `a.toml:1: key "virus_lovers_maps"`},
	} {
		_, err := Parse("a.toml", []byte(tc.text))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want prefix %q", tc.text, err, tc.want)
		}
	}
}

// showconfig writes lookup tables in a form the loader takes back.
func TestVerdictShowRoundTrip(t *testing.T) {
	c, err := Parse("a.toml", []byte(`
client_ipaddr_policy = [[["10.0.0.0/8"], "MYNETS"]]
[[local_domains_maps]]
acl = [".example.com", "!."]
[[bypass_virus_checks_maps]]
hash = { "lover@example.com" = true }
[[bypass_virus_checks_maps]]
regexp = [['^(.*)\+x@', "$1"]]
[banned_rules]
DEFAULT = ["(?i)\\.exe$"]
`))
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := reparseShown(t, c)
	o := c.LookupOptions()
	for _, a := range []string{"lover@example.com", "u+x@example.org", "u@sub.example.com", "u@example.net"} {
		if c.LocalDomainsMaps.Bool(a, o) != c2.LocalDomainsMaps.Bool(a, o) || c.BypassVirusChecksMaps.Bool(a, o) != c2.BypassVirusChecksMaps.Bool(a, o) {
			t.Errorf("%s answers differently after showconfig", a)
		}
	}
	if len(c2.ClientIPAddrPolicy) != 1 || c2.ClientIPAddrPolicy[0].Banks != "MYNETS" || c2.BannedRules["DEFAULT"].Len() != 1 {
		t.Errorf("after showconfig: %+v %v", c2.ClientIPAddrPolicy, c2.BannedRules)
	}
}
