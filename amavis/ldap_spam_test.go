package amavis

import (
	"fmt"
	"strings"
	"testing"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// Spam levels from the directory: through the daemon with the real slapd and rspamd, GTUBE to
// two recipients of one message: the one whose entry raises amavisSpamTag2Level and
// amavisSpamKillLevel gets it with X-Spam-Flag: NO, the other, with the defaults, has it
// discarded as spam.
func TestLDAPSpamLevels(t *testing.T) {
	rs := testenv.StartRspamd(t)
	s := testenv.StartSlapd(t, `dn: ou=People,dc=example,dc=com
objectClass: organizationalUnit
ou: People

dn: uid=tolerant,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: tolerant
cn: Tolerant
sn: T
mail: tolerant@example.com
amavisSpamTag2Level: 999
amavisSpamKillLevel: 999

dn: uid=bob,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: bob
cn: Bob
sn: B
mail: bob@example.com
`)
	h := hop(t, smtptest.Options{KeepData: 1 << 16})
	td := startDaemon(t, h.Addr, fmt.Sprintf(`enable_ldap = true
default_ldap = { hostname = [%q], timeout = 5, base = %q }
sa_tag_level_deflt = 2.0
sa_tag2_level_deflt = 6.31
sa_kill_level_deflt = 6.31
final_spam_destiny = "D_DISCARD"
%s`, s.Addr, "ou=People,"+testenv.SlapdSuffix, rspamdScanner(rs.Addr)))
	gtube := gtubeMessage("ldapspam@sender.example.org")
	got := sendMessage(t, td, true, "spammer@sender.example.org", []string{"tolerant@example.com", "bob@example.com"}, gtube)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") || !strings.HasPrefix(got[1], "250 2.7.0 Ok, discarded, id=PID-NN - spam") {
		t.Errorf("replies %q", got)
	}
	if copies := spamFlags(h); copies != "[[tolerant@example.com] NO]" {
		t.Errorf("delivered copies (recipients, X-Spam-Flag): %v", copies)
	}
}
