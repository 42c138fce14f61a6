package amavis

import (
	"strings"
	"testing"

	"amavisgo/smtp/smtptest"
)

// A multipart message without its closing boundary: the forwarded copy's X-Amavis-Alert is
// byte for byte what Debian's amavisd-new 2.13 wrote for this message, MIME::Parser's two
// errors as Amavis::Unpackers::MIME joins them, folded as amavis folds it.
func TestMIMEErrorAlert(t *testing.T) {
	body := "From: a@sender.example.org\r\nTo: y@example.com\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <4@x>\r\n" +
		"Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n" +
		"preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com"}, body)
	msgs := h.Msgs()
	if len(msgs) != 1 {
		t.Fatalf("%d messages forwarded", len(msgs))
	}
	want := "\r\nX-Amavis-Alert: BAD HEADER SECTION, MIME error: error: part did not end with\r\n" +
		" expected boundary; ; error: unexpected end of parts before epilogue\r\nReceived: "
	if data := string(msgs[0].Data); !strings.Contains(data, want) {
		t.Errorf("forwarded header\n%s\nlacks\n%q", data[:strings.Index(data, "\r\n\r\n")], want)
	}
}

// Other alerts as Debian's amavisd-new 2.13 folded them for the same messages: the blanks of an
// all-whitespace continuation line kept as they are (a tab stays a tab), a long line's start.
func TestAlertFolding(t *testing.T) {
	head := "From: a@sender.example.org\r\nTo: y@example.com\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <5@x>\r\nSubject: t\r\n"
	for _, tc := range []struct{ field, alert string }{
		{"X-Folded: one two three four five six seven eight nine ten eleven twelve\r\n \t \r\n two\r\n",
			"X-Amavis-Alert: BAD HEADER SECTION, Improper folded header field made up\r\n" +
				" entirely of whitespace (char 20 09 20 hex): X-Folded: ... six seven eight\r\n" +
				" nine ten eleven twelve \t  two\r\n"},
		{"X-Folded: one two three four five six seven eight nine ten el\r\n \t \r\n two\r\n",
			"X-Amavis-Alert: BAD HEADER SECTION, Improper folded header field made up\r\n" +
				" entirely of whitespace (char 20 09 20 hex): X-Folded: ...e four five six\r\n" +
				" seven eight nine ten el \t  two\r\n"},
		{"X-Long: " + strings.Repeat("s", 1200) + "\r\n",
			"X-Amavis-Alert: BAD HEADER SECTION, Header line longer than 998 characters:\r\n" +
				" X-Long: " + strings.Repeat("s", 42) + "[...]\r\n"},
	} {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, "")
		sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com"}, head+tc.field+"\r\nhello\r\n")
		msgs := h.Msgs()
		if len(msgs) != 1 {
			t.Fatalf("%d messages forwarded", len(msgs))
		}
		data := string(msgs[0].Data)
		if !strings.Contains(data, "\r\n"+tc.alert+"Received: ") {
			t.Errorf("forwarded header\n%q\nlacks\n%q", data[:strings.Index(data, "Received: ")], tc.alert)
		}
	}
}
