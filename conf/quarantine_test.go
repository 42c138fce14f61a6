package conf

import (
	"strings"
	"testing"

	"amavisgo/lookup"
)

func TestQuarantineDefaults(t *testing.T) {
	c, err := Parse("empty.toml", []byte("myhostname = \"mx.example.com\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.QUARANTINEDIR != "" || c.QuarantineSubdirLevels != 0 || c.VirusQuarantineMethod != "local:virus-%m" ||
		c.SpamQuarantineMethod != "local:spam-%m.gz" || c.BadHeaderQuarantineMethod != "local:badh-%m" ||
		c.BannedFilesQuarantineMethod != "local:banned-%m" || c.UncheckedQuarantineMethod != "" ||
		c.VirusQuarantineTo.Lookup("x@example.com", c.LookupOptions()) != "virus-quarantine" || !c.AuthRequiredRelease ||
		c.Release() != c.Notify() || c.Requeue().String() != "smtp:[127.0.0.1]:25" || c.VirusAdmin.Lookup("user@example.com", lookup.Options{}) != "" {
		t.Errorf("quarantine defaults differ from amavis's (Amavis::Conf): %+v", c.QuarantinePolicy)
	}
	n := c.NotifyAddrs(&c.Policy)
	if n.HdrfromSender != `"Content-filter at mx.example.com" <postmaster@mx.example.com>` ||
		n.MailfromAdmin != "postmaster@mx.example.com" || n.HdrfromAdmin != n.HdrfromSender {
		t.Errorf("notify addresses: %+v", n)
	}
	if !c.VirusesThatFakeSenderMaps.Fakes([]string{"Eicar-Test-Signature"}) {
		t.Error("by default every virus fakes its sender")
	}
}

func TestQuarantineSettings(t *testing.T) {
	text := `
QUARANTINEDIR = "/var/lib/amavis/virusmails"
recipient_delimiter = "+"
quarantine_subdir_levels = 1
mailfrom_notify_admin = "virusalert@example.com"
viruses_that_fake_sender_maps = [['(?i)\bEICAR\b', false], ['.', true]]
[virus_admin]
"example.com" = "postmaster@example.com"
".sub.example.net" = "admin@example.net"
"boss@" = "boss-admin@example.com"
"Tom@Example.org" = "admin-of-$3@example.org"
[policy_bank.AM_PDP]
protocol = "AM.PDP"
auth_required_release = false
`
	c, err := Parse("q.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.QUARANTINEDIR != "/var/lib/amavis/virusmails" || c.QuarantineSubdirLevels != 1 {
		t.Errorf("global: %+v", c.QuarantineGlobal)
	}
	for addr, want := range map[string]string{
		"a@example.com": "postmaster@example.com", "A@a.sub.example.net": "admin@example.net",
		"boss@elsewhere.org": "boss-admin@example.com", "x@other.org": "", "a@sub.example.com": "", "tom+ext@example.org": "admin-of-tom@example.org",
	} {
		if got := c.VirusAdmin.Lookup(addr, c.LookupOptions()); got != want {
			t.Errorf("virus_admin(%s) = %q, want %q", addr, got, want)
		}
	}
	n := c.NotifyAddrs(&c.Policy)
	if n.MailfromAdmin != "virusalert@example.com" || !strings.HasSuffix(n.HdrfromAdmin, " <virusalert@example.com>") {
		t.Errorf("admin originator: %+v", n)
	}
	fs := c.VirusesThatFakeSenderMaps
	if fs.Fakes([]string{"Eicar-Test-Signature"}) || !fs.Fakes([]string{"Win.Worm.X"}) || fs.Fakes(nil) {
		t.Error("viruses_that_fake_sender_maps: EICAR must not fake, others must")
	}
	b, err := c.Bank(&c.Policy, "AM_PDP")
	if err != nil || b.AuthRequiredRelease || !c.AuthRequiredRelease {
		t.Errorf("bank override of auth_required_release: %v %v", b.AuthRequiredRelease, err)
	}
}

func TestQuarantineErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"subdir levels", "\nquarantine_subdir_levels = 2\n", `a.toml:2: key "quarantine_subdir_levels": quarantine_subdir_levels must be 0 or 1`},
		{"method", "virus_quarantine_method = \"local:../x-%m\"\n", `a.toml:1: key "virus_quarantine_method": method "local:../x-%m"`},
		{"release method", "release_method = \"smtp:[::1]\"\n", `a.toml:1: key "release_method": method`},
		{"release format", "release_format = \"attach\"\n", `a.toml:1: key "release_format": "attach" is not supported`},
		{"admin type", "virus_admin = 3\n", `a.toml:1: key "virus_admin": want an address`},
		{"fake rule", "viruses_that_fake_sender_maps = [['(', true]]\n", `a.toml:1: key "viruses_that_fake_sender_maps": pattern "("`},
		{"bank", "[policy_bank.X]\nspam_quarantine_method = \"bogus:x\"\n", `a.toml:2: key "policy_bank.X.spam_quarantine_method": method`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("a.toml", []byte(tc.text))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// showconfig writes the quarantine settings in a form the loader takes back.
func TestQuarantineShowRoundTrip(t *testing.T) {
	c, err := Parse("a.toml", []byte(`viruses_that_fake_sender_maps = [['(?i)\bEICAR\b', false], ["it's", true]]
virus_admin = "a'b@example.com"
[spam_admin]
"example.com" = "spam\"master@example.com"
`))
	if err != nil {
		t.Fatal(err)
	}
	c2, shown := reparseShown(t, c)
	o := c.LookupOptions()
	if c2.VirusAdmin.Lookup("x@y", o) != "a'b@example.com" || c2.SpamAdmin.Lookup("u@example.com", o) != `spam"master@example.com` ||
		!c2.VirusesThatFakeSenderMaps.Fakes([]string{"it's a worm"}) || c2.VirusesThatFakeSenderMaps.Fakes([]string{"Other"}) ||
		c2.VirusesThatFakeSenderMaps.Fakes([]string{"Eicar-Test-Signature"}) {
		t.Errorf("after showconfig:\n%s", shown)
	}
}

// viruses_that_fake_sender_maps is written like every other *_maps: tables asked in order with
// the virus name, the first that knows it answers.
func TestFakeSenderMapsTables(t *testing.T) {
	c, err := Parse("a.toml", []byte(`
[[viruses_that_fake_sender_maps]]
hash = { "eicar-test-signature@" = false }
[[viruses_that_fake_sender_maps]]
regexp = [['(?i)^Win\.Worm\.', true], ['(?i)phish', false]]
[[viruses_that_fake_sender_maps]]
constant = true
`))
	if err != nil {
		t.Fatal(err)
	}
	fs := c.VirusesThatFakeSenderMaps
	for name, want := range map[string]bool{"Eicar-Test-Signature": false, "Win.Worm.Mydoom": true, "Email.Phishing.X": false, "Other.Trojan": true} {
		if got := fs.Fakes([]string{name}); got != want {
			t.Errorf("%s: fakes %v, want %v", name, got, want)
		}
	}
	c2, shown := reparseShown(t, c)
	if c2.VirusesThatFakeSenderMaps.Fakes([]string{"Email.Phishing.X"}) || !c2.VirusesThatFakeSenderMaps.Fakes([]string{"Win.Worm.Mydoom"}) {
		t.Errorf("after showconfig:\n%s", shown)
	}
	if _, err := Parse("a.toml", []byte("viruses_that_fake_sender_maps = [false]\n")); err != nil {
		t.Errorf("a constant: %v", err)
	}
}

// A setting given per-user tables by both LDAP and SQL asks SQL's, then LDAP's, then its own
// value: each table answers for the recipients it has (amavis's *_maps order).
func TestAddrMapPrependKeepsEveryTable(t *testing.T) {
	ldap := lookup.HashTable{"alice@example.com": "ldap-alice@example.net", "bob@example.com": "ldap-bob@example.net"}
	sql := lookup.HashTable{"alice@example.com": "sql-alice@example.net"}
	m := ConstAddr("virusalert@example.net").Prepend(ldap).Prepend(sql)
	for addr, want := range map[string]string{
		"alice@example.com": "sql-alice@example.net",
		"bob@example.com":   "ldap-bob@example.net",
		"carol@example.com": "virusalert@example.net",
	} {
		if got := m.Lookup(addr, lookup.Options{}); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}
