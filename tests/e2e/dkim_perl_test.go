package e2e

import (
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"amavisgo/dkim"
	"amavisgo/hdr"
	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// TestDKIMSignatureAsPerlAmavis: Debian's amavisd-new and ours sign the same originating
// message with the same key: the signatures agree in d= s= c= a= h= and bh= (b= and t= differ
// with the Received field and the time each adds), and showkeys prints the same record.
func TestDKIMSignatureAsPerlAmavis(t *testing.T) {
	t.Parallel()
	perl := testenv.RequireProgram(t, "amavisd", "/usr/sbin/amavisd")
	dir, err := os.MkdirTemp("", "amavisgo-dkim-perl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	keyFile := filepath.Join(dir, "sel.pem")
	if err := dkim.GenRSA(keyFile, 2048); err != nil {
		t.Fatal(err)
	}
	os.Chmod(keyFile, 0o644) // amavisd-new reads its configuration as daemon_user
	hop := smtptest.Start(t, smtptest.Options{})

	// Perl amavisd: the key, signing, everything else off; both daemons take the mail as
	// originating
	pa := testenv.StartPerlAmavisd(t, testenv.PerlOptions{Hostname: "perl.example.com", Domain: "example.com",
		Forward: hop.Addr, User: "nobody", Group: "nogroup", LogLevel: 2, Conf: fmt.Sprintf(`@bypass_spam_checks_maps = (1);
@bypass_virus_checks_maps = (1);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
@av_scanners = ();
$enable_dkim_signing = 1;
$originating = 1;
dkim_key('example.org', 'sel', '%s');
`, keyFile)})
	perlAddr, confFile := pa.SMTPAddr, pa.Config

	hopPort, _ := strconv.Atoi(hop.Port())
	ours := newDaemon(t, daemonConfig{Port: testenv.FreePort(t), ForwardPort: hopPort, Extra: []string{
		`enable_dkim_signing = true`, `originating = true`,
		`[[dkim_key]]`, `domain = "example.org"`, `selector = "sel"`, `key_file = "` + keyFile + `"`,
	}})
	ours.start()

	msg := "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nCc: carol@example.net\r\n" +
		"Subject: the same message\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <same@example.org>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nX-Mailer: test\r\n\r\n" +
		"same body\r\n\r\n  with blanks  \r\n\r\n"
	tags := map[string]map[string]string{}
	for _, s := range []struct{ name, addr string }{{"perl", perlAddr}, {"ours", ours.Addr}} {
		n := len(hop.Msgs())
		if err := smtp.SendMail(s.addr, nil, "alice@example.org", []string{"bob@example.net"}, []byte(msg)); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(hop.Msgs()) != n+1 {
			t.Fatalf("%s: the next hop got %d messages", s.name, len(hop.Msgs())-n)
		}
		data := hop.Msgs()[n].Data
		sig, ok := hdr.Get(data[:strings.Index(string(data), "\r\n\r\n")+2], "DKIM-Signature")
		if !ok {
			t.Fatalf("%s did not sign:\n%s", s.name, data)
		}
		tags[s.name] = map[string]string{}
		for _, kv := range strings.Split(sig, ";") {
			k, v, _ := strings.Cut(kv, "=")
			tags[s.name][strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
		}
	}
	for _, tag := range []string{"d", "s", "c", "a", "h", "bh"} {
		if p, o := tags["perl"][tag], tags["ours"][tag]; p != o || p == "" {
			t.Errorf("%s=: Perl amavisd %q, ours %q", tag, p, o)
		}
	}
	t.Logf("h=%s bh=%s", tags["ours"]["h"], tags["ours"]["bh"])

	// showkeys prints the same record in the same layout
	perlShow, err := exec.Command(perl, "-c", confFile, "showkeys").Output()
	if err != nil {
		t.Fatalf("Perl amavisd showkeys: %v", err)
	}
	ourShow, err := exec.Command(ours.bin, "-c", ours.Config, "showkeys").Output()
	if err != nil {
		t.Fatalf("our showkeys: %v", err)
	}
	if string(perlShow) != string(ourShow) || !strings.Contains(string(ourShow), "sel._domainkey.example.org.\t3600 TXT (") {
		t.Errorf("showkeys:\nPerl amavisd:\n%s\nours:\n%s", perlShow, ourShow)
	}
}
