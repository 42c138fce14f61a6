package ldapdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/internal/testenv"
	"amavisgo/lookup"
)

// directory is the test directory: a user with their own settings, a user of the same domain
// without amavis attributes, a domain entry, an address the directory says is not local, and
// the catch-all.
const directory = `dn: ou=People,dc=example,dc=com
objectClass: organizationalUnit
ou: People

dn: uid=alice,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: alice
cn: Alice
sn: A
mail: alice@example.com
amavisBypassVirusChecks: TRUE
amavisVirusLover: FALSE
amavisSpamTagLevel: 3.5
amavisBannedRuleNames: ALLOW_EXE
amavisVirusQuarantineTo: virus-alice@example.com
amavisWhitelistSender: friend@example.net
amavisWhitelistSender: @.example.org

dn: uid=bob,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: bob
cn: Bob
sn: B
mail: bob@example.com

dn: cn=domain,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: domain
sn: D
mail: @example.com
amavisVirusLover: TRUE
amavisBannedRuleNames: DEFAULT

dn: cn=outsider,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: outsider
sn: O
mail: carol@elsewhere.example
amavisLocal: FALSE

dn: cn=catchall,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: catchall
sn: C
mail: @.
amavisSpamTagLevel: 9
`

func testParams(s *testenv.Slapd) *conf.LDAPGlobal {
	g := &conf.Default().LDAPGlobal
	g.DefaultLDAP.Hostname = conf.HostList{s.Addr}
	g.DefaultLDAP.Base = "ou=People," + testenv.SlapdSuffix
	g.DefaultLDAP.Timeout = 10
	return g
}

func localExample(a string) bool { return strings.HasSuffix(a, "@example.com") }

// logRecorder keeps the lines of the level-0 and more important log ("(!)" is -1).
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(level int, format string, args ...any) {
	if level > 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf("%d %s", level, fmt.Sprintf(format, args...)))
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// TestFetchEntries searches the real slapd: a user's entry comes before their domain's and
// the catch-all, its booleans read as amavis reads TRUE/FALSE, and the tables built on the
// record answer for each setting as amavis's LDAPattr lookups would.
func TestFetchEntries(t *testing.T) {
	s := testenv.StartSlapd(t, directory)
	c := New(testParams(s))
	defer c.Close()
	o := lookup.Options{RecipientDelimiter: "+"}
	addrs := []string{"Alice+tag@Example.COM", "bob@example.com", "carol@elsewhere.example", "dave@nowhere.example"}
	f, err := lookup.Prefetch(context.Background(), c.ForMessage(o, localExample, (&logRecorder{}).logf), addrs)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	rec := f.Record("Alice+tag@Example.COM")
	if len(rec) != 3 {
		t.Fatalf("alice: %d entries, want hers, the domain's and the catch-all: %v", len(rec), rec)
	}
	if got := rec[2]["amavisspamtaglevel"]; got != "9" {
		t.Errorf("the catch-all is not last: %v", rec)
	}
	if got := rec[0]["amaviswhitelistsender"]; !slices.Equal(got.([]string), []string{"friend@example.net", "@.example.org"}) {
		t.Errorf("whitelist = %v", got)
	}
	bypass := lookup.NewMaps(lookup.Const(false)).Prepend(f.Field("amavisbypassviruschecks", lookup.FieldBool))
	lover := lookup.NewMaps(lookup.Const(false)).Prepend(f.Field("amavisviruslover", lookup.FieldBool))
	level := lookup.NewMaps(lookup.Const(int64(2))).Prepend(f.Field("amavisspamtaglevel", lookup.FieldNumber))
	rules := lookup.NewMaps(lookup.Const("NONE")).Prepend(f.Field("amavisbannedrulenames", lookup.FieldString))
	local := lookup.NewMaps(lookup.Const(false)).Prepend(f.Field("amavislocal", lookup.FieldBoolDefaultTrue))
	for _, c := range []struct {
		m    lookup.Maps
		addr string
		want lookup.Value
	}{
		{bypass, "Alice+tag@Example.COM", true},
		{bypass, "bob@example.com", false}, // no such attribute anywhere: the configured table
		{lover, "Alice+tag@Example.COM", false},
		{lover, "bob@example.com", true}, // from the domain's entry
		{level, "Alice+tag@Example.COM", 3.5},
		{level, "bob@example.com", 9.0}, // the catch-all
		{level, "dave@nowhere.example", 9.0},
		{rules, "Alice+tag@Example.COM", "ALLOW_EXE"},
		{rules, "bob@example.com", "DEFAULT"},
		{local, "bob@example.com", true},          // found in the directory: local
		{local, "carol@elsewhere.example", false}, // amavisLocal: FALSE
		{local, "dave@nowhere.example", false},    // only the catch-all: the configured table
	} {
		if v, _, _ := c.m.Lookup(c.addr, o); v != c.want {
			t.Errorf("%s: got %#v, want %#v", c.addr, v, c.want)
		}
	}
}

// TestFetchServerDown: a directory that does not answer is an error (the message's 451); once
// it is back, the connection that was kept is replaced and the search succeeds.
func TestFetchServerDown(t *testing.T) {
	s := testenv.StartSlapd(t, directory)
	c := New(testParams(s))
	defer c.Close()
	logs := &logRecorder{}
	fe := c.ForMessage(lookup.Options{}, localExample, logs.logf)
	if rec, err := fe.Fetch(context.Background(), "bob@example.com"); err != nil || len(rec) == 0 {
		t.Fatalf("before the stop: %v, %v", rec, err)
	}
	s.Stop()
	_, err := fe.Fetch(context.Background(), "bob@example.com")
	var le *Error
	if !errors.As(err, &le) || le.Error() != "connect_to_ldap: unable to connect" || !strings.Contains(le.Detail(), "host "+s.Addr+": ") {
		t.Fatalf("slapd stopped: err = %v, want unable to connect", err)
	}
	// amavis's lines: the kept connection failed, the new one could not be made
	want := "0 NOTICE: do_search: trying again: LDAP_OPERATIONS_ERROR\n-1 connect_to_ldap: unable to connect to host " + s.Addr
	if logs.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", logs, want)
	}
	s.Restart(t)
	if rec, err := fe.Fetch(context.Background(), "bob@example.com"); err != nil || len(rec) == 0 {
		t.Fatalf("slapd back: %v, %v", rec, err)
	}
}

// idleCount is the number of kept connections.
func (c *Client) idleCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}

// TestIdleConnectionsExpire: the connections kept after a search are closed once the client
// has not been used for its idle time, and a later search connects again.
func TestIdleConnectionsExpire(t *testing.T) {
	s := testenv.StartSlapd(t, directory)
	c := New(testParams(s))
	c.idleFor = 100 * time.Millisecond
	fe := c.ForMessage(lookup.Options{}, localExample, (&logRecorder{}).logf)
	if _, err := fe.Fetch(context.Background(), "bob@example.com"); err != nil || c.idleCount() != 1 {
		t.Fatalf("after a search: %v, %d kept", err, c.idleCount())
	}
	for deadline := time.Now().Add(10 * time.Second); c.idleCount() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still kept", c.idleCount())
		}
	}
	if rec, err := fe.Fetch(context.Background(), "bob@example.com"); err != nil || len(rec) == 0 {
		t.Fatalf("after the expiry: %v, %v", rec, err)
	}
}

// TestFailOver: the hostnames are tried in order; one that does not answer is skipped.
func TestFailOver(t *testing.T) {
	s := testenv.StartSlapd(t, directory)
	g := testParams(s)
	g.DefaultLDAP.Hostname = conf.HostList{"127.0.0.1:" + itoa(testenv.FreePort(t)), s.URL}
	c := New(g)
	defer c.Close()
	rec, err := c.ForMessage(lookup.Options{}, localExample, (&logRecorder{}).logf).Fetch(context.Background(), "bob@example.com")
	if err != nil || len(rec) != 3 {
		t.Fatalf("got %v, %v; want bob's, the domain's and the catch-all entries from the second host", rec, err)
	}
}

// TestBindAndDomainBase: a bind as the configured DN, and a base made from the recipient's
// domain (%d); a domain with no such subtree finds nothing and is no error.
func TestBindAndDomainBase(t *testing.T) {
	s := testenv.StartSlapd(t, directory+`
dn: dc=example.net,dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example.net
o: net

dn: cn=erin,dc=example.net,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
cn: erin
sn: E
mail: erin@example.net
amavisVirusLover: TRUE
`)
	g := testParams(s)
	g.DefaultLDAP.Base = "dc=%d," + testenv.SlapdSuffix
	g.DefaultLDAP.BindDN, g.DefaultLDAP.BindPassword = testenv.SlapdAdmin, testenv.SlapdPassword
	c := New(g)
	defer c.Close()
	logs := &logRecorder{}
	fe := c.ForMessage(lookup.Options{}, localExample, logs.logf)
	rec, err := fe.Fetch(context.Background(), "erin@example.net")
	if err != nil || len(rec) != 1 || rec[0]["amavisviruslover"] != "Y" {
		t.Fatalf("erin: %v, %v", rec, err)
	}
	if rec, err := fe.Fetch(context.Background(), "x@unknown.example"); err != nil || rec != nil {
		t.Fatalf("a domain without a subtree: %v, %v; want no entry and no error", rec, err)
	}
	g.DefaultLDAP.BindPassword = "wrong"
	bad := New(g)
	defer bad.Close()
	if _, err := bad.ForMessage(lookup.Options{}, localExample, logs.logf).Fetch(context.Background(), "erin@example.net"); err == nil || err.Error() != "connect_to_ldap: bind failed" {
		t.Fatalf("wrong password: err = %v, want bind failed", err)
	}
	if logs.String() != "-1 connect_to_ldap: bind failed: LDAP_INVALID_CREDENTIALS" {
		t.Errorf("log: %s", logs)
	}
}

// BenchmarkFetch: one recipient's search on a kept connection to slapd, ranked into a record
// (alice's entry, her domain's and the catch-all).
func BenchmarkFetch(b *testing.B) {
	s := testenv.StartSlapd(b, directory)
	c := New(testParams(s))
	defer c.Close()
	fe := c.ForMessage(lookup.Options{RecipientDelimiter: "+"}, localExample, (&logRecorder{}).logf)
	b.ReportAllocs()
	for b.Loop() {
		if rec, err := fe.Fetch(context.Background(), "alice+tag@example.com"); err != nil || len(rec) != 3 {
			b.Fatalf("%v, %v", rec, err)
		}
	}
}
