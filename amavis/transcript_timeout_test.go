package amavis

import (
	"fmt"
	"testing"
	"time"

	"amavisgo/smtp/smtptest"
)

// child_timeout is measured from the last input received (Amavis::Util's get_deadline): a transfer
// that takes longer than child_timeout, each line well within smtpd_timeout, is still processed and
// forwarded in full.
func TestChildTimeoutCountsFromLastInput(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "child_timeout = 2\nsmtpd_timeout = 5")
	c, r := openData(t, td.addr)
	start := time.Now()
	for i := 0; time.Since(start) < 3*time.Second; i++ {
		send(t, c, fmt.Sprintf("X-Slow-%d: yes", i))
		time.Sleep(100 * time.Millisecond)
	}
	send(t, c, "", "slow body", ".")
	expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:")
	if n := len(h.Msgs()); n != 1 {
		t.Errorf("next hop got %d messages", n)
	}
}
