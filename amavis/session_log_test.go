package amavis

import (
	"slices"
	"strings"
	"testing"
)

// The session's own lines as Debian's amavisd-new 2.13 wrote them for this very dialog (less
// Perl's "at SMTP.pm line 272." after the ABORTING reason): a client error is logged with the
// command and its literal \r\n; after MAIL ... SMTPUTF8 the label is UTF8SMTP, even though that
// MAIL was refused; every MAIL, refused or not, begins a transaction with its own log id; a
// connection broken during DATA aborts the transfer, then the session.
func TestSessionLogLines(t *testing.T) {
	td := startDaemon(t, "", "")
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "EHLO mta.example.com")
	for {
		if l := expectPrefix(t, r, "250"); strings.HasPrefix(l, "250 ") {
			break
		}
	}
	for _, step := range []struct{ cmd, reply string }{
		{"FOO bar", "500 5.5.2 Error: command FOO not recognized"},
		{"MAIL FROM:<a@sender.example.org> SMTPUTF8 FOO=1", "504 5.5.4 MAIL command parameter error: FOO=1"},
		{"MAIL FROM:<a@sender.example.org> SMTPUTF8", "250 2.1.0 Sender <a@sender.example.org> OK"},
		{"RCPT TO:<x y>", "501 5.5.2 Syntax: RCPT TO:<address>"},
		{"RSET", "250 2.0.0 Ok RSET"},
		{"MAIL FROM:<a@sender.example.org>", "250 2.1.0 Sender <a@sender.example.org> OK"},
		{"RCPT TO:<y@example.com>", "250 2.1.5 Recipient <y@example.com> OK"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
	} {
		send(t, c, step.cmd)
		expect(t, r, step.reply)
	}
	send(t, c, "Subject: x", "", "abc")
	c.Close()
	want := []string{
		`(PID-NN) ESMTP: 500 5.5.2 Error: command FOO not recognized; smtp_resp: FOO bar\r\n`,
		`(PID-NN) UTF8SMTP: 504 5.5.4 MAIL command parameter error: FOO=1; smtp_resp: MAIL FROM:<a@sender.example.org> SMTPUTF8 FOO=1\r\n`,
		`(PID-NN-2) UTF8SMTP: 501 5.5.2 Syntax: RCPT TO:<address>; smtp_resp: RCPT TO:<x y>\r\n`,
		`(PID-NN-3) (!)UTF8SMTP ABORTING: Connection broken during DATA`,
		`(PID-NN-3) (!)UTF8SMTP: NOTICE: ABORTING the session: Connection broken during DATA`,
	}
	var got []string
	waitFor(t, "the ABORTING lines", func() bool {
		got = nil
		for _, l := range logLines(td) {
			if strings.Contains(l, "smtp_resp:") || strings.Contains(l, "ABORTING") {
				got = append(got, l)
			}
		}
		return len(got) >= len(want)
	})
	if !slices.Equal(got, want) {
		t.Errorf("log lines\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(want, "\n "))
	}
}
