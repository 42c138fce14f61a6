package ldapdb

import (
	"slices"
	"strconv"
	"testing"

	"amavisgo/conf"
	"amavisgo/lookup"
)

func itoa(n int) string { return strconv.Itoa(n) }

// TestQueryKeys follows README.ldap's lists of keys.
func TestQueryKeys(t *testing.T) {
	o := lookup.Options{RecipientDelimiter: "+"}
	for _, c := range []struct {
		addr        string
		noAt, local bool
		want        []string
	}{
		{"User+Foo@Sub.Example.COM", false, true, []string{"User+Foo@Sub.Example.COM", "user+foo@sub.example.com",
			"user@sub.example.com", "user+foo", "user", "@sub.example.com", "@.sub.example.com", "@.example.com", "@.com", "@."}},
		{"user+foo@example.com", false, false, []string{"user+foo@example.com", "user@example.com",
			"@example.com", "@.example.com", "@.com", "@."}},
		{"user+foo@example.com", true, true, []string{"user+foo@example.com", "user@example.com",
			"user+foo@", "user@", "example.com", ".example.com", ".com", "."}},
		{"", false, false, []string{"<>", "", "@", "@."}},
		{"u@[192.0.2.1]", false, false, []string{"u@[192.0.2.1]", "@[192.0.2.1]", "@."}},
	} {
		if got := QueryKeys(c.addr, o, c.noAt, c.local); !slices.Equal(got, c.want) {
			t.Errorf("QueryKeys(%q, noAt=%v, local=%v) =\n %q\nwant\n %q", c.addr, c.noAt, c.local, got, c.want)
		}
	}
}

// TestExpandFilter: each (attr=%m) becomes an OR over the keys, escaped; other text stays.
func TestExpandFilter(t *testing.T) {
	got, attrs := expandFilter("(&(objectClass=amavisAccount)(mail=%m))", []string{"a*b@example.com", "@(x)", `\`})
	want := `(&(objectClass=amavisAccount)(|(mail=a\2ab@example.com)(mail=@\28x\29)(mail=\5c)))`
	if got != want || !slices.Equal(attrs, []string{"mail"}) {
		t.Errorf("got %s %v\nwant %s [mail]", got, attrs, want)
	}
	if got, _ := expandFilter("(|(mail=%m)(mailAlternateAddress=%m))", []string{"k"}); got != "(|(|(mail=k))(|(mailAlternateAddress=k)))" {
		t.Errorf("two items: %s", got)
	}
}

func TestExpandBase(t *testing.T) {
	for _, c := range []struct{ base, addr, want string }{
		{"ou=People,dc=%d", "u@Example.COM.", "ou=People,dc=example.com"},
		{"o=%d", "u@a,b.example", `o=a\,b.example`},
		{"o=%d", "nodomain", "o=%d"},
		{"o=x", "u@example.com", "o=x"},
	} {
		if got := expandBase(c.base, c.addr); got != c.want {
			t.Errorf("expandBase(%q, %q) = %q, want %q", c.base, c.addr, got, c.want)
		}
	}
}

// TestHostURL: README.ldap's forms of hostname.
func TestHostURL(t *testing.T) {
	for _, c := range []struct {
		host, scheme string
		port         int
		want         string
	}{
		{"localhost", "", 0, "ldap://localhost:389"},
		{"ldap.example.com:3389", "", 0, "ldap://ldap.example.com:3389"},
		{"ldaps.example.com", "", 0, "ldaps://ldaps.example.com:636"},
		{"ldap.example.com", "", 10389, "ldap://ldap.example.com:10389"},
		{"ldaps://127.0.0.1:636", "", 389, "ldaps://127.0.0.1:636"},
		{"ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi/", "", 0, "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi/"},
		{"/var/run/slapd/ldapi", "", 0, "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi"},
		{"::1", "ldaps", 0, "ldaps://[::1]:636"},
	} {
		c0 := &Client{p: conf.LDAPParams{Scheme: c.scheme, Port: c.port}}
		if got := c0.hostURL(c.host); got != c.want {
			t.Errorf("hostURL(%q, scheme %q, port %d) = %q, want %q", c.host, c.scheme, c.port, got, c.want)
		}
	}
}
