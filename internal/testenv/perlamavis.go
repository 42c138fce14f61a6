package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// PerlAmavisd is Debian's Perl amavisd-new (/usr/sbin/amavisd) run for a test as the reference
// our daemon is compared with: Debian's defaults, Debian's AM.PDP socket and bank in its own
// MYHOME, clamd over INSTREAM, Debian's banned rules, LOGFILE at log_level 0.
type PerlAmavisd struct {
	Home     string // MYHOME, owned by the amavis user; TEMPBASE is Home/tmp
	Socket   string // the AM.PDP socket (unix_socketname), bank AM.PDP-SOCK
	SMTPAddr string // its SMTP listener, 127.0.0.1:port
	LogFile  string
}

// PerlOptions are what a test chooses of the Perl daemon's configuration.
type PerlOptions struct {
	ClamdAddr        string // host:port of a clamd (INSTREAM: clamd need not read amavis's files)
	Hostname, Domain string // $myhostname, $mydomain (its local domains are .$mydomain)
	ForwardPort      int    // $forward_method and $notify_method: smtp:[127.0.0.1]:ForwardPort
}

// StartPerlAmavisd starts the daemon (as root: it switches to the amavis user that Debian's
// amavisd-new package creates) and waits until its AM.PDP socket and SMTP port answer; it is
// stopped when the test ends, and its log shown if the test failed.
func StartPerlAmavisd(t testing.TB, opt PerlOptions) *PerlAmavisd {
	t.Helper()
	bin := RequireProgram(t, "amavisd (Debian's amavisd-new)", "/usr/sbin/amavisd")
	u, err := user.Lookup("amavis")
	if err != nil {
		t.Skipf("testenv: no amavis user (Debian's amavisd-new package creates it): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "perl-amavis")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := FreePort(t)
	p := &PerlAmavisd{Home: filepath.Join(dir, "home"), SMTPAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	p.Socket = filepath.Join(p.Home, "amavisd.sock")
	p.LogFile = filepath.Join(p.Home, "amavisd.log")
	for _, d := range []string{p.Home, filepath.Join(p.Home, "tmp"), filepath.Join(p.Home, "db"), filepath.Join(p.Home, "virusmails")} {
		os.Mkdir(d, 0o750)
		os.Chown(d, uid, gid)
	}
	conf := filepath.Join(dir, "amavisd.conf")
	text := fmt.Sprintf(`use strict;
$MYHOME = '%s';
$TEMPBASE = "$MYHOME/tmp";
$ENV{TMPDIR} = $TEMPBASE;
$db_home = "$MYHOME/db";
$QUARANTINEDIR = "$MYHOME/virusmails";
$lock_file = "$MYHOME/amavisd.lock";
$pid_file = "$MYHOME/amavisd.pid";
$daemon_user = 'amavis';
$daemon_group = 'amavis';
$ENV{PATH} = $path = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin';
$file = 'file';
$myhostname = '%s';
$mydomain = '%s';
@local_domains_acl = ( ".$mydomain" );
$inet_socket_port = %d;
$inet_socket_bind = '127.0.0.1';
$forward_method = 'smtp:[127.0.0.1]:%d';
$notify_method = $forward_method;
$unix_socketname = "$MYHOME/amavisd.sock";
$interface_policy{'SOCK'} = 'AM.PDP-SOCK';
$policy_bank{'AM.PDP-SOCK'} = { protocol => 'AM.PDP', auth_required_release => 0 };
$max_servers = 2;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavisd.log";
$log_level = 0;
$enable_db = 0;
$enable_dkim_verification = 0;
@bypass_spam_checks_maps = (1);
$final_virus_destiny = D_DISCARD;
$final_banned_destiny = D_DISCARD;
# clamd: streams the files (INSTREAM) over TCP: the test's clamd cannot read amavis's
# directories, nor can amavis reach the clamd's private Unix socket
@av_scanners = (['ClamAV-clamd', \&ask_daemon, ["*", "clamd:%s"],
  qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ]);
@av_scanners_backup = ();
$banned_filename_re = new_RE(
  qr'\.[^./]*\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\.?$'i,
  qr'\{[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\}?$'i,
  qr'^application/x-msdownload$'i,
  qr'^application/x-msdos-program$'i,
  qr'^application/hta$'i,
  qr'.\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i,
  qr'^\.(exe-ms)$',
);
1;
`, p.Home, opt.Hostname, opt.Domain, port, opt.ForwardPort, opt.ClamdAddr)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf, "foreground")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("Perl amavisd printed:\n%s\nits log:\n%s", out.String(), readTail(p.LogFile))
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("unix", p.Socket); err == nil {
			c.Close()
			if g, err := Greeting(p.SMTPAddr); err == nil && len(g) > 3 && g[:4] == "220 " {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("testenv: Perl amavisd exited: %s\n%s", cmd.ProcessState, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: Perl amavisd does not listen on %s and %s:\n%s", p.Socket, p.SMTPAddr, out.String())
		}
	}
}
