package amavis

import (
	"bufio"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amavisgo/dkim"
	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// signedMessage is a message signed for example.org with key, as its header section and the
// whole text.
func signedMessage(t *testing.T, key *dkim.Key, extraHeader string) string {
	t.Helper()
	header := extraHeader + "From: Alice <alice@example.org>\r\nTo: x@example.com\r\nSubject: signed\r\n" +
		"Date: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <dkim-verify@example.org>\r\n"
	body := "a signed body\r\n"
	c := dkim.Choose(dkim.Candidates([]byte(header), ""), dkim.Keys{key}, func(string) []dkim.Options { return nil }, nil, time.Now())
	sig, err := c.Sign([]byte(header), strings.NewReader(header+"\r\n"+body), map[string]int{"from": 2, "subject": 2, "date": 2, "message-id": 1})
	if err != nil {
		t.Fatal(err)
	}
	return sig + header + "\r\n" + body
}

// TestDKIMVerification: with enable_dkim_verification, a local recipient's copy gets our
// Authentication-Results field in amavis's text, incoming ones that claim our authserv-id (or
// have none) are removed, others stay, and the log line names the valid signature (dkim_sd=).
// A DNS server that does not answer makes the result temperror: the message still passes.
func TestDKIMVerification(t *testing.T) {
	dns := testenv.StartDNS(t)
	saved := dkimResolver
	dkimResolver = dkim.NewResolver(dns.Addr, time.Second)
	t.Cleanup(func() { dkimResolver = saved })
	file := filepath.Join(t.TempDir(), "k.pem")
	if err := dkim.GenRSA(file, 2048); err != nil {
		t.Fatal(err)
	}
	key, err := dkim.LoadKey("example.org", "sel", file, nil)
	if err != nil {
		t.Fatal(err)
	}
	dns.SetTXT("sel._domainkey.example.org", key.Record())

	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "enable_dkim_verification = true")
	forged := "Authentication-Results: mx.example.com; dkim=pass header.d=example.org\r\n" +
		"Authentication-Results: ;\r\n dkim=pass\r\n" +
		"Authentication-Results: MX.example.com/1 (their own); dkim=pass\r\n"
	kept := "Authentication-Results: other.example (mx); spf=pass smtp.mailfrom=example.org\r\n"
	deliver := func(msg string) string {
		t.Helper()
		n := len(h.Msgs())
		c, r := openData(t, td.addr)
		w := bufio.NewWriter(c)
		w.WriteString(msg + ".\r\n")
		w.Flush()
		expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:")
		waitFor(t, "the next hop to get the message", func() bool { return len(h.Msgs()) == n+1 })
		return string(h.Msgs()[n].Data)
	}

	got := deliver(signedMessage(t, key, forged+kept))
	want := "Authentication-Results: mx.example.com (amavis); dkim=pass (2048-bit key)\r\n header.d=example.org\r\n"
	if !strings.Contains(got, want) {
		t.Errorf("no %q in:\n%s", want, got)
	}
	if strings.Contains(got, "mx.example.com; dkim=pass") || strings.Contains(got, "Authentication-Results: ;") || strings.Contains(got, "MX.example.com/1") {
		t.Errorf("a forged Authentication-Results field went through:\n%s", got)
	}
	if !strings.Contains(got, kept) {
		t.Errorf("another server's Authentication-Results was removed:\n%s", got)
	}
	waitFor(t, "the log line", func() bool { return strings.Contains(td.log.String(), "Message-ID: <dkim-verify@example.org>") })
	if line := mainLogLines(td.log.String()); len(line) == 0 || !strings.Contains(line[len(line)-1], ", dkim_sd=sel:example.org, ") {
		t.Errorf("log line lacks dkim_sd=sel:example.org: %q", line)
	}

	dns.Silence("sel._domainkey.example.org")
	got = deliver(signedMessage(t, key, ""))
	want = "Authentication-Results: mx.example.com (amavis); dkim=temperror\r\n reason=\"temperror (public key: DNS error: query timed out)\"\r\n header.d=example.org\r\n"
	if !strings.Contains(got, want) {
		t.Errorf("no %q in:\n%s", want, got)
	}
}
