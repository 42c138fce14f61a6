package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PerlAmavisd is Debian's Perl amavisd-new (/usr/sbin/amavisd) run for a test as the reference
// our daemon is compared with, in its own MYHOME.
type PerlAmavisd struct {
	Home     string // MYHOME, owned by the daemon user; TEMPBASE is Home/tmp, Home/virusmails exists
	Socket   string // the AM.PDP socket (unix_socketname, bank AM.PDP-SOCK) when PerlOptions.AMPDP
	SMTPAddr string // its SMTP listener, 127.0.0.1:port
	Port     int    // SMTPAddr's port
	LogFile  string // LOGFILE
	Config   string // the amavisd.conf it runs with
}

// PerlOptions are what a test chooses of the Perl daemon's configuration. The starter writes
// MYHOME and its files, the user, $myhostname and $mydomain, the SMTP listener on a free
// loopback port, forward_method and notify_method, max_servers, no syslog but LOGFILE at
// log_level, no database, no DKIM verification and no backup scanner; Conf adds the rest.
type PerlOptions struct {
	Hostname, Domain string // $myhostname, $mydomain
	Forward          string // host:port of $forward_method and $notify_method
	User, Group      string // $daemon_user and $daemon_group; "" is amavis (Debian's package creates it)
	MaxServers       int    // $max_servers; 0 is 1
	LogLevel         int    // $log_level
	AMPDP            bool   // AM.PDP on the Unix socket Home/amavisd.sock without authentication
	Conf             string // more lines of Perl configuration, after the starter's
	// Modules are Perl modules Conf needs (DBD::MariaDB, Net::LDAP): the test is skipped
	// without them.
	Modules []string
}

// PerlPath is Debian's PATH for amavisd and its file(1), as Debian's configuration sets them.
const PerlPath = `$ENV{PATH} = $path = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin';
$file = 'file';
`

// PerlClamd is the av_scanners entry of a clamd at addr (a Unix socket, or host:port for TCP)
// that amavis asks with CONTSCAN, as Debian's amavisd.conf does: clamd reads amavis's files.
func PerlClamd(addr string) string {
	if host, port, err := net.SplitHostPort(addr); err == nil {
		addr = "[" + host + "]:" + port
	}
	return fmt.Sprintf(`@av_scanners = (['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {}\n", "%s"],
  qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ]);
`, addr)
}

// PerlReference is the reference configuration of the logwatch and milter comparisons:
// Debian's banned rules and destinies, no spam checks, and clamd at addr (host:port) streamed
// the files (INSTREAM), since the test's clamd cannot read amavis's directories nor amavis
// reach that clamd's private Unix socket.
func PerlReference(clamdAddr string) string {
	return PerlPath + fmt.Sprintf(`@local_domains_acl = ( ".$mydomain" );
$QUARANTINEDIR = "$MYHOME/virusmails";
@bypass_spam_checks_maps = (1);
$final_virus_destiny = D_DISCARD;
$final_banned_destiny = D_DISCARD;
@av_scanners = (['ClamAV-clamd', \&ask_daemon, ["*", "clamd:%s"],
  qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ]);
$banned_filename_re = new_RE(
  qr'\.[^./]*\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\.?$'i,
  qr'\{[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\}?$'i,
  qr'^application/x-msdownload$'i,
  qr'^application/x-msdos-program$'i,
  qr'^application/hta$'i,
  qr'.\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i,
  qr'^\.(exe-ms)$',
);
`, clamdAddr)
}

// StartPerlAmavisd starts the daemon (as root: it switches to the daemon user) and waits until
// it greets on its SMTP port, its log says it started and, with AMPDP, its socket answers; a
// port another process took in between is retried on a new one. It is stopped when the test
// ends, and its log shown if the test failed.
func StartPerlAmavisd(t testing.TB, opt PerlOptions) *PerlAmavisd {
	t.Helper()
	bin := RequireProgram(t, "amavisd (Debian's amavisd-new)", "/usr/sbin/amavisd")
	for _, m := range opt.Modules {
		if err := exec.Command("perl", "-M"+m, "-e1").Run(); err != nil {
			t.Skipf("testenv: Perl's %s is not installed", m)
		}
	}
	if opt.User == "" {
		opt.User, opt.Group = "amavis", "amavis"
	}
	if opt.MaxServers == 0 {
		opt.MaxServers = 1
	}
	u, err := user.Lookup(opt.User)
	if err != nil {
		t.Skipf("testenv: no user %s (Debian's amavisd-new package creates amavis): %v", opt.User, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if g, err := user.LookupGroup(opt.Group); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	// amavis refuses a configuration in a directory its user may write: dir is root's
	dir, err := os.MkdirTemp("", "perl-amavis")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &PerlAmavisd{Home: filepath.Join(dir, "home"), Config: filepath.Join(dir, "amavisd.conf")}
	p.LogFile = filepath.Join(p.Home, "amavisd.log")
	if opt.AMPDP {
		p.Socket = filepath.Join(p.Home, "amavisd.sock")
	}
	for _, d := range []string{p.Home, filepath.Join(p.Home, "tmp"), filepath.Join(p.Home, "db"), filepath.Join(p.Home, "virusmails")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, uid, gid)
	}
	fwdHost, fwdPort, _ := net.SplitHostPort(opt.Forward)
	outFile := filepath.Join(dir, "amavisd.out")
	for attempt := 1; ; attempt++ {
		p.Port = FreePort(t)
		p.SMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port))
		text := fmt.Sprintf(`use strict;
$MYHOME = '%s';
$TEMPBASE = "$MYHOME/tmp";
$ENV{TMPDIR} = $TEMPBASE;
$db_home = "$MYHOME/db";
$lock_file = "$MYHOME/amavisd.lock";
$pid_file = "$MYHOME/amavisd.pid";
$daemon_user = '%s';
$daemon_group = '%s';
$myhostname = '%s';
$mydomain = '%s';
$inet_socket_port = %d;
$inet_socket_bind = '127.0.0.1';
$forward_method = 'smtp:[%s]:%s';
$notify_method = $forward_method;
$max_servers = %d;
$max_requests = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavisd.log";
$log_level = %d;
$enable_db = 0;
$enable_dkim_verification = 0;
@av_scanners_backup = ();
`, p.Home, opt.User, opt.Group, opt.Hostname, opt.Domain, p.Port, fwdHost, fwdPort, opt.MaxServers, opt.LogLevel)
		if opt.AMPDP {
			text += `$unix_socketname = "$MYHOME/amavisd.sock";
$interface_policy{'SOCK'} = 'AM.PDP-SOCK';
$policy_bank{'AM.PDP-SOCK'} = { protocol => 'AM.PDP', auth_required_release => 0 };
`
		}
		text += opt.Conf + "1;\n"
		if err := os.WriteFile(p.Config, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if p.start(t, bin, outFile) {
			return p
		}
		if b, _ := os.ReadFile(outFile); attempt == 3 || !strings.Contains(string(b), "in use") {
			t.Fatalf("testenv: Perl amavisd exited at start:\n%s\n%s", b, readTail(p.LogFile))
		}
		os.Remove(p.LogFile)
	}
}

// start runs the daemon and waits for it; false when it exited before it was ready.
func (p *PerlAmavisd) start(t testing.TB, bin, outFile string) bool {
	out, err := os.Create(outFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", p.Config, "foreground")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // the group of the daemon this test started
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(outFile)
			t.Logf("Perl amavisd printed:\n%s\nits log:\n%s", b, readTail(p.LogFile))
		}
	})
	// Perl compiles its modules for seconds before it listens
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if p.ready() {
			return true
		}
		select {
		case <-exited:
			return false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: Perl amavisd does not greet on %s:\n%s", p.SMTPAddr, readTail(p.LogFile))
		}
	}
}

// ready: it greets, its own log says it started (a greeting alone could come from whoever took
// the port) and its AM.PDP socket answers.
func (p *PerlAmavisd) ready() bool {
	if g, err := Greeting(p.SMTPAddr); err != nil || !strings.HasPrefix(g, "220 ") {
		return false
	}
	if l, _ := os.ReadFile(p.LogFile); !strings.Contains(string(l), "starting. ") && !strings.Contains(string(l), "Net::Server: ") {
		return false
	}
	if p.Socket != "" {
		c, err := net.Dial("unix", p.Socket)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}
