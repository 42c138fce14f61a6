package amavis

import (
	"amavisgo/conf"
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

// Bare CRs are removed from the forwarded header and counted per field, as Debian's
// amavisd-new 2.13 did for this message.
func TestForwardRemovesBareCR(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	msg := "From: a@sender.example.org\r\nTo: y@example.com\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <6@x>\r\n" +
		"Subject: t\r\nX-CR: a\rb\r\nX-CR2: c\r\n d\re\r\n\r\nhello\r\n"
	sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com"}, msg)
	want := "(PID-NN) INFO: removed bare CR from 2 header line(s)"
	waitFor(t, want, func() bool { return slices.Contains(logLines(td), want) })
	msgs := h.Msgs()
	if len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("\r\nSubject: t\r\nX-CR: ab\r\nX-CR2: c\r\n de\r\n\r\nhello\r\n")) {
		t.Errorf("forwarded %d messages, want one with the CRs removed", len(msgs))
	}
}

// allow_fixing_improper_header = false leaves the header as it came; NULs are still sanitized.
func TestForwardHeaderFixingOff(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "allow_fixing_improper_header = false")
	long := "X-Long: " + strings.Repeat("w", 1200) + "\r\n"
	msg := "From: a@sender.example.org\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\n" + long + "X-Folded: one\r\n \t \r\n two\r\n\r\nbody\x00\r\n"
	sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com"}, msg)
	msgs := h.Msgs()
	if len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte(long+"X-Folded: one\r\n \t \r\n two\r\n\r\nbody\xc0\x80\r\n")) {
		t.Errorf("forwarded %d messages, want one with the header as it came", len(msgs))
	}
	if strings.Contains(td.log.String(), "INFO: ") {
		t.Errorf("repairs logged:\n%s", td.log.String())
	}
}

// A header line of CRs alone is dropped after its CRs are removed, as amavis removes them
// first: written as an empty line it would end the header section and push the fields after it
// into the body.
func TestRepairHeaderCROnlyLine(t *testing.T) {
	p := &conf.Default().Policy
	got, rep := repairHeader(p, []byte("From: a@b\r\n\r\r\nContent-Type: text/plain\r\n"))
	if string(got) != "From: a@b\r\nContent-Type: text/plain\r\n" || rep.whitespace != 1 {
		t.Errorf("repaired %q (%+v)", got, rep)
	}
}

// With DKIM verification on, a header that repair shortens (a 5000-character line cut to 998)
// and a forged Authentication-Results of ours: the message is forwarded repaired, without the
// forged field, and with our Received field whole (it panicked on the repaired length before).
func TestForwardRepairWithDKIMVerification(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "enable_dkim_verification = true")
	msg := "From: a@sender.example.org\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <7@x>\r\n" +
		"Authentication-Results: mx.example.com; dkim=pass header.d=forged.example\r\n" +
		"X-Long: " + strings.Repeat("w", 5000) + "\r\n\r\nbody\r\n"
	got := sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com"}, msg)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
		t.Fatalf("reply %q", got[0])
	}
	msgs := h.Msgs()
	if len(msgs) != 1 {
		t.Fatalf("forwarded %d messages", len(msgs))
	}
	data := string(msgs[0].Data)
	if strings.Contains(data, "forged.example") || !strings.Contains(data, "X-Long: "+strings.Repeat("w", 987)+"...\r\n") ||
		!strings.Contains(data, "(amavis, port ") || !strings.HasSuffix(data, "\r\n\r\nbody\r\n") {
		t.Errorf("forwarded:\n%.600s", data)
	}
}
