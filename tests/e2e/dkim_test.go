package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"amavisgo/dkim"
	"amavisgo/internal/testenv"
)

// TestDKIMSigningOriginating: through Postfix, mail that reaches our ORIGINATING port is signed
// with the key of its author's domain, and the signature verifies with opendkim and
// python3-dkim as it lies in the mailbox; mail from outside, on the other port, is not signed.
// Postfix sends mail from 127.0.0.3 (our "inside") to the ORIGINATING port with an access map's
// FILTER action, the rest goes to the other port. GTUBE from inside, found by Debian's rspamd,
// passes as SPAM unsigned.
func TestDKIMSigningOriginating(t *testing.T) {
	t.Parallel()
	opendkim := testenv.RequireProgram(t, "opendkim")
	keyDir, err := os.MkdirTemp("", "amavisgo-dkim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(keyDir) })
	keyFile := filepath.Join(keyDir, "sel.pem")
	if err := dkim.GenRSA(keyFile, 2048); err != nil {
		t.Fatal(err)
	}
	key, err := dkim.LoadKey("example.org", "sel", keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}

	rs := testenv.StartRspamd(t) // GTUBE from inside is spam: not signed
	var p pipeline
	for attempt := 1; ; attempt++ {
		amPort, op := testenv.FreePort(t), testenv.FreePort(t)
		pf := testenv.StartPostfix(t, testenv.PostfixOptions{FilterPort: amPort, Transport: "smtp", MainCF: []string{
			"smtpd_client_restrictions = check_client_access inline:{ { 127.0.0.3 = FILTER amavisfeed:[127.0.0.1]:" + strconv.Itoa(op) + " } }",
		}})
		fwd, _ := strconv.Atoi(portOf(pf.ForwardAddr))
		am := newDaemon(t, daemonConfig{Port: amPort, MorePorts: []int{op}, ForwardPort: fwd, Extra: []string{
			`mynetworks = ["192.0.2.0/24"]`,
			`enable_dkim_signing = true`,
			`interface_policy = { "` + strconv.Itoa(op) + `" = "ORIGINATING" }`,
			"sa_tag_level_deflt = 2.0", "sa_tag2_level_deflt = 6.31", "sa_kill_level_deflt = 6.31",
			"[[spam_scanners]]", `name = "Local Rspamd"`, `type = "rspamd"`,
			`url = "http://` + rs.Addr + `/checkv2"`, "score_factor = 0.42066666666666666",
			`[[dkim_key]]`,
			`domain = "example.org"`,
			`selector = "sel"`,
			`key_file = "` + keyFile + `"`,
			`[policy_bank.ORIGINATING]`,
			`originating = true`,
		}})
		err := am.tryStart()
		if err == nil {
			p = pipeline{pf: pf, am: am}
			break
		}
		if err != errPortTaken || attempt == 3 {
			t.Fatal(err)
		}
		pf.Stop()
	}

	// the body has a line "From " would quote in the mailbox: none here
	if _, err := p.pf.SubmitFrom("127.0.0.3", sender, rcpt, message("<dkim-out@e2e>", "signed by us", "outgoing\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pf.SubmitFrom("127.0.0.2", sender, rcpt, message("<dkim-in@e2e>", "not signed", "incoming\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pf.SubmitFrom("127.0.0.3", sender, rcpt, message("<dkim-gtube@e2e>", "spam from inside", testenv.GTUBE+"\n")); err != nil {
		t.Fatal(err)
	}
	msgs := p.pf.WaitMessages(t, 3, 60*time.Second)
	byID := map[string]testenv.MailboxMessage{}
	for _, m := range msgs {
		byID[m.MessageID] = m
	}
	out, in, spam := byID["<dkim-out@e2e>"], byID["<dkim-in@e2e>"], byID["<dkim-gtube@e2e>"]
	if v := in.HeaderValues("DKIM-Signature"); len(v) != 0 {
		t.Errorf("inbound mail was signed: %q", v)
	}
	// delivered (final_spam_destiny D_PASS; rcpt is not local here, so no X-Spam-* fields), unsigned
	if v := spam.HeaderValues("DKIM-Signature"); spam.MessageID == "" || len(v) != 0 {
		t.Errorf("GTUBE from inside: delivered %v, signatures %q; want delivered without one", spam.MessageID != "", v)
	}
	p.am.waitLog(regexp.MustCompile(`Passed SPAM \{RelayedOutbound\}, ORIGINATING LOCAL .*Message-ID: <dkim-gtube@e2e>, .*Hits: 6\.31,`), 10*time.Second)
	p.am.waitLog(regexp.MustCompile(`dkim: not signing spam \(from inside\), From: `), 10*time.Second)
	sigs := out.HeaderValues("DKIM-Signature")
	if len(sigs) != 1 {
		t.Fatalf("originating mail has %d signatures:\n%s", len(sigs), out.Header)
	}
	for _, want := range []string{"d=example.org;", "s=sel;", "a=rsa-sha256;", "c=relaxed/simple;", "h=content-type:content-type:mime-version:date:date:message-id:subject:subject:from:from:received:received;"} {
		if !strings.Contains(strings.ReplaceAll(sigs[0], " ", ""), strings.ReplaceAll(want, " ", "")) {
			t.Errorf("signature lacks %s: %s", want, sigs[0])
		}
	}
	// ours is on top of everything we wrote: above X-Virus-Scanned and our Received
	if iSig, iX := strings.Index(out.Header, "DKIM-Signature:"), strings.Index(out.Header, "X-Virus-Scanned:"); iSig < 0 || iX < iSig {
		t.Errorf("the signature is not our first field:\n%s", out.Header)
	}

	raw := strings.ReplaceAll(out.Header+"\n"+string(out.Body), "\n", "\r\n")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keys"), []byte("sel._domainkey.example.org "+key.Record()+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "t.conf"), []byte("Mode v\nSyslog no\nTestPublicKeys "+filepath.Join(dir, "keys")+"\n"), 0o644)
	verify := func(msg string) string {
		os.WriteFile(filepath.Join(dir, "msg"), []byte(msg), 0o644)
		b, err := exec.Command(opendkim, "-x", filepath.Join(dir, "t.conf"), "-t", filepath.Join(dir, "msg")).CombinedOutput()
		if err != nil {
			t.Fatalf("opendkim: %v: %s", err, b)
		}
		return string(b)
	}
	if got := verify(raw); !strings.Contains(got, "verification (s=sel, d=example.org, 2048-bit key) succeeded") {
		t.Errorf("opendkim: %s\n%s", got, raw)
	}
	if got := verify(strings.Replace(raw, "outgoing", "Outgoing", 1)); strings.Contains(got, "succeeded") {
		t.Errorf("opendkim on a changed body: %s", got)
	}
	py := exec.Command("/usr/bin/python3", "-c", "import sys, dkim\nrec = sys.argv[1].encode()\nprint(dkim.verify(sys.stdin.buffer.read(), dnsfunc=lambda n, timeout=5: rec))", key.Record())
	py.Stdin = strings.NewReader(raw)
	if b, err := py.CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "True" {
		t.Errorf("python3-dkim: %v: %s", err, b)
	}

	line := p.am.waitLog(regexp.MustCompile(`Passed CLEAN .*ORIGINATING LOCAL \[127\.0\.0\.3\].*Message-ID: <dkim-out@e2e>`), 10*time.Second)
	if !strings.Contains(line, ", dkim_new=sel:example.org, ") {
		t.Errorf("our log line lacks dkim_new=sel:example.org:\n%s", line)
	}
	if line := p.am.waitLog(regexp.MustCompile(`Passed CLEAN .*Message-ID: <dkim-in@e2e>`), 10*time.Second); strings.Contains(line, "dkim_new=") {
		t.Errorf("inbound log line: %s", line)
	}
	p.am.waitLog(regexp.MustCompile(`dkim: signing \(author\), From: sender@example\.org \(From:sender@example\.org\), a=>rsa-sha256, c=>relaxed/simple, d=>example\.org, s=>sel`), 10*time.Second)
}
