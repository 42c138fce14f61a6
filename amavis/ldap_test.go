package amavis

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/internal/testenv"
	"amavisgo/ldapdb"
	"amavisgo/lookup"
	"amavisgo/smtp/smtptest"
)

// ldapConfig is the daemon's configuration for slapd s (nil: enable_ldap off), with clamd
// and two banned rule sets: Debian's DEFAULT and PASSALL, which bans nothing.
func ldapConfig(t *testing.T, s *testenv.Slapd, clamd *testenv.Clamd) string {
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := "log_level = 2\n"
	if s != nil {
		cfg += fmt.Sprintf("enable_ldap = true\ndefault_ldap = { hostname = [%q], timeout = 5, base = %q }\n",
			s.Addr, "ou=People,"+testenv.SlapdSuffix)
	}
	return cfg + string(rules) + "PASSALL = [[\"qr'^'\", false]]\n" +
		fmt.Sprintf("[[av_scanners]]\nname = \"clamd\"\ntype = \"clamd\"\nsockets = [%q]\n", clamd.Socket)
}

// TestLDAPPolicyPerRecipient: through the daemon, with the real clamd and slapd, each user's
// attribute changes their own outcome while bob, another recipient of the same message,
// keeps the defaults; the same messages without enable_ldap get the defaults for everyone.
// amavisLocal and an entry's mere presence decide locality, as the log lines' Inbound and
// OpenRelay show.
func TestLDAPPolicyPerRecipient(t *testing.T) {
	clamd := testenv.StartClamd(t)
	s := testenv.StartSlapd(t, testenv.SlapdPeople)
	eicar := eicarMessages(t)["plain"]
	exe := mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
		"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		wrap76(base64.StdEncoding.EncodeToString(pe))+"--b1--\r\n")
	const (
		passed    = "250 2.0.0 from MTA("
		infected  = "250 2.7.0 Ok, discarded, id=PID-NN - INFECTED"
		banned    = "250 2.7.0 Ok, discarded, id=PID-NN - BANNED"
		sender    = "sender@sender.example.org"
		inbound   = "{RelayedInbound}"
		openRelay = "{RelayedOpenRelay}"
	)
	type sent struct {
		name   string
		rcpts  []string
		msg    string
		ldap   []string // replies with the directory
		noLDAP []string // replies without
		action string   // the log line's actions, with the directory
	}
	cases := []sent{
		{"virus lover", []string{"alice@example.com", "bob@example.com"}, eicar,
			[]string{passed, infected}, []string{infected, infected}, ""},
		{"bypass virus checks", []string{"bob@example.com", "bypass@example.com"}, eicar,
			[]string{infected, passed}, []string{infected, infected}, ""},
		{"banned rule names", []string{"exe@example.com", "bob@example.com"}, exe,
			[]string{passed, banned}, []string{banned, banned}, ""},
		{"not local", []string{"carol@example.com"}, smallBody, []string{passed}, []string{passed}, openRelay},
		{"local by entry", []string{"dan@example.net"}, smallBody, []string{passed}, []string{passed}, inbound},
	}
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, ldapConfig(t, s, clamd))
	hNo := hop(t, smtptest.Options{})
	tdNo := startDaemon(t, hNo.Addr, ldapConfig(t, nil, clamd))
	mainLine := regexp.MustCompile(`\) (?:Passed|Blocked) [A-Z]+ (?:\(.*\) )?(\{[A-Za-z,]+\}), `)
	for _, c := range cases {
		for _, run := range []struct {
			td    *testDaemon
			want  []string
			label string
		}{{td, c.ldap, "with LDAP"}, {tdNo, c.noLDAP, "without LDAP"}} {
			before := len(mainLine.FindAllString(run.td.log.String(), -1))
			got := sendMessage(t, run.td, true, sender, c.rcpts, c.msg)
			for i := range got {
				if !strings.HasPrefix(got[i], run.want[i]) {
					t.Errorf("%s, %s: %s got %q, want %q...", c.name, run.label, c.rcpts[i], got[i], run.want[i])
				}
			}
			if c.action == "" || run.td != td {
				continue
			}
			lines := mainLine.FindAllStringSubmatch(run.td.log.String(), -1)
			if len(lines) != before+1 || lines[before][1] != c.action {
				t.Errorf("%s: main log line %q, want the actions %s", c.name, lines[len(lines)-1][0], c.action)
			}
		}
	}
	// without the directory, carol is local and dan is not
	for _, c := range []struct{ rcpt, action string }{{"carol@example.com", inbound}, {"dan@example.net", openRelay}} {
		sendMessage(t, tdNo, true, sender, []string{c.rcpt}, smallBody)
		lines := mainLine.FindAllStringSubmatch(tdNo.log.String(), -1)
		if last := lines[len(lines)-1]; last[1] != c.action {
			t.Errorf("without LDAP, %s: %q, want %s", c.rcpt, last[0], c.action)
		}
	}
	// what the next hop got: exactly the recipients whose reply says delivered
	var got []string
	for _, m := range h.Msgs() {
		got = append(got, fmt.Sprint(m.Rcpts))
	}
	want := "[[alice@example.com] [bypass@example.com] [exe@example.com] [carol@example.com] [dan@example.net]]"
	if fmt.Sprint(got) != want {
		t.Errorf("delivered %v, want %s", got, want)
	}
}

// TestLDAPServerDown: with slapd stopped the RCPT gets amavis's 421 and the session ends, as
// when amavis's child dies in the lookup there; nothing is delivered. Once slapd is back the
// message is delivered once. A directory that goes away between RCPT and DATA no longer
// matters for that message: its entries were fetched at RCPT.
func TestLDAPServerDown(t *testing.T) {
	clamd := testenv.StartClamd(t)
	s := testenv.StartSlapd(t, testenv.SlapdPeople)
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, ldapConfig(t, s, clamd))
	const from = "sender@sender.example.org"
	rcpts := []string{"alice@example.com", "bob@example.com"}
	if got := sendMessage(t, td, false, from, rcpts, smallBody); !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
		t.Fatalf("slapd up: %q", got)
	}
	s.Stop()
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "EHLO mta.example.com")
	for l := expectPrefix(t, r, "250"); !strings.HasPrefix(l, "250 "); l = expectPrefix(t, r, "250") {
	}
	send(t, c, "MAIL FROM:<"+from+">")
	expectPrefix(t, r, "250 2.1.0")
	send(t, c, "RCPT TO:<alice@example.com>")
	if l := expectPrefix(t, r, "421 "); l != "421 4.3.2 Service shutting down, closing channel" {
		t.Errorf("RCPT with slapd stopped: %q", l)
	}
	if l, err := r.ReadString('\n'); err == nil {
		t.Errorf("the session goes on after the 421: %q", l)
	}
	c.Close()
	if n := len(h.Msgs()); n != 1 {
		t.Errorf("slapd stopped: the next hop has %d messages, want only the first", n)
	}
	log := td.log.String()
	for _, want := range []string{
		`NOTICE: do_search: trying again: LDAP_OPERATIONS_ERROR$`,
		`\(!\)connect_to_ldap: unable to connect to host ` + regexp.QuoteMeta(s.Addr) + `$`,
		`\(!\)lookup_ldap: connect_to_ldap: unable to connect$`,
		`lookup_ldap: connect_to_ldap: unable to connect: host ` + regexp.QuoteMeta(s.Addr) + `: .*connection refused$`,
		`\(!!\)TROUBLE in process_request: connect_to_ldap: unable to connect$`,
		`\(!\)Requesting process rundown after fatal error$`,
	} {
		if !regexp.MustCompile(`(?m)` + want).MatchString(log) {
			t.Errorf("the log has no line matching %s:\n%s", want, log)
		}
	}
	s.Restart(t)
	if got := sendMessage(t, td, false, from, rcpts, smallBody); !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
		t.Fatalf("slapd back: %q", got)
	}
	if n := len(h.Msgs()); n != 2 {
		t.Errorf("slapd back: the next hop has %d messages, want 2", n)
	}

	// entries fetched at RCPT serve the message even when slapd stops before DATA
	c, r = dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "EHLO mta.example.com")
	for l := expectPrefix(t, r, "250"); !strings.HasPrefix(l, "250 "); l = expectPrefix(t, r, "250") {
	}
	send(t, c, "MAIL FROM:<"+from+">", "RCPT TO:<alice@example.com>")
	expectPrefix(t, r, "250 2.1.0")
	expectPrefix(t, r, "250 2.1.5")
	s.Stop()
	send(t, c, "DATA")
	expectPrefix(t, r, "354 ")
	send(t, c, eicarMessages(t)["plain"]+".")
	if l := expectPrefix(t, r, "250 "); !strings.HasPrefix(l, "250 2.0.0 from MTA(") {
		t.Errorf("EICAR to alice, slapd stopped after RCPT: %q, want delivered (she is a virus lover)", l)
	}
	c.Close()
}

// TestLDAPAttrsWired: an entry with every amavis attribute, fetched from slapd: each
// attribute whose setting this configuration has answers through that setting for the
// entry's address, so none is forgotten when its setting arrives (the spam levels, for
// instance); the attributes whose setting is missing or takes no table are listed in the log.
func TestLDAPAttrsWired(t *testing.T) {
	entry := "dn: uid=all,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: amavisAccount\nuid: all\ncn: All\nsn: A\nmail: all@example.com\n"
	want := map[string]string{}
	for i, a := range ldapdb.Attrs {
		v := fmt.Sprintf("v%d@example.com", i)
		switch a.Kind {
		case lookup.FieldBool, lookup.FieldBoolDefaultTrue:
			v = "TRUE"
			want[a.Setting] = "1"
		case lookup.FieldNumber:
			v = fmt.Sprint(1000 + i)
			want[a.Setting] = v
		default:
			want[a.Setting] = v
		}
		entry += a.Name + ": " + v + "\n"
	}
	s := testenv.StartSlapd(t, "dn: ou=People,dc=example,dc=com\nobjectClass: organizationalUnit\nou: People\n\n"+entry)
	cfg := conf.Default()
	cfg.DefaultLDAP.Hostname = conf.HostList{s.Addr}
	cfg.DefaultLDAP.Base = testenv.SlapdSuffix
	c := ldapdb.New(&cfg.LDAPGlobal)
	defer c.Close()
	p := cfg.Policy
	o := p.LookupOptions()
	f, err := lookup.Prefetch(context.Background(), c.ForMessage(o, func(string) bool { return true }, func(_ int, f string, a ...any) { t.Logf(f, a...) }), []string{"all@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Record("all@example.com")) != 1 {
		t.Fatalf("the entry was not found: %v", f.Record("all@example.com"))
	}
	keys := map[string]bool{}
	for _, k := range conf.Keys() {
		keys[k.Key] = true
	}
	var waiting []string
	for _, a := range ldapdb.Attrs {
		if a.List {
			continue
		}
		if !prependSetting(&p, a.Setting, f.Field(a.Field(), a.Kind)) {
			if fv := fieldByTOMLKey(reflect.ValueOf(&p).Elem(), a.Setting); fv.IsValid() && fv.Type() == reflect.TypeOf(lookup.Maps{}) {
				t.Errorf("%s: %s is a lookup.Maps but was not overridden", a.Name, a.Setting)
			}
			waiting = append(waiting, a.Name+" ("+a.Setting+")")
			continue
		}
		fv := fieldByTOMLKey(reflect.ValueOf(&p).Elem(), a.Setting)
		res := fv.MethodByName("Lookup").Call([]reflect.Value{reflect.ValueOf("all@example.com"), reflect.ValueOf(o)})
		var got string
		if m, ok := fv.Interface().(lookup.Maps); ok {
			v, _, _ := m.Lookup("all@example.com", o)
			got = lookup.String(v)
		} else {
			got = fmt.Sprint(res[0].Interface())
		}
		if got != want[a.Setting] {
			t.Errorf("%s: %s answers %q, want %q", a.Name, a.Setting, got, want[a.Setting])
		}
		if !keys[a.Setting] {
			t.Errorf("%s: %s overridden but not a configuration key", a.Name, a.Setting)
		}
	}
	t.Logf("attributes waiting for their setting: %s", strings.Join(waiting, ", "))
}
