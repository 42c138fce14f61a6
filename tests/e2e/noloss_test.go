package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"amavisgo/smtp/smtptest"
)

// TestKilledWhileForwarding: the moment that decides whether mail can be lost. We hold the
// whole message and the next hop has it too, but has not answered the final dot; we are
// killed. Postfix got no reply from us, so it keeps the message; restarted (now with the real
// re-injection smtpd as the next hop), we deliver it exactly once. A daemon that answered
// Postfix before the next hop took the message would lose it here.
func TestKilledWhileForwarding(t *testing.T) {
	for _, transport := range []string{"lmtp", "smtp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			hold := make(chan struct{})
			stalled := smtptest.Start(t, smtptest.Options{HoldReply: hold})
			t.Cleanup(func() { close(hold) })
			p := startPipelineForwarding(t, atoi(t, portOf(stalled.Addr)), transport, 2, nil)
			pf, am := p.pf, p.am

			id := "<held-" + transport + "@e2e>"
			qid, err := pf.Submit(sender, rcpt, message(id, "held", "wait for the next hop\n"))
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for stalled.Held() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the message never reached the stalled next hop; it got %q", stalled.Lines())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if q, err := pf.Queue(); err != nil || len(q) != 1 || q[0].QueueID != qid || q[0].QueueName != "active" {
				t.Errorf("while we wait for the next hop, Postfix's queue is %+v, %v; want %s active", q, err, qid)
			}
			am.kill(syscall.SIGKILL)

			m := pf.WaitQueued(t, qid, "deferred", 30*time.Second)
			t.Logf("deferred: %s", m.Recipients[0].DelayReason)
			if !strings.Contains(m.Recipients[0].DelayReason, "lost connection") {
				t.Errorf("delay reason %q, want a lost connection", m.Recipients[0].DelayReason)
			}
			if strings.Contains(am.Log(), "Passed CLEAN") {
				t.Errorf("we logged the message as passed before the next hop took it:\n%s", am.Log())
			}
			if msgs, err := pf.Messages(); err != nil || len(msgs) != 0 {
				t.Fatalf("mailbox after the kill: %d messages, %v", len(msgs), err)
			}

			cfg, err := os.ReadFile(am.Config)
			if err != nil {
				t.Fatal(err)
			}
			fixed := strings.Replace(string(cfg), fmt.Sprintf("smtp:[127.0.0.1]:%s\"", portOf(stalled.Addr)), fmt.Sprintf("smtp:[127.0.0.1]:%s\"", portOf(pf.ForwardAddr)), 1)
			if fixed == string(cfg) {
				t.Fatalf("no forward_method to replace in\n%s", cfg)
			}
			if err := os.WriteFile(am.Config, []byte(fixed), 0o644); err != nil {
				t.Fatal(err)
			}
			am.start()
			if err := pf.Flush(); err != nil {
				t.Fatal(err)
			}
			pf.WaitMessages(t, 1, 30*time.Second)
			assertDeliveredOnce(t, pf, []string{id})
			am.waitLog(regexp.MustCompile(`Passed CLEAN .*Message-ID: `+regexp.QuoteMeta(id)), 10*time.Second)
		})
	}
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
