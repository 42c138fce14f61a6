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
	"time"

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
	home := filepath.Join(dir, "perl")
	for _, d := range []string{home, filepath.Join(home, "tmp"), filepath.Join(home, "db")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, 65534, 65534)
	}
	confFile := filepath.Join(dir, "amavisd.conf")
	var perlAddr string
	for attempt := 1; perlAddr == ""; attempt++ {
		perlPort := testenv.FreePort(t)
		conf := fmt.Sprintf(`use strict;
$MYHOME = '%s';
$TEMPBASE = "$MYHOME/tmp";
$ENV{TMPDIR} = $TEMPBASE;
$db_home = "$MYHOME/db";
$lock_file = "$MYHOME/amavisd.lock";
$pid_file = "$MYHOME/amavisd.pid";
$daemon_user = 'nobody';
$daemon_group = 'nogroup';
$myhostname = 'perl.example.com';
$mydomain = 'example.com';
$inet_socket_port = %d;
$inet_socket_bind = '127.0.0.1';
$forward_method = 'smtp:[127.0.0.1]:%s';
$notify_method = $forward_method;
$max_servers = 1;
$max_requests = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavisd.log";
$log_level = 2;
$enable_db = 0;
@bypass_spam_checks_maps = (1);
@bypass_virus_checks_maps = (1);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
@av_scanners = ();
@av_scanners_backup = ();
$enable_dkim_verification = 0;
$enable_dkim_signing = 1;
$originating = 1;
dkim_key('example.org', 'sel', '%s');
1;
`, home, perlPort, hop.Port(), keyFile)
		if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var out string
		perlAddr, out = startPerlAmavisd(t, perl, confFile, home, perlPort)
		switch {
		case perlAddr == "" && attempt == 3:
			t.Fatalf("Perl amavisd did not start:\n%s", out)
		case perlAddr == "":
			t.Logf("Perl amavisd did not start (attempt %d), again on a new port:\n%s", attempt, out)
		}
	}

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

// startPerlAmavisd runs Debian's amavisd-new in the foreground and waits for its greeting
// (Perl compiles its modules first); it returns the address, or "" and what it said when it
// exited or did not greet (another process may have taken the port in between).
func startPerlAmavisd(t *testing.T, perl, confFile, home string, port int) (addr, said string) {
	cmd := exec.Command(perl, "-c", confFile, "foreground")
	outFile := filepath.Join(home, "perl.out")
	out, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		<-exited
	}
	addr = "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if line, err := testenv.Greeting(addr); err == nil && strings.HasPrefix(line, "220 ") {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					l, _ := os.ReadFile(filepath.Join(home, "amavisd.log"))
					t.Logf("Perl amavisd log:\n%s", l)
				}
			})
			return addr, ""
		}
		select {
		case <-exited:
			deadline = time.Time{}
		default:
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(outFile)
			l, _ := os.ReadFile(filepath.Join(home, "amavisd.log"))
			return "", fmt.Sprintf("%s: %s\n%s", cmd.ProcessState, b, l)
		}
		time.Sleep(200 * time.Millisecond) // polling the greeting, not a fixed wait
	}
}
