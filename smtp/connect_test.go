package smtp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"amavisgo/smtp"
	"amavisgo/smtp/smtptest"
)

// A next hop that drops our SYNs is given up after ConnectTimeout (amavis's
// smtp_connect_timeout), not after the much longer per-command timeout.
func TestConnectTimeout(t *testing.T) {
	addr := smtptest.Blackhole(t)
	defer func(d time.Duration) { smtp.ConnectTimeout = d }(smtp.ConnectTimeout)
	smtp.ConnectTimeout = 300 * time.Millisecond
	start := time.Now()
	_, err := smtp.Dial(context.Background(), "tcp", addr, false, "localhost", time.Minute)
	var se *smtp.Error
	if !errors.As(err, &se) || se.Stage != "fwd-connect" || !se.Timeout() {
		t.Errorf("got %v, want a fwd-connect timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gave up after %v", d)
	}
}
