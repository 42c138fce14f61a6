package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/dkim"
	"amavisgo/internal/testenv"
)

// TestDKIMKeyVerbs: a key from genrsa, published as showkeys prints it, is the key opendkim's
// opendkim-testkey finds in DNS, and testkeys verifies a message signed with it.
func TestDKIMKeyVerbs(t *testing.T) {
	testkey := testenv.RequireProgram(t, "opendkim-testkey")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sel.pem")
	out, err := exec.Command(amavisdBin, "genrsa", keyFile, "2048").CombinedOutput()
	if err != nil || string(out) != `Private RSA key successfully written to file "`+keyFile+`" (2048 bits, PEM format) `+"\n" {
		t.Fatalf("genrsa: %v: %q", err, out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi.Mode(), err)
	}
	if out, err := exec.Command(amavisdBin, "genrsa", keyFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "can't create file") {
		t.Errorf("genrsa over an existing file: %v: %s", err, out)
	}

	cfgFile := filepath.Join(dir, "amavisd.toml")
	text := "[[dkim_key]]\ndomain = \"example.com\"\nselector = \"sel\"\nkey_file = \"" + keyFile + "\"\n"
	if err := os.WriteFile(cfgFile, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(amavisdBin, "-c", cfgFile, "showkeys").Output()
	if err != nil {
		t.Fatalf("showkeys: %v", err)
	}
	re := regexp.MustCompile(`^; key#1 2048 bits, s=sel, d=example\.com, ` + regexp.QuoteMeta(keyFile) + "\nsel\\._domainkey\\.example\\.com\\.\t3600 TXT \\(\n  \"v=DKIM1; p=\"\n(  \"[A-Za-z0-9+/=]{1,64}\"\n)+  \"[A-Za-z0-9+/=]{1,64}\"\\)\n\n$")
	if !re.Match(out) {
		t.Fatalf("showkeys printed:\n%s", out)
	}
	// the record as a zone file's parser reads it: the quoted strings joined
	var rec strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllSubmatch(out, -1) {
		rec.Write(m[1])
	}
	dns := testenv.StartDNS(t)
	dns.SetTXT("sel._domainkey.example.com", rec.String())

	// opendkim-testkey asks DNS through libunbound, here forwarded to the test's server
	unbound := filepath.Join(dir, "unbound.conf")
	host, port, _ := strings.Cut(dns.Addr, ":")
	os.WriteFile(unbound, []byte("server:\n  do-not-query-localhost: no\nforward-zone:\n  name: \".\"\n  forward-addr: "+host+"@"+port+"\n"), 0o644)
	odconf := filepath.Join(dir, "opendkim.conf")
	os.WriteFile(odconf, []byte("ResolverConfiguration "+unbound+"\n"), 0o644)
	out, _ = exec.Command(testkey, "-x", odconf, "-d", "example.com", "-s", "sel", "-k", keyFile, "-vvv").CombinedOutput()
	if !strings.Contains(string(out), "checking key 'sel._domainkey.example.com'") || !strings.Contains(string(out), "key OK") {
		t.Errorf("opendkim-testkey:\n%s", out)
	}

	cfgText, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := conf.Parse(cfgFile, cfgText)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := verbTestkeys(c, nil, dkim.NewResolver(dns.Addr, 2*time.Second), &buf); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "TESTING#1 example.com: sel._domainkey.example.com => pass\n" {
		t.Errorf("testkeys: %q", got)
	}
	// a published key that is not ours
	other := filepath.Join(dir, "other.pem")
	if err := dkim.GenRSA(other, 1024); err != nil {
		t.Fatal(err)
	}
	ok, _ := dkim.LoadKey("example.com", "sel", other, nil)
	dns.SetTXT("sel._domainkey.example.com", ok.Record())
	buf.Reset()
	verbTestkeys(c, nil, dkim.NewResolver(dns.Addr, 2*time.Second), &buf)
	if got := buf.String(); got != "TESTING#1 example.com: sel._domainkey.example.com => fail (bad RSA signature)\n" {
		t.Errorf("testkeys with another key published: %q", got)
	}
	out, _ = exec.Command(testkey, "-x", odconf, "-d", "example.com", "-s", "sel", "-k", keyFile, "-vvv").CombinedOutput()
	if strings.Contains(string(out), "key OK") {
		t.Errorf("opendkim-testkey with another key published:\n%s", out)
	}
}
