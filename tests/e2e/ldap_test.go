package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestLDAPDirectoryDown: Postfix, our daemon with LDAP lookups, and Debian's slapd. With
// slapd stopped we answer the RCPT with amavis's 421 (its child dies in the lookup), so the
// message waits in Postfix's deferred queue and nothing is delivered; once slapd is back a
// flush delivers it, once.
func TestLDAPDirectoryDown(t *testing.T) {
	t.Parallel()
	s := testenv.StartSlapd(t, `dn: uid=rcpt,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: amavisAccount
uid: rcpt
cn: Rcpt
sn: R
mail: rcpt@example.com
amavisVirusLover: TRUE
`)
	p := startPipeline(t, "lmtp", 2, nil, "enable_ldap = true",
		fmt.Sprintf("default_ldap = { hostname = [%q], base = %q, timeout = 5 }", s.URL, testenv.SlapdSuffix))
	s.Stop()
	qid, err := p.pf.Submit(sender, rcpt, message("<ldapdown@e2e>", "ldap down", "wait for the directory\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.pf.WaitQueued(t, qid, "deferred", 30*time.Second)
	reason := regexp.MustCompile(`said: 421 4\.3\.2 Service shutting down, closing channel \(in reply to RCPT TO command\)$`)
	if len(m.Recipients) != 1 || !reason.MatchString(m.Recipients[0].DelayReason) {
		t.Errorf("deferred %+v, want a delay reason matching %s", m, reason)
	}
	if msgs, err := p.pf.Messages(); err != nil || len(msgs) != 0 {
		t.Fatalf("mailbox while the directory is down: %d messages, %v", len(msgs), err)
	}
	s.Restart(t)
	flushUntil(t, p.pf, 1, 60*time.Second)
	p.am.waitLog(regexp.MustCompile(`Passed CLEAN \{RelayedInbound\}, .*<rcpt@example\.com>.*Queue-ID: `+qid), 10*time.Second)
	assertDeliveredOnce(t, p.pf, []string{"<ldapdown@e2e>"})
}
