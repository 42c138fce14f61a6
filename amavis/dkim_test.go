package amavis

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/dkim"
	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
	"amavisgo/verdict"
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

// TestDKIMNotSigningSpamOrVirus: originating mail in CC_VIRUS, CC_SPAM or CC_SPAMMY is not
// signed (a signed spam could be replayed), with amavis's log line; clean mail is.
func TestDKIMNotSigningSpamOrVirus(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "k.pem")
	if err := dkim.GenRSA(file, 1024); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Parse("t.toml", []byte("enable_dkim_signing = true\noriginating = true\nlog_level = 2\n"+
		"[[dkim_key]]\ndomain = \"example.org\"\nselector = \"s\"\nkey_file = \""+file+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	header := "From: Alice <alice@example.org>\r\nSubject: s\r\n"
	spool := filepath.Join(dir, "email.txt")
	os.WriteFile(spool, []byte(header+"\r\nbody\r\n"), 0o600)
	for _, tc := range []struct {
		ccat int
		log  string
	}{
		{verdict.CC_VIRUS, "dkim: not signing infected mail (from inside), From: alice@example.org"},
		{verdict.CC_SPAM, "dkim: not signing spam (from inside), From: alice@example.org"},
		{verdict.CC_SPAMMY, "dkim: not signing suspected spam (from inside), From: alice@example.org"},
		{verdict.CC_CLEAN, "dkim: signing (author), From: alice@example.org (From:alice@example.org), a=>rsa-sha256, c=>relaxed/simple, d=>example.org, s=>s"},
	} {
		var log syncBuffer
		v := &verdict.Verdict{}
		v.CCats.Add(tc.ccat, 0)
		m := &Message{cfg: cfg, Policy: &cfg.Policy, Header: []byte(header), HeaderComplete: true, File: spool,
			Sender: "alice@example.org", RxTime: time.Now(), Verdict: v,
			tl: &taskLog{l: NewWriterLog(&log, "mx.example.com", NoOverride), id: "1-01", level: 2}}
		sig, _ := (&Daemon{}).dkimSign(m, nil, 0)
		if (sig != "") != (tc.ccat == verdict.CC_CLEAN) || !strings.Contains(log.String(), tc.log) {
			t.Errorf("ccat %d: signature %q, log %q", tc.ccat, sig, log.String())
		}
	}
}

// TestDKIMSignedInDaemon: originating mail leaves signed, the signature first, over the header
// as forwarded (our Received included) and the body; with verification on, a local recipient's
// copy also gets amavis's result for our own signature on top, and the copy verifies.
func TestDKIMSignedInDaemon(t *testing.T) {
	dns := testenv.StartDNS(t)
	file := filepath.Join(t.TempDir(), "k.pem")
	if err := dkim.GenRSA(file, 1024); err != nil {
		t.Fatal(err)
	}
	key, _ := dkim.LoadKey("example.org", "s", file, nil)
	dns.SetTXT("s._domainkey.example.org", key.Record())
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "enable_dkim_signing = true\nenable_dkim_verification = true\noriginating = true\n"+
		"[[dkim_key]]\ndomain = \"example.org\"\nselector = \"s\"\nkey_file = \""+file+"\"\n")
	c, r := openData(t, td.addr)
	c.Write([]byte("From: Alice <alice@example.org>\r\nTo: x@example.com\r\nSubject: out\r\nMessage-ID: <out@example.org>\r\n\r\nbody\r\n.\r\n"))
	expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:")
	waitFor(t, "the next hop to get the message", func() bool { return len(h.Msgs()) == 1 })
	got := string(h.Msgs()[0].Data)
	top := "Authentication-Results: mx.example.com (amavis); dkim=pass (1024-bit key)\r\n" +
		" reason=\"pass (just generated, assumed good)\" header.d=example.org\r\nDKIM-Signature: "
	if !strings.HasPrefix(got, top) {
		t.Fatalf("the copy does not start with %q:\n%s", top, got)
	}
	header, _, _ := strings.Cut(got, "\r\n\r\n")
	sigs, err := dkim.Verify(context.Background(), []byte(header+"\r\n"), strings.NewReader(got), dkim.NewResolver(dns.Addr, time.Second))
	if err != nil || len(sigs) != 1 || sigs[0].Result != "pass" || !strings.Contains(got, "(amavis, port "+td.port+")") {
		t.Errorf("verification of the copy: %v %+v\n%s", err, sigs, got)
	}
	waitFor(t, "the log line", func() bool { return strings.Contains(td.log.String(), "Message-ID: <out@example.org>") })
	if line := mainLogLines(td.log.String()); !strings.Contains(line[len(line)-1], ", dkim_new=s:example.org, ") {
		t.Errorf("log line lacks dkim_new=s:example.org: %q", line)
	}
}
