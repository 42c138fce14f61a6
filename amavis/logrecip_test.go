package amavis

import (
	"slices"
	"strings"
	"testing"

	"amavisgo/smtp/smtptest"
)

// amavis's built-in $log_recip_templ writes a line per recipient after the main one, in the
// form Debian's amavisd-new 2.13 wrote for the same case (a 550 of the next hop for one of two
// recipients): the passed one with the next hop's queue id, the other "Blocked ..., <s> -> ,".
// log_recip_templ = "" (Debian's undef) writes none.
func TestLogRecipTempl(t *testing.T) {
	body := "From: a@sender.example.org\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <3@x>\r\nSubject: t\r\n\r\nbody\r\n"
	for _, tc := range []struct {
		extra string
		want  []string
	}{
		{"", []string{
			"(PID-NN) Passed CLEAN, <a@sender.example.org> -> <y@example.com>, Hits: -, tag=0, tag2=0, kill=0, queued_as: SINKQ0001, L/0/0/0",
			"(PID-NN) Blocked MTA-BLOCKED, <a@sender.example.org> -> , Hits: -, tag=0, tag2=0, kill=0, L/0/0/0",
			"(PID-NN) Passed CLEAN, <a@sender.example.org> -> <z@remote.example.net>, Hits: -, tag=0, tag2=0, kill=0, queued_as: SINKQ0001, 0/0/0/0",
		}},
		{`log_recip_templ = ""`, nil},
	} {
		h := hop(t, smtptest.Options{RcptCode: map[string]int{"reject@example.com": 550}})
		td := startDaemon(t, h.Addr, tc.extra)
		sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com", "reject@example.com", "z@remote.example.net"}, body)
		waitFor(t, "main log lines", func() bool { return len(mainLogLines(td.log.String())) == 2 })
		var got []string
		for _, l := range logLines(td) {
			if strings.Contains(l, ", tag=") {
				got = append(got, l)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: per-recipient lines\n %s\nwant\n %s", tc.extra, strings.Join(got, "\n "), strings.Join(tc.want, "\n "))
		}
	}
}
