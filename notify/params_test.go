package notify

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/smtp/smtptest"
)

// Notices and DSNs go out with the parameters amavis gives mail it originates
// (Amavis::Out::SMTP): an ENVID of its own on each, BODY=7BIT and ORCPT on the DSN, none on
// the notice's recipient; and amavis's dates, the day padded with a space.
func TestNotificationParameters(t *testing.T) {
	hop := smtptest.Start(t, smtptest.Options{DSN: true})
	c, err := conf.Parse("n.toml", []byte("myhostname = \"mx.example.com\"\nnotify_method = \"smtp:[127.0.0.1]:"+hop.Port()+"\"\n"+
		"virus_admin = \"virusalert@example.com\"\nviruses_that_fake_sender_maps = [['(?i)\\bEICAR\\b', false], ['.', true]]\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := New(c, &amavissmtp.Sender{LocalhostName: "localhost"})
	n.Now = func() time.Time { return time.Date(2026, 12, 4, 9, 44, 19, 0, time.UTC) }
	m := eicar(&c.Policy, conf.D_BOUNCE)
	m.Received = time.Date(2026, 12, 4, 9, 44, 18, 0, time.UTC)
	plan := PlanDSN(m, false)
	if _, err := n.Admins(context.Background(), &c.Policy, m, plan); err != nil {
		t.Fatal(err)
	}
	if _, err := n.DSN(context.Background(), &c.Policy, m, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Join(hop.Lines(), "\n")
	for _, re := range []string{
		`(?m)^MAIL FROM:<postmaster@mx\.example\.com> ENVID=AM\.[A-Za-z0-9_-]{12}\.20261204T094419Z@mx\.example\.com$`,
		`(?m)^RCPT TO:<virusalert@example\.com>$`,
		`(?m)^MAIL FROM:<> BODY=7BIT ENVID=AM\.[A-Za-z0-9_-]{12}\.20261204T094419Z@mx\.example\.com$`,
		`(?m)^RCPT TO:<bob@sender\.example\.org> ORCPT=rfc822;bob@sender\.example\.org$`,
		`(?m)^Date: Fri,  4 Dec 2026 09:44:18 \+0000 \(UTC\)$`,
		`(?m)^Arrival-Date: Fri,  4 Dec 2026 09:44:18 \+0000 \(UTC\)$`,
		`(?m)^Last-Attempt-Date: Fri,  4 Dec 2026 09:44:18 \+0000 \(UTC\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(lines) {
			t.Errorf("the next hop saw no line matching %s:\n%s", re, lines)
		}
	}
	envids := regexp.MustCompile(`ENVID=(\S+)`).FindAllStringSubmatch(lines, -1)
	if len(envids) != 2 || envids[0][1] == envids[1][1] {
		t.Errorf("ENVIDs %q: want one per message, each its own", envids)
	}
}
