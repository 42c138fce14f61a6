package e2e

import (
	"fmt"
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

// debianUser is the 50-user a site adds to Debian's stock conf.d: the virus block of
// 15-content_filter_mode switched on, its domains, and this test's paths, ports and scanner.
const debianUser = `use strict;
@bypass_virus_checks_maps = (
   \%%bypass_virus_checks, \@bypass_virus_checks_acl, \$bypass_virus_checks_re);
@local_domains_acl = ( ".example.com" );
$MYHOME = '%[1]s';
$TEMPBASE = "$MYHOME/tmp";
$QUARANTINEDIR = "$MYHOME/virusmails";
$pid_file = "$MYHOME/amavisd.pid";
$unix_socketname = undef;
$DO_SYSLOG = 0;
$LOGFILE = '%[2]s';
$log_level = 2;
$myhostname = '%[3]s';
$mydomain = 'example.com';
$daemon_user = 'nobody';
$daemon_group = 'nogroup';
$inet_socket_port = %[4]d;
$inet_socket_bind = '127.0.0.1';
$forward_method = 'smtp:[127.0.0.1]:%[5]d';
$virus_admin = undef;
@av_scanners = (
  ['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {}\n", 'clamd:%[6]s'],
    qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
1;  # ensure a defined return
`

// outcome is what Postfix and its mailbox show of the three messages.
type outcome struct {
	cleanDelivered bool
	eicarReply     string // our reply as Postfix logs it, with the id removed
	bannedReply    string
	quarantined    bool // the EICAR message is in QUARANTINEDIR
}

// runDebianPerl starts Postfix, clamd and our daemon on Debian's stock conf.d with a 50-user,
// read as Perl or, with asTOML, as the TOML showconfig prints of it, and sends a clean
// message, EICAR and a message with a .exe attachment.
func runDebianPerl(t *testing.T, clamd *testenv.Clamd, asTOML bool) outcome {
	amPort := testenv.FreePort(t)
	pf := testenv.StartPostfix(t, testenv.PostfixOptions{FilterPort: amPort, Transport: "lmtp", MaxProc: 2})
	fwd, _ := strconv.Atoi(portOf(pf.ForwardAddr))
	am := newDaemon(t, daemonConfig{Port: amPort, ForwardPort: fwd})
	home := filepath.Join(am.Dir, "home")
	for _, d := range []string{filepath.Join(home, "virusmails")} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	// Debian's order: run-parts of /usr/share/amavis/conf.d, then /etc/amavis/conf.d, here in
	// one directory whose names keep that order; 50-user is the site's.
	confd := filepath.Join(am.Dir, "conf.d")
	if err := os.Mkdir(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, dir := range []string{"/usr/share/amavis/conf.d", "/etc/amavis/conf.d"} {
		out, err := exec.Command("run-parts", "--list", dir).Output()
		if err != nil {
			t.Skipf("Debian's amavisd-new configuration is not installed: %v", err)
		}
		for _, f := range strings.Fields(string(out)) {
			if filepath.Base(f) == "50-user" {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(f)
			if i == 0 {
				name = "00-usr-" + name
			}
			if err := os.WriteFile(filepath.Join(confd, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	user := fmt.Sprintf(debianUser, home, am.LogFile, daemonHostname, amPort, fwd, clamd.TCPAddr)
	if err := os.WriteFile(filepath.Join(confd, "50-user"), []byte(user), 0o644); err != nil {
		t.Fatal(err)
	}
	am.Config = confd
	if asTOML {
		shown, err := exec.Command(am.bin, "-c", confd, "showconfig").Output()
		if err != nil {
			t.Fatalf("showconfig: %v", err)
		}
		am.Config = filepath.Join(am.Dir, "equivalent.toml")
		if err := os.WriteFile(am.Config, shown, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	am.start()

	exe := "From: Sender <sender@example.org>\r\nTo: <rcpt@" + testenv.PostfixDomain + ">\r\nSubject: invoice\r\n" +
		"Message-ID: <exe@e2e>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\n" +
		"Content-Disposition: attachment; filename=\"invoice.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAA\r\n--b--\r\n"
	eicarQID, err := pf.Submit(sender, rcpt, message("<eicar@e2e>", "eicar", testenv.EICAR+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	exeQID, err := pf.Submit(sender, rcpt, []byte(exe))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.Submit(sender, rcpt, message("<clean@e2e>", "clean", "nothing to see\n")); err != nil {
		t.Fatal(err)
	}
	feed := func(id string) string {
		l := pf.WaitLog(t, regexp.MustCompile(`postfix/amavisfeed/lmtp\[\d+\]: `+id+`: to=<rcpt@example\.com>, .*status=\w+ \((.*)\)$`), 30*time.Second)
		return regexp.MustCompile(`id=[0-9-]+`).ReplaceAllString(l[strings.Index(l, "status="):], "id=ID")
	}
	var o outcome
	o.eicarReply = feed(eicarQID)
	o.bannedReply = feed(exeQID)
	msgs := pf.WaitMessages(t, 1, 30*time.Second)
	o.cleanDelivered = len(msgs) == 1 && msgs[0].MessageID == "<clean@e2e>"
	q, _ := filepath.Glob(filepath.Join(home, "virusmails", "*", "virus-*"))
	o.quarantined = len(q) == 1
	return o
}

// TestDebianPerlConfigEndToEnd: Debian's Perl configuration with a site's 50-user drives the
// daemon behind a real Postfix (clean delivered, EICAR discarded and quarantined, a .exe
// attachment banned), and the TOML that showconfig prints of it does exactly the same.
func TestDebianPerlConfigEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (the daemon switches to nobody)")
	}
	clamd := testenv.StartClamd(t)
	perl := runDebianPerl(t, clamd, false)
	want := outcome{
		cleanDelivered: true,
		eicarReply:     "status=sent (250 2.7.0 Ok, discarded, id=ID - INFECTED: " + clamd.VirusName + ")",
		bannedReply:    `status=sent (250 2.7.0 Ok, discarded, id=ID - BANNED: application/octet-stream,.exe,.exe-ms,invoice.exe)`,
		quarantined:    true,
	}
	if perl != want {
		t.Errorf("with Debian's Perl configuration:\n got %+v\nwant %+v", perl, want)
	}
	toml := runDebianPerl(t, clamd, true)
	if toml != perl {
		t.Errorf("the equivalent TOML behaves differently:\n TOML %+v\n Perl %+v", toml, perl)
	}
}
