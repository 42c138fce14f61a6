package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slapdStartTimeout bounds the wait for slapd to answer; an empty mdb database answers within
// a fraction of a second.
const slapdStartTimeout = 30 * time.Second

// SlapdSuffix is the naming context of the directory StartSlapd makes; SlapdAdmin (password
// SlapdPassword) may read and write all of it.
const (
	SlapdSuffix   = "dc=example,dc=com"
	SlapdAdmin    = "cn=admin," + SlapdSuffix
	SlapdPassword = "secret"
)

// amavisSchemaAttrs are amavis's LDAP attribute names (README.ldap, Amavis::Lookup::LDAP) and
// their syntax: b a boolean (TRUE/FALSE), s a string, m a multivalued string.
var amavisSchemaAttrs = []struct{ name, kind string }{
	{"amavisLocal", "b"}, {"amavisVirusLover", "b"}, {"amavisSpamLover", "b"},
	{"amavisUncheckedLover", "b"}, {"amavisBannedFilesLover", "b"}, {"amavisBadHeaderLover", "b"},
	{"amavisBypassVirusChecks", "b"}, {"amavisBypassSpamChecks", "b"},
	{"amavisBypassBannedChecks", "b"}, {"amavisBypassHeaderChecks", "b"},
	{"amavisSpamTagLevel", "s"}, {"amavisSpamTag2Level", "s"}, {"amavisSpamTag3Level", "s"},
	{"amavisSpamKillLevel", "s"}, {"amavisSpamDsnCutoffLevel", "s"},
	{"amavisSpamQuarantineCutoffLevel", "s"}, {"amavisSpamModifiesSubj", "b"},
	{"amavisSpamSubjectTag", "s"}, {"amavisSpamSubjectTag2", "s"}, {"amavisSpamSubjectTag3", "s"},
	{"amavisVirusQuarantineTo", "s"}, {"amavisSpamQuarantineTo", "s"},
	{"amavisBannedQuarantineTo", "s"}, {"amavisUncheckedQuarantineTo", "s"},
	{"amavisBadHeaderQuarantineTo", "s"}, {"amavisCleanQuarantineTo", "s"},
	{"amavisArchiveQuarantineTo", "s"}, {"amavisMessageSizeLimit", "s"},
	{"amavisAddrExtensionVirus", "s"}, {"amavisAddrExtensionSpam", "s"},
	{"amavisAddrExtensionBanned", "s"}, {"amavisAddrExtensionBadHeader", "s"},
	{"amavisWarnVirusRecip", "b"}, {"amavisWarnBannedRecip", "b"}, {"amavisWarnBadHeaderRecip", "b"},
	{"amavisVirusAdmin", "s"}, {"amavisNewVirusAdmin", "s"}, {"amavisSpamAdmin", "s"},
	{"amavisBannedAdmin", "s"}, {"amavisBadHeaderAdmin", "s"}, {"amavisBannedRuleNames", "s"},
	{"amavisDisclaimerOptions", "s"}, {"amavisForwardMethod", "s"}, {"amavisSaUserConf", "s"},
	{"amavisSaUserName", "s"}, {"amavisWhitelistSender", "m"}, {"amavisBlacklistSender", "m"},
}

// amavisSchema is a slapd schema with those attributes and the auxiliary object class
// amavisAccount that may carry them, under a private OID arc of the tests.
func amavisSchema() string {
	const arc = "1.3.6.1.4.1.32473.7" // RFC 5612's documentation enterprise number
	var b strings.Builder
	names := make([]string, len(amavisSchemaAttrs))
	for i, a := range amavisSchemaAttrs {
		names[i] = a.name
		fmt.Fprintf(&b, "attributetype ( %s.1.%d NAME '%s'\n", arc, i+1, a.name)
		switch a.kind {
		case "b":
			b.WriteString("  EQUALITY booleanMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )\n")
		case "s":
			b.WriteString("  EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} SINGLE-VALUE )\n")
		default:
			b.WriteString("  EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch\n  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26{256} )\n")
		}
	}
	fmt.Fprintf(&b, "objectclass ( %s.2.1 NAME 'amavisAccount' AUXILIARY SUP top\n  MAY ( %s ) )\n",
		arc, strings.Join(names, " $ "))
	return b.String()
}

// Slapd is a private OpenLDAP server started for a test, with amavis's schema and the
// entries the test gave.
type Slapd struct {
	URL  string // ldap://127.0.0.1:port
	Addr string // 127.0.0.1:port
	Dir  string // holds slapd.conf, the schema, the database and slapd.log

	bin      string
	search   string // ldapsearch, to see that slapd answers
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce *sync.Once
}

// StartSlapd starts Debian's slapd on a free loopback port with a new mdb database under
// SlapdSuffix holding the base entry and the entries of ldif (LDIF text, entries separated
// by blank lines), and stops it when the test ends. It returns once slapd answers a search.
func StartSlapd(t testing.TB, ldif string) *Slapd {
	t.Helper()
	bin := RequireProgram(t, "slapd", "/usr/sbin/slapd")
	slapadd := RequireProgram(t, "slapadd", "/usr/sbin/slapadd")
	search := RequireProgram(t, "ldapsearch")
	dir, err := os.MkdirTemp("", "slapd")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	schema := filepath.Join(dir, "amavis-test.schema")
	if err := os.WriteFile(schema, []byte(amavisSchema()), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %s
pidfile %s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "%s"
rootdn "%s"
rootpw %s
directory %s/db
index objectClass eq
index mail eq
access to * by * read
`, schema, dir, SlapdSuffix, SlapdAdmin, SlapdPassword, dir)
	confPath := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	base := "dn: " + SlapdSuffix + "\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
	if out, err := runInput(slapadd, base+ldif, "-f", confPath); err != nil {
		t.Fatalf("testenv: slapadd: %v\n%s", err, out)
	}
	s := &Slapd{Dir: dir, bin: bin, search: search}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err == nil {
			s.Addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
			s.URL = "ldap://" + s.Addr
			err = s.start()
		}
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("testenv: starting slapd: %v\n%s", err, readTail(filepath.Join(dir, "slapd.log")))
		}
	}
	t.Cleanup(s.Stop)
	return s
}

func runInput(bin, input string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(input)
	return cmd.CombinedOutput()
}

// start runs slapd in the foreground (-d) and waits until ldapsearch finds the base entry.
func (s *Slapd) start() error {
	logf, err := os.OpenFile(filepath.Join(s.Dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	s.cmd = exec.Command(s.bin, "-f", filepath.Join(s.Dir, "slapd.conf"), "-h", s.URL+"/", "-d", "0")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	s.stopOnce = &sync.Once{}
	go func() { s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(slapdStartTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("slapd exited: %v", s.cmd.ProcessState)
		default:
		}
		out, err := exec.Command(s.search, "-x", "-LLL", "-H", s.URL, "-b", SlapdSuffix, "-s", "base", "dn").CombinedOutput()
		if err == nil && strings.Contains(string(out), SlapdSuffix) {
			return nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("slapd did not answer within %v: %s", slapdStartTimeout, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops slapd (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. It may be
// called more than once.
func (s *Slapd) Stop() {
	s.stopOnce.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// Restart starts the stopped slapd again on the same port and database.
func (s *Slapd) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("testenv: restarting slapd: %v\n%s", err, readTail(filepath.Join(s.Dir, "slapd.log")))
	}
}

// Log returns slapd's output, for failure messages.
func (s *Slapd) Log() string { return readTail(filepath.Join(s.Dir, "slapd.log")) }

// SlapdPeople is a directory for StartSlapd under ou=People, for per-recipient settings from
// LDAP: alice loves viruses, bypass skips the virus check, exe may receive executables
// (banned rules PASSALL), small has a message size limit of 70000, bob has an entry without
// amavis attributes, carol is in a local domain but the directory says she is not local, and
// dan's domain (example.net) is local only through his entry.
const SlapdPeople = `dn: ou=People,dc=example,dc=com
objectClass: organizationalUnit
ou: People

dn: uid=alice,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: alice
cn: Alice
sn: A
mail: alice@example.com
amavisVirusLover: TRUE

dn: uid=bypass,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: bypass
cn: Bypass
sn: B
mail: bypass@example.com
amavisBypassVirusChecks: TRUE

dn: uid=exe,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: exe
cn: Exe
sn: E
mail: exe@example.com
amavisBannedRuleNames: PASSALL

dn: uid=bob,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: bob
cn: Bob
sn: B
mail: bob@example.com

dn: uid=small,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: small
cn: Small
sn: S
mail: small@example.com
amavisMessageSizeLimit: 70000

dn: uid=carol,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: carol
cn: Carol
sn: C
mail: carol@example.com
amavisLocal: FALSE

dn: uid=dan,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: dan
cn: Dan
sn: D
mail: dan@example.net
`
