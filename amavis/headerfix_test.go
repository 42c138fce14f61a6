package amavis

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"amavisgo/smtp/smtptest"
)

// Forwarded mail has its header repaired as amavis repairs it (the forms were taken from
// Debian's amavisd-new 2.13 given the same message): lines over 998 characters cut to 995 and
// "..." (counted per field), an all-whitespace continuation line dropped, NUL bytes anywhere
// sent as C0 80; each repair is logged at level 0 with the log id.
func TestForwardRepairsHeader(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	msg := "From: a@sender.example.org\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <2@x>\r\n" +
		"Subject: " + strings.Repeat("s", 1200) + "\r\n" +
		"X-Folded: one\r\n \t \r\n two\r\n" +
		"X-Nul: a\x00b\r\n" +
		"X-Long: " + strings.Repeat("w ", 600) + "\r\n  " + strings.Repeat("v", 1000) + "\r\n" +
		"\r\nbody\x00x\r\n"
	sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com"}, msg)
	waitFor(t, "main log line", func() bool { return len(mainLogLines(td.log.String())) == 1 })
	var got []string
	for _, l := range logLines(td) {
		if strings.Contains(l, "INFO: ") || strings.Contains(l, "SANITIZED") {
			got = append(got, l)
		}
	}
	want := []string{
		"(PID-NN) INFO: unfolded 1 illegal all-whitespace continuation lines",
		"(PID-NN) INFO: truncated 2 header line(s) longer than 998 characters",
		"(PID-NN) smtp forwarding: SANITIZED 2 NULL byte(s)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("log lines\n%q\nwant\n%q", got, want)
	}
	msgs := h.Msgs()
	if len(msgs) != 1 {
		t.Fatalf("%d messages forwarded", len(msgs))
	}
	data := msgs[0].Data
	_, orig, _ := bytes.Cut(data, []byte("From: a@sender.example.org\r\n"))
	wantOrig := "Date: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <2@x>\r\n" +
		"Subject: " + strings.Repeat("s", 986) + "...\r\n" +
		"X-Folded: one\r\n two\r\n" +
		"X-Nul: a\xc0\x80b\r\n" +
		"X-Long: " + strings.Repeat("w ", 493) + "w...\r\n  " + strings.Repeat("v", 993) + "...\r\n" +
		"\r\nbody\xc0\x80x\r\n"
	if string(orig) != wantOrig {
		t.Errorf("forwarded\n%q\nwant\n%q", orig, wantOrig)
	}
}
