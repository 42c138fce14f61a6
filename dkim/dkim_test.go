package dkim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

const testHeader = "From: Alice <alice@example.com>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: quarterly figures\r\n" +
	"Date: Fri, 4 Dec 2026 05:00:00 +0000\r\n" +
	"Message-ID: <1234@example.com>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n"

const testBody = "Hello Bob,\r\n\r\nthe figures are attached.\r\n"

// newKey writes a key of bits with GenRSA (as amavisd genrsa does) and loads it.
func newKey(t *testing.T, bits int, domain, selector string) *Key {
	t.Helper()
	file := filepath.Join(t.TempDir(), selector+".pem")
	if err := GenRSA(file, bits); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(domain, selector, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func defaultSigned() map[string]int {
	m := map[string]int{}
	for _, h := range []string{"from", "subject", "date", "content-type"} {
		m[h] = 2
	}
	for _, h := range []string{"message-id", "mime-version", "received", "reply-to"} {
		m[h] = 1
	}
	m["to"] = 0
	return m
}

// sign signs header+body with the key the candidates choose, amavis's default options.
func sign(t *testing.T, keys Keys, header, body string) string {
	t.Helper()
	c := Choose(Candidates([]byte(header), "alice@example.com"), keys, func(string) []Options { return nil }, nil, time.Now())
	if c.Key == nil {
		t.Fatalf("no key chosen: %s", c.Reason)
	}
	sig, err := c.Sign([]byte(header), strings.NewReader(header+"\r\n"+body), defaultSigned())
	if err != nil {
		t.Fatal(err)
	}
	return sig + header + "\r\n" + body
}

// opendkimVerify runs opendkim in test mode over msg with the key records in TestPublicKeys
// and returns what it says (it exits 0 whatever the verdict).
func opendkimVerify(t *testing.T, msg string, records map[string]string) string {
	t.Helper()
	bin := testenv.RequireProgram(t, "opendkim")
	dir := t.TempDir()
	var keys strings.Builder
	for name, rec := range records {
		keys.WriteString(name + " " + rec + "\n")
	}
	write(t, filepath.Join(dir, "keys"), keys.String())
	write(t, filepath.Join(dir, "t.conf"), "Mode v\nSyslog no\nTestPublicKeys "+filepath.Join(dir, "keys")+"\n")
	write(t, filepath.Join(dir, "msg"), msg)
	out, err := exec.Command(bin, "-x", filepath.Join(dir, "t.conf"), "-t", filepath.Join(dir, "msg")).CombinedOutput()
	if err != nil {
		t.Fatalf("opendkim: %v: %s", err, out)
	}
	return string(out)
}

// pythonVerify runs python3-dkim's verifier over msg, the key record served by its dnsfunc.
func pythonVerify(t *testing.T, msg, record string) string {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3-dkim is needed: %v", err)
		}
		t.Skipf("python3-dkim not installed: %v", err)
	}
	script := `import sys, dkim
rec = sys.argv[1].encode()
msg = sys.stdin.buffer.read()
print(dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec))`
	cmd := exec.Command(py, "-c", script, record)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 dkim: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, file, text string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tamper changes one byte of the body.
func tamper(msg string) string {
	i := strings.LastIndex(msg, "figures")
	return msg[:i] + "F" + msg[i+1:]
}

func TestSignedVerifiesWithOpendkimAndPython(t *testing.T) {
	k := newKey(t, 2048, "example.com", "sel")
	msg := sign(t, Keys{k}, testHeader, testBody)
	records := map[string]string{"sel._domainkey.example.com": k.Record()}

	if out := opendkimVerify(t, msg, records); !strings.Contains(out, "verification (s=sel, d=example.com, 2048-bit key) succeeded") {
		t.Errorf("opendkim: %s\nmessage:\n%s", out, msg)
	}
	if out := pythonVerify(t, msg, k.Record()); out != "True" {
		t.Errorf("python3-dkim: %s", out)
	}
	bad := tamper(msg)
	if out := opendkimVerify(t, bad, records); strings.Contains(out, "succeeded") || !strings.Contains(out, "2048-bit key, unknown) failed") {
		t.Errorf("opendkim on a changed body: %s", out)
	}
	if out := pythonVerify(t, bad, k.Record()); out != "False" {
		t.Errorf("python3-dkim on a changed body: %s", out)
	}
}

func TestSignatureTags(t *testing.T) {
	k := newKey(t, 1024, "example.com", "sel")
	msg := sign(t, Keys{k}, "Received: from a by b; Fri, 4 Dec 2026 05:00:00 +0000\r\n"+testHeader, testBody)
	sig, _, _ := strings.Cut(msg, "\r\n\r\n")
	tags := parseTags(strings.Join(strings.Fields(strings.TrimPrefix(sig[:strings.Index(sig, "\r\nReceived:")], "DKIM-Signature:")), " "))
	want := map[string]string{"a": "rsa-sha256", "c": "relaxed/simple", "d": "example.com", "s": "sel",
		"h": "content-type:content-type:mime-version:message-id:date:date:subject:subject:from:from:received"}
	for tag, v := range want {
		if got := strings.ReplaceAll(tags[tag], " ", ""); got != v {
			t.Errorf("%s=%s, want %s", tag, got, v)
		}
	}
	if !strings.HasPrefix(msg, "DKIM-Signature:") {
		t.Errorf("the signature is not the first field:\n%s", msg)
	}
}

func TestEd25519(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	file := filepath.Join(t.TempDir(), "ed.pem")
	write(t, file, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	k, err := LoadKey("example.com", "ed", file, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := sign(t, Keys{k}, testHeader, testBody)
	if !strings.Contains(msg, "a=ed25519-sha256") {
		t.Fatalf("not an Ed25519 signature:\n%s", msg)
	}
	if out := pythonVerify(t, msg, k.Record()); out != "True" {
		t.Errorf("python3-dkim: %s (record %s)", out, k.Record())
	}
	// opendkim 2.11 reports no size for an Ed25519 key
	if out := opendkimVerify(t, msg, map[string]string{"ed._domainkey.example.com": k.Record()}); !strings.Contains(out, "verification (s=ed, d=example.com, 0-bit key) succeeded") {
		t.Errorf("opendkim: %s", out)
	}
	if out := pythonVerify(t, tamper(msg), k.Record()); out != "False" {
		t.Errorf("python3-dkim on a changed body: %s", out)
	}
	if out := opendkimVerify(t, tamper(msg), map[string]string{"ed._domainkey.example.com": k.Record()}); strings.Contains(out, "succeeded") || !strings.Contains(out, "failed") {
		t.Errorf("opendkim on a changed body: %s", out)
	}
}

func TestSignedFields(t *testing.T) {
	h := "Received: x\r\nReceived: y\r\nFrom: a@example.com\r\nTo: b@example.net\r\nCc: c@example.net\r\n" +
		"Subject: s\r\nSender: s@example.com\r\nX-Other: 1\r\nContent-Type: text/plain\r\n"
	got := strings.Join(SignedFields([]byte(h), defaultSigned()), ":")
	if want := "content-type:content-type:subject:subject:from:from:received:received"; got != want {
		t.Errorf("h=%s, want %s", got, want)
	}
}

// An h option names the fields to sign, a name twice to over-sign it (an amavisgo extension:
// amavis takes them from signed_header_fields only).
func TestSignedFieldsOption(t *testing.T) {
	k := newKey(t, 1024, "example.com", "sel")
	c := Choose(Candidates([]byte(testHeader), ""), Keys{k}, func(string) []Options { return []Options{{"h": "From:From:Subject"}} }, nil, time.Now())
	sig, err := c.Sign([]byte(testHeader), strings.NewReader(testHeader+"\r\n"+testBody), defaultSigned())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(sig), ""), "h=subject:from:from;") {
		t.Errorf("signature %s", sig)
	}
}

func TestCandidates(t *testing.T) {
	h := "From: a@example.com, b@example.org\r\nSender: s@example.net\r\n" +
		"Resent-Date: x\r\nResent-From: r1@one.example\r\nResent-Sender: rs1@one.example\r\n" +
		"Resent-Date: y\r\nResent-From: r2@two.example\r\n"
	var got []string
	for _, c := range Candidates([]byte(h), "env@example.com") {
		got = append(got, c.Src+":"+c.Addr)
	}
	want := "From:a@example.com From:b@example.org Resent-From:r1@one.example Resent-Sender:rs1@one.example Resent-From:r2@two.example Sender:s@example.net mail_from:env@example.com"
	if strings.Join(got, " ") != want {
		t.Errorf("candidates %q,\nwant %q", strings.Join(got, " "), want)
	}
}

func TestChooseOptions(t *testing.T) {
	k1 := newKey(t, 1024, "example.com", "s1")
	k2 := newKey(t, 1024, "example.com", "s2")
	rx := time.Unix(1_800_000_000, 0)
	opts := func(addr string) []Options {
		if strings.HasSuffix(addr, "@sub.example.com") {
			return []Options{{"d": "example.com", "s": "s2", "ttl": "600"}, {"c": "simple/simple", "s": "s1"}}
		}
		return nil
	}
	c := Choose([]Candidate{{"x@other.example", "From"}, {"y@sub.example.com", "mail_from"}}, Keys{k1, k2}, opts, nil, rx)
	if c.Key != k2 || c.Identity != "@sub.example.com" || c.HeaderCanon != "simple" || !c.Expire.Equal(rx.Add(600*time.Second)) || c.Author {
		t.Errorf("choice %+v", c)
	}
	if got, want := c.LogOptions(), "a=>rsa-sha256, c=>simple/simple, d=>example.com, i=>@sub.example.com, s=>s2, ttl=>600, x=>1800000600"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	c = Choose([]Candidate{{"x@other.example", "From"}}, Keys{k1}, opts, nil, rx)
	if c.Key != nil || c.Reason != "no applicable private key for domains other.example" {
		t.Errorf("choice %+v", c)
	}
	c = Choose([]Candidate{{"x@example.com", "From"}}, Keys{k1}, opts, func(d, i string) bool { return d == "example.com" }, rx)
	if c.Key != nil || c.Reason != "already signed by domain example.com" {
		t.Errorf("choice %+v", c)
	}
}

// opendkimSign signs header+body with opendkim in test mode and returns the signed message;
// ttl > 0 adds x= that many seconds after t=.
func opendkimSign(t *testing.T, keyFile, selector, header, body string, ttl int) string {
	t.Helper()
	bin := testenv.RequireProgram(t, "opendkim")
	dir := t.TempDir()
	conf := "Mode s\nSyslog no\nRequireSafeKeys false\nDomain example.com\nSelector " + selector + "\nSignatureAlgorithm rsa-sha256\nCanonicalization relaxed/simple\nKeyFile " + keyFile + "\n"
	if ttl > 0 {
		conf += "SignatureTTL " + strconv.Itoa(ttl) + "\n"
	}
	write(t, filepath.Join(dir, "s.conf"), conf)
	write(t, filepath.Join(dir, "msg"), header+"\r\n"+body)
	out, err := exec.Command(bin, "-x", filepath.Join(dir, "s.conf"), "-t", filepath.Join(dir, "msg")).Output()
	if err != nil {
		t.Fatalf("opendkim: %v: %s", err, out)
	}
	sig := string(out[bytes.Index(out, []byte("DKIM-Signature:")):])
	sig = strings.ReplaceAll(strings.ReplaceAll(strings.TrimRight(sig, "\r\n"), "\r\n", "\n"), "\n", "\r\n") + "\r\n"
	return sig + header + "\r\n" + body
}

// arField verifies msg through the test DNS server and returns our Authentication-Results.
func arField(t *testing.T, dns *testenv.DNS, msg string, rx time.Time) string {
	t.Helper()
	header, _, _ := strings.Cut(msg, "\r\n\r\n")
	sigs, err := Verify(context.Background(), []byte(header+"\r\n"), strings.NewReader(msg), NewResolver(dns.Addr, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return AuthResultsField("mx.example.com", sigs, rx)
}

func TestVerifyOpendkimSigned(t *testing.T) {
	dns := testenv.StartDNS(t)
	k := newKey(t, 2048, "example.com", "sel")
	dns.SetTXT("sel._domainkey.example.com", k.Record())
	now := time.Now()

	msg := opendkimSign(t, k.File, "sel", testHeader, testBody, 0)
	if got, want := arField(t, dns, msg, now), "Authentication-Results: mx.example.com (amavis); dkim=pass (2048-bit key)\r\n header.d=example.com\r\n"; got != want {
		t.Errorf("pass:\n%q, want\n%q", got, want)
	}
	if got, want := arField(t, dns, tamper(msg), now), "Authentication-Results: mx.example.com (amavis); dkim=fail (2048-bit key)\r\n reason=\"fail (body has been altered)\" header.d=example.com\r\n"; got != want {
		t.Errorf("tampered:\n%q, want\n%q", got, want)
	}
	changedSubject := strings.Replace(msg, "Subject: quarterly", "Subject: yearly", 1)
	if got, want := arField(t, dns, changedSubject, now), "Authentication-Results: mx.example.com (amavis); dkim=fail (2048-bit key)\r\n reason=\"fail (message has been altered)\" header.d=example.com\r\n"; got != want {
		t.Errorf("header changed:\n%q, want\n%q", got, want)
	}

	// a signature that was good at verification but had expired when the mail was received
	// (Amavis::DKIM's "good, but expired")
	ttlMsg := opendkimSign(t, k.File, "sel", testHeader, testBody, 3600)
	if got, want := arField(t, dns, ttlMsg, now.Add(2*time.Hour)), "Authentication-Results: mx.example.com (amavis); dkim=fail (2048-bit key)\r\n reason=\"fail (good, but expired)\" header.d=example.com\r\n"; got != want {
		t.Errorf("expired after reception:\n%q, want\n%q", got, want)
	}
	// a signature already expired when verified: Mail::DKIM's "invalid (signature is expired)",
	// which amavis reports as neutral
	expired := opendkimSign(t, k.File, "sel", testHeader, testBody, 1)
	x := parseSig(expired[len("DKIM-Signature:"):strings.Index(expired, "\r\nFrom:")]).Expire
	for !time.Now().After(x.Add(time.Second)) { // x= has second granularity
		time.Sleep(100 * time.Millisecond)
	}
	if got, want := arField(t, dns, expired, time.Now()), "Authentication-Results: mx.example.com (amavis); dkim=neutral (2048-bit key)\r\n reason=\"invalid (signature is expired)\" header.d=example.com\r\n"; got != want {
		t.Errorf("expired:\n%q, want\n%q", got, want)
	}
}

func TestVerifyShortKeyAndDNSFailures(t *testing.T) {
	dns := testenv.StartDNS(t)
	k := newKey(t, 1024, "example.com", "sel")
	msg := opendkimSign(t, k.File, "sel", testHeader, testBody, 0)
	now := time.Now()

	// amavis reports a 1024-bit key's signature as it is; dkim_minimum_key_bits only keeps it
	// from choosing a policy bank (logged by the daemon)
	dns.SetTXT("sel._domainkey.example.com", k.Record())
	if got, want := arField(t, dns, msg, now), "Authentication-Results: mx.example.com (amavis); dkim=pass (1024-bit key)\r\n header.d=example.com\r\n"; got != want {
		t.Errorf("1024-bit:\n%q, want\n%q", got, want)
	}
	dns2 := testenv.StartDNS(t)
	if got, want := arField(t, dns2, msg, now), "Authentication-Results: mx.example.com (amavis); dkim=neutral\r\n reason=\"invalid (public key: not available)\" header.d=example.com\r\n"; got != want {
		t.Errorf("no key:\n%q, want\n%q", got, want)
	}
	dns2.Silence("sel._domainkey.example.com")
	if got, want := arField(t, dns2, msg, now), "Authentication-Results: mx.example.com (amavis); dkim=temperror\r\n reason=\"temperror (public key: DNS error: query timed out)\"\r\n header.d=example.com\r\n"; got != want {
		t.Errorf("DNS timeout:\n%q, want\n%q", got, want)
	}
}

func TestTwoSignaturesHeaderB(t *testing.T) {
	dns := testenv.StartDNS(t)
	k := newKey(t, 2048, "example.com", "sel")
	dns.SetTXT("sel._domainkey.example.com", k.Record())
	once := opendkimSign(t, k.File, "sel", testHeader, testBody, 0)
	h, b, _ := strings.Cut(once, "\r\n\r\n")
	twice := opendkimSign(t, k.File, "sel", h+"\r\n", b, 0)
	got := arField(t, dns, twice, time.Now())
	re := regexp.MustCompile(`^Authentication-Results: mx\.example\.com \(amavis\); dkim=pass \(2048-bit key\)\r\n header\.d=example\.com header\.b="[A-Za-z0-9+/]{8}"; dkim=pass \(2048-bit key\)\r\n header\.d=example\.com header\.b="[A-Za-z0-9+/]{8}"\r\n$`)
	if !re.MatchString(got) {
		t.Errorf("two signatures:\n%q", got)
	}
}

func TestAuthServID(t *testing.T) {
	for body, want := range map[string]string{
		" mx.example.com (amavis); dkim=pass":    "mx.example.com",
		" (comment) mx.example.com/1; spf=pass":  "mx.example.com",
		" mx.example.com; none":                  "mx.example.com",
		" ;dkim=pass":                            "",
		"\r\n\tother.example (x);\r\n dkim=fail": "other.example",
	} {
		if got, ok := AuthServID(body); got != want || ok != (want != "") {
			t.Errorf("AuthServID(%q) = %q, %v; want %q", body, got, ok, want)
		}
	}
}

func BenchmarkSign2KB(b *testing.B) {
	file := filepath.Join(b.TempDir(), "k.pem")
	if err := GenRSA(file, 2048); err != nil {
		b.Fatal(err)
	}
	k, err := LoadKey("example.com", "sel", file, nil)
	if err != nil {
		b.Fatal(err)
	}
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do.\r\n", 2048/66)
	msg := testHeader + "\r\n" + body
	c := Choose(Candidates([]byte(testHeader), ""), Keys{k}, func(string) []Options { return nil }, nil, time.Now())
	signed := defaultSigned()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Sign([]byte(testHeader), strings.NewReader(msg), signed); err != nil {
			b.Fatal(err)
		}
	}
}

// mailDKIM verifies msg with Perl's Mail::DKIM (which amavis uses), asking the test's DNS server,
// and returns per signature "result|details|key bits" as amavis sees them.
func mailDKIM(t *testing.T, dns *testenv.DNS, msg string) []string {
	t.Helper()
	if err := exec.Command("perl", "-MMail::DKIM::Verifier", "-e", "1").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Mail::DKIM (libmail-dkim-perl, amavisd-new's dependency) is needed: %v", err)
		}
		t.Skipf("Mail::DKIM not installed: %v", err)
	}
	host, port, _ := strings.Cut(dns.Addr, ":")
	script := `use strict; use Mail::DKIM::Verifier; use Mail::DKIM::DNS; use Net::DNS::Resolver;
my $res = Net::DNS::Resolver->new(nameservers => [$ARGV[0]], port => $ARGV[1], udp_timeout => 2, retry => 1, defnames => 0);
Mail::DKIM::DNS::resolver($res);
local $/; my $msg = <STDIN>;
my $v = Mail::DKIM::Verifier->new; $v->PRINT($msg); $v->CLOSE;
for my $s ($v->signatures) {
  my $pk = eval { $s->get_public_key };
  my $bits = $pk && $pk->cork ? $pk->cork->size * 8 : 0;
  my $d = $s->result_detail; my $r = $s->result;
  # Mail::DKIM ends "public key: not available" with a newline, which amavis would write
  # escaped into its field; we leave it out
  $d =~ s/\n\)$/)/;
  $d =~ s/^\Q$r\E(?: \((.*)\))?$/$1/;
  print join('|', $r, $d, $bits), "\n";
}`
	cmd := exec.Command("perl", "-e", script, host, port)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("perl Mail::DKIM: %v: %s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestVerifyAsMailDKIM: for the same messages and keys, our result, details and key size per
// signature are Mail::DKIM's, which amavis turns into its Authentication-Results text.
func TestVerifyAsMailDKIM(t *testing.T) {
	dns := testenv.StartDNS(t)
	k := newKey(t, 2048, "example.com", "sel")
	dns.SetTXT("sel._domainkey.example.com", k.Record())
	k1024 := newKey(t, 1024, "example.com", "old")
	dns.SetTXT("old._domainkey.example.com", k1024.Record())
	unpublished := newKey(t, 1024, "example.com", "gone")

	signed := opendkimSign(t, k.File, "sel", testHeader, testBody, 0)
	expired := opendkimSign(t, k.File, "sel", testHeader, testBody, 1)
	x := parseSig(expired[len("DKIM-Signature:"):strings.Index(expired, "\r\nFrom:")]).Expire
	cases := map[string]string{
		"pass":           signed,
		"body changed":   tamper(signed),
		"header changed": strings.Replace(signed, "Subject: quarterly", "Subject: yearly", 1),
		"1024-bit":       opendkimSign(t, k1024.File, "old", testHeader, testBody, 0),
		"no key":         opendkimSign(t, unpublished.File, "gone", testHeader, testBody, 0),
		"wrong key":      opendkimSign(t, newKey(t, 2048, "example.com", "x").File, "sel", testHeader, testBody, 0),
		"shorter key":    opendkimSign(t, k1024.File, "sel", testHeader, testBody, 0),
		"expired":        expired,
	}
	for !time.Now().After(x.Add(time.Second)) {
		time.Sleep(100 * time.Millisecond) // until the expired signature's x= has passed
	}
	for name, msg := range cases {
		header, _, _ := strings.Cut(msg, "\r\n\r\n")
		sigs, err := Verify(context.Background(), []byte(header+"\r\n"), strings.NewReader(msg), NewResolver(dns.Addr, 2*time.Second))
		if err != nil || len(sigs) != 1 {
			t.Fatalf("%s: %v, %d signatures", name, err, len(sigs))
		}
		ours := sigs[0].Result + "|" + sigs[0].Details + "|" + strconv.Itoa(sigs[0].KeyBits)
		if perl := mailDKIM(t, dns, msg); len(perl) != 1 || perl[0] != ours {
			t.Errorf("%s: Mail::DKIM says %q, we say %q", name, perl, ours)
		}
	}
}
