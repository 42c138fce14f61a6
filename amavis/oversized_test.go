package amavis

import (
	"io"
	"slices"
	"strings"
	"testing"

	"amavisgo/smtp/smtptest"
)

// logLines are all lines of the daemon's log, normalized, without the logfile prefix.
func logLines(td *testDaemon) []string {
	n := newNormalizer(td)
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(td.log.String(), "\n"), "\n") {
		if i := strings.Index(l, "]: "); i >= 0 {
			l = l[i+3:]
		}
		out = append(out, n.line(l))
	}
	return out
}

// A message bigger than the size limit of one of its recipients is refused in DATA with one
// reply, in LMTP too, and logged as amavis does ("ESMTP REJECT: 552 5.3.4 Message size (N B)
// exceeds size limit", N counting the stuffing dots as on the wire): nothing is forwarded, no
// DSN is sent, and the other recipient gets nothing either (Amavis::In::SMTP).
func TestOversizedRefusedInData(t *testing.T) {
	line := strings.Repeat("x", 78) + "\r\n"
	body := "Subject: big\r\n\r\n" + strings.Repeat(line+"..dot\r\n", 900) // 900 stuffing dots: 77,416 bytes unstuffed
	wire := int64(len(body))                                               // 78,316 bytes
	for _, lmtp := range []bool{false, true} {
		name, greet, proto := "SMTP", "EHLO", "ESMTP"
		if lmtp {
			name, greet, proto = "LMTP", "LHLO", "LMTP"
		}
		t.Run(name, func(t *testing.T) {
			h := hop(t, smtptest.Options{})
			td := startDaemon(t, h.Addr, "[[message_size_limit_maps]]\nhash = { \"x@example.com\" = 70000 }")
			c, r := dial(t, td.addr)
			expectPrefix(t, r, "220 ")
			send(t, c, "HELO mta.example.com")
			send(t, c, greet+" mta.example.com")
			expectPrefix(t, r, "250 ")
			for {
				if l := expectPrefix(t, r, "250"); strings.HasPrefix(l, "250 ") {
					break
				}
			}
			send(t, c, "MAIL FROM:<a@sender.example.org>", "RCPT TO:<x@example.com>", "RCPT TO:<y@example.com>", "DATA")
			for range 3 {
				expectPrefix(t, r, "250 ")
			}
			expectPrefix(t, r, "354 ")
			if _, err := io.WriteString(c, body+".\r\n"); err != nil {
				t.Fatal(err)
			}
			expect(t, r, "552 5.3.4 Message size (78316 B) exceeds size limit")
			send(t, c, "QUIT")
			expectPrefix(t, r, "221 ")
			want := "(PID-NN) " + proto + " REJECT: 552 5.3.4 Message size (78316 B) exceeds size limit"
			waitFor(t, "the REJECT line", func() bool { return slices.Contains(logLines(td), want) })
			if wire != 78316 {
				t.Fatalf("test message is %d bytes", wire)
			}
			if n := len(h.Msgs()); n != 0 {
				t.Errorf("next hop got %d messages (forwarded or a DSN), want none", n)
			}
			if l := mainLogLines(td.log.String()); len(l) != 0 {
				t.Errorf("main log lines %q, want none", l)
			}
		})
	}
}
