package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestBeforeQueueProxy: contrib/postfix/master.cf.proxy makes Postfix's smtpd a before-queue
// filter (smtpd_proxy_filter) with us behind it: the client of a clean message gets Postfix's
// queue id and the message is delivered with our header fields; EICAR with
// final_virus_destiny D_REJECT is refused in the client's own session with our 554 reply and
// never queued.
func TestBeforeQueueProxy(t *testing.T) {
	t.Parallel()
	clamd := testenv.StartClamd(t)
	extra := []string{`final_virus_destiny = "D_REJECT"`, "[[local_domains_maps]]", `acl = [".example.com"]`, "[[av_scanners]]", `name = "ClamAV-clamd"`, `type = "clamd"`,
		fmt.Sprintf("sockets = [%q]", clamd.TCPAddr), `query = "INSTREAM"`}
	var p pipeline
	for attempt := 1; ; attempt++ {
		amPort := testenv.FreePort(t)
		pf := testenv.StartPostfix(t, testenv.PostfixOptions{ProxyFilterPort: amPort})
		am := newDaemon(t, daemonConfig{Port: amPort, ForwardPort: atoi(t, portOf(pf.ForwardAddr)), MaxServers: 20, Extra: extra})
		err := am.tryStart()
		if err == nil {
			p = pipeline{pf: pf, am: am}
			break
		}
		if err != errPortTaken || attempt == 3 {
			t.Fatal(err)
		}
		pf.Stop()
	}

	qid, err := p.pf.SubmitFrom("127.0.0.2", sender, rcpt, message("<proxy-clean@e2e>", "clean", "fine\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.pf.WaitMessages(t, 1, 30*time.Second)[0]
	if v := m.HeaderValues("X-Virus-Scanned"); len(v) != 1 || v[0] != "amavis at example.com" {
		t.Errorf("X-Virus-Scanned = %q", v)
	}
	// the client's queue id is the re-injected copy's: Postfix queued nothing before us
	p.pf.WaitLog(t, regexp.MustCompile(`postfix/reinject/smtpd\[\d+\]: `+qid+`: client=`), 10*time.Second)
	p.am.waitLog(regexp.MustCompile(`Passed CLEAN \{RelayedInbound\}, \[127\.0\.0\.2\]:\d+ <sender@example\.org> -> <rcpt@example\.com>, Message-ID: <proxy-clean@e2e>, .*queued_as: `+qid), 10*time.Second)

	_, err = p.pf.SubmitFrom("127.0.0.2", sender, rcpt, message("<proxy-eicar@e2e>", "eicar", testenv.EICAR+"\n"))
	want := regexp.MustCompile(`^SMTP error 554: Reject, id=\S+ - INFECTED: ` + regexp.QuoteMeta(clamd.VirusName) + `$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Errorf("EICAR: %v, want an error matching %s", err, want)
	}
	p.pf.WaitLog(t, regexp.MustCompile(`proxy-reject: END-OF-MESSAGE: 554 5\.7\.0 Reject, id=\S+ - INFECTED: `+regexp.QuoteMeta(clamd.VirusName)+`;`), 10*time.Second)
	p.am.waitLog(regexp.MustCompile(`Blocked INFECTED \(`+regexp.QuoteMeta(clamd.VirusName)+`\) \{RejectedInbound\}`), 10*time.Second)
	if q, err := p.pf.Queue(); err != nil || len(q) != 0 {
		t.Errorf("Postfix queue = %+v, %v; want empty", q, err)
	}
	assertDeliveredOnce(t, p.pf, []string{"<proxy-clean@e2e>"})
}
