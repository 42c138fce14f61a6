// Package sidebyside runs Debian's amavisd-new 2.13 and our daemon side by side on private
// ports with equivalent configurations (Debian's defaults and en_US templates, a private
// clamd, a recording next hop offering DSN each), sends both the same messages and compares
// what each answered, forwarded, sent as notices and DSNs, quarantined, released and logged,
// after normalising ids, times, ports and what Perl writes in no fixed order.
//
//	SIDEBYSIDE_REPORT=/tmp/sbs.txt go test ./tests/sidebyside
//
// writes the differences left; the test fails on those aspects mustMatch names.
package sidebyside

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// daemonUser is the user both daemons switch to: the amavisd-new package creates it.
const daemonUser = "amavis"

const (
	myhostname = "amavis.example.com"
	virusAdmin = "virusalert@example.com"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// oursBinary builds cmd/amavisd once per test run.
func oursBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sidebyside-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "amavisd")
		if out, err := exec.Command("go", "build", "-o", binPath, "amavisgo/cmd/amavisd").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/amavisd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// side is one running daemon with its own next hop.
type side struct {
	name    string // "amavis" or "ours"
	addr    string // its SMTP listener
	port    string
	next    *smtptest.NextHop
	home    string // MYHOME
	logFile string
	sock    string // the AM.PDP socket
	cmd     *exec.Cmd
}

// settings are what the two configurations share.
type settings struct {
	destiny string // final_virus_destiny and final_banned_destiny, "D_PASS" ...
}

// badHeaderDestiny bounces bad headers in the D_BOUNCE pair (Debian's template-dsn.txt then
// speaks) and passes them elsewhere, as Debian does.
func (s settings) badHeaderDestiny() string {
	if s.destiny == "D_BOUNCE" {
		return "D_BOUNCE"
	}
	return "D_PASS"
}

// homeDir creates MYHOME with tmp/ and virusmails/ owned by the daemon user, reachable by it.
func homeDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	u, err := user.Lookup(daemonUser)
	if err != nil {
		t.Skipf("user %s (package amavisd-new): %v", daemonUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// The configuration goes in dir, which the daemon user must not be able to write.
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(home, "tmp"), filepath.Join(home, "db"), filepath.Join(home, "virusmails")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

// perlConf is Debian's amavisd.conf reduced to one private file: Debian's defaults
// (20-debian_defaults), its templates (30-template_localization) and clamd; AM.PDP on a Unix
// socket without authentication is StartPerlAmavisd's.
func perlConf(clamdAddr string, s settings) string {
	return testenv.PerlPath + testenv.PerlClamd(clamdAddr) + fmt.Sprintf(`$gzip = 'gzip'; $bzip2 = 'bzip2'; $lzop = 'lzop';
$cabextract = 'cabextract'; $uncompress = ['uncompress', 'gzip -d', 'zcat'];
$unrar = ['unrar-free']; $pax = 'pax'; $cpio = 'cpio'; $ar = 'ar';
$QUARANTINEDIR = "$MYHOME/virusmails";
$quarantine_subdir_levels = 1;
@local_domains_acl = ( ".$mydomain" );
$log_recip_templ = undef;
@bypass_spam_checks_maps = (1);
$final_virus_destiny = %[1]s;
$final_banned_destiny = %[1]s;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = %[3]s;
$virus_admin = '%[2]s';
$warnvirusrecip = 1;
$X_HEADER_LINE = "Debian $myproduct_name at $mydomain";
@viruses_that_fake_sender_maps = (new_RE([qr'\bEICAR\b'i => 0], [qr/.*/ => 1]));
$banned_filename_re = new_RE(
  qr'\.[^./]*\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\.?$'i,
  qr'.\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i,
);
read_l10n_templates('en_US', '/etc/amavis');
`, s.destiny, virusAdmin, s.badHeaderDestiny())
}

// oursConf is perlConf in our TOML, pointing the notify_*_templ settings at the files
// read_l10n_templates reads.
func oursConf(home string, port int, next, clamdSock string, s settings) string {
	q := strconv.Quote
	l10n := "/etc/amavis/en_US/"
	return strings.Join([]string{
		"MYHOME = " + q(home),
		"TEMPBASE = " + q(home+"/tmp"),
		"QUARANTINEDIR = " + q(home+"/virusmails"),
		"quarantine_subdir_levels = 1",
		"pid_file = " + q(home+"/amavisd.pid"),
		"daemon_user = " + q(daemonUser),
		"daemon_group = " + q(daemonUser),
		"myhostname = " + q(myhostname),
		`mydomain = "example.com"`,
		fmt.Sprintf("inet_socket_port = [%d]", port),
		`inet_socket_bind = ["127.0.0.1"]`,
		"unix_socketname = " + q(home+"/amavisd.sock"),
		`interface_policy = { SOCK = "AM.PDP-SOCK" }`,
		"forward_method = " + q("smtp:["+strings.Replace(next, ":", "]:", 1)),
		"notify_method = " + q("smtp:["+strings.Replace(next, ":", "]:", 1)),
		"max_servers = 1",
		"DO_SYSLOG = false",
		"LOGFILE = " + q(home+"/amavisd.log"),
		"log_level = 0",
		`log_recip_templ = ""`, // as the Perl side's undef
		`path = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]`,
		"final_virus_destiny = " + q(s.destiny),
		"final_banned_destiny = " + q(s.destiny),
		`final_spam_destiny = "D_PASS"`,
		"final_bad_header_destiny = " + q(s.badHeaderDestiny()),
		"virus_admin = " + q(virusAdmin),
		"warnvirusrecip = true",
		`viruses_that_fake_sender_maps = [['(?i)\bEICAR\b', false], ['.', true]]`,
		`X_HEADER_LINE = "Debian amavis at example.com"`, // $myproduct_name is "amavis" in 2.13
		"notify_sender_templ = " + q(l10n+"template-dsn.txt"),
		"notify_virus_sender_templ = " + q(l10n+"template-virus-sender.txt"),
		"notify_virus_admin_templ = " + q(l10n+"template-virus-admin.txt"),
		"notify_virus_recips_templ = " + q(l10n+"template-virus-recipient.txt"),
		"notify_spam_sender_templ = " + q(l10n+"template-spam-sender.txt"),
		"notify_spam_admin_templ = " + q(l10n+"template-spam-admin.txt"),
		"[[local_domains_maps]]",
		`acl = [".example.com"]`,
		"[[av_scanners]]",
		`name = "ClamAV-clamd"`,
		`type = "clamd"`,
		"sockets = [" + q(clamdSock) + "]",
		`query = "CONTSCAN {}\n"`,
		`clean_pattern = '\bOK$'`,
		`infected_pattern = '\bFOUND$'`,
		`names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'`,
		"[banned_rules]",
		`DEFAULT = ["qr'\\.[^./]*\\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\\.?$'i", "qr'.\\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i"]`,
		`[policy_bank."AM.PDP-SOCK"]`,
		`protocol = "AM.PDP"`,
		"auth_required_release = false",
	}, "\n") + "\n"
}

// startSide starts one daemon (Debian's amavisd or ours) with its own next hop and waits
// for its greeting.
func startSide(t *testing.T, name string, clamd *testenv.Clamd, s settings) *side {
	t.Helper()
	// the next hop offers DSN, so that ENVID, NOTIFY and ORCPT show
	sd := &side{name: name, next: smtptest.Start(t, smtptest.Options{DSN: true, RcptCode: map[string]int{refused: 550}})}
	if name == "amavis" {
		p := testenv.StartPerlAmavisd(t, testenv.PerlOptions{Hostname: myhostname, Domain: "example.com", Forward: sd.next.Addr,
			AMPDP: true, Conf: perlConf(clamd.TCPAddr, s)})
		sd.home, sd.logFile, sd.sock, sd.addr, sd.port = p.Home, p.LogFile, p.Socket, p.SMTPAddr, strconv.Itoa(p.Port)
		return sd
	}
	sd.home = homeDir(t)
	sd.logFile = filepath.Join(sd.home, "amavisd.log")
	sd.sock = filepath.Join(sd.home, "amavisd.sock")
	for attempt := 1; ; attempt++ {
		port := testenv.FreePort(t)
		sd.port = strconv.Itoa(port)
		sd.addr = net.JoinHostPort("127.0.0.1", sd.port)
		bin := oursBinary(t)
		conf := filepath.Join(filepath.Dir(sd.home), "amavisd.toml")
		os.WriteFile(conf, []byte(oursConf(sd.home, port, sd.next.Addr, clamd.TCPAddr, s)), 0o644)
		outFile := filepath.Join(filepath.Dir(sd.home), "stdout")
		f, err := os.Create(outFile)
		if err != nil {
			t.Fatal(err)
		}
		sd.cmd = exec.Command(bin, "-c", conf, "foreground")
		sd.cmd.Stdout, sd.cmd.Stderr = f, f
		if err := sd.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		exited := make(chan struct{})
		go func(c *exec.Cmd) { c.Wait(); close(exited) }(sd.cmd)
		t.Cleanup(func() {
			sd.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				sd.cmd.Process.Kill()
			}
		})
		deadline := time.Now().Add(60 * time.Second)
		for {
			select {
			case <-exited:
				b, _ := os.ReadFile(outFile)
				if attempt < 3 && strings.Contains(string(b), "in use") {
					goto again
				}
				t.Fatalf("%s exited at start:\n%s\n%s", name, b, readFile(sd.logFile))
			default:
			}
			if line, err := testenv.Greeting(sd.addr); err == nil && strings.HasPrefix(line, "220 ") && sd.listening() {
				return sd
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not greet on %s:\n%s", name, sd.addr, readFile(sd.logFile))
			}
			time.Sleep(50 * time.Millisecond)
		}
	again:
	}
}

// listening: the daemon's own log says it started (a greeting alone could come from whoever
// took the port), and its AM.PDP socket exists.
func (sd *side) listening() bool {
	if _, err := os.Stat(sd.sock); err != nil {
		return false
	}
	l := readFile(sd.logFile)
	return strings.Contains(l, "listening on") || strings.Contains(l, " amavisd-new-compatible ") || strings.Contains(l, "Net::Server: ") && strings.Contains(l, "starting")
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// logLines returns the daemon's log lines from byte offset from, without the
// "date host program[pid]: " prefix.
func (sd *side) logLines(from int) []string {
	l := readFile(sd.logFile)
	if from > len(l) {
		from = len(l)
	}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(l[from:]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "]: "); i >= 0 {
			line = line[i+3:]
		}
		out = append(out, line)
	}
	return out
}

func (sd *side) logSize() int { return len(readFile(sd.logFile)) }
