package conf

import (
	"fmt"
	"strings"
	"testing"
)

// TestDefaultLDAP: default_ldap keeps amavis's defaults for what it does not set, takes one
// hostname or a list, and refuses what amavis would not search with.
func TestDefaultLDAP(t *testing.T) {
	c, err := Parse("a.toml", []byte(`enable_ldap = true
default_ldap = { hostname = "ldap.example.com", base = "ou=People,dc=%d", timeout = 5 }
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.DefaultLDAP
	got := fmt.Sprintln(c.EnableLDAP, p.Hostname, p.Port, p.Version, p.Timeout, p.Base, p.Scope, p.QueryFilter, p.Deref, c.LookupMapsImplySQLAndLDAP)
	want := "true [ldap.example.com] 0 3 5 ou=People,dc=%d sub (&(objectClass=amavisAccount)(mail=%m)) find true\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	c, err = Parse("a.toml", []byte("[default_ldap]\nhostname = [\"ldap1\", \"ldaps://ldap2:636\"]\nbind_dn = \"cn=amavis\"\nbind_password = \"x\"\n"))
	if err != nil || fmt.Sprint(c.DefaultLDAP.Hostname) != "[ldap1 ldaps://ldap2:636]" {
		t.Errorf("a list of hostnames: %v, %v", c, err)
	}
	for _, bad := range []struct{ text, msg string }{
		{`default_ldap = { scope = "subtree" }`, `scope "subtree"`},
		{`default_ldap = { version = 2 }`, "only LDAP version 3"},
		{`default_ldap = { query_filter = "(mail=%s)" }`, "has no (attribute=%m)"},
		{`default_ldap = { hostname = [] }`, "at least one server"},
		{`default_ldap = { deref = "sometimes" }`, `deref "sometimes"`},
		{`default_ldap = { sasl = 1 }`, "sasl"},
	} {
		if _, err := Parse("a.toml", []byte(bad.text+"\n")); err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%s: err = %v, want one saying %s", bad.text, err, bad.msg)
		}
	}
}
