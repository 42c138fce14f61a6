package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// daemonUser is the unprivileged user both daemons switch to: the Debian
// amavisd-new package creates it, and amavis refuses to run as root.
const daemonUser = "amavis"

// filterRun is a started content filter.
type filterRun struct {
	*process
	addr string // where it listens for SMTP
}

// filterDaemon starts a content filter in front of the sink.
type filterDaemon interface {
	// start runs the filter with max_servers = servers, listening on a free
	// port, forwarding to next, scanning with the clamd on clamdSocket and asking the
	// spam engine of sp.
	start(dir string, servers int, next, clamdSocket string, sp spamSetup) (*filterRun, error)
}

// homeDirs creates MYHOME with its tmp/, db/ and virusmails/ owned by the
// daemon user, and makes the path to it traversable for that user.
func homeDirs(dir string) (string, error) {
	home := filepath.Join(dir, "home")
	u, err := user.Lookup(daemonUser)
	if err != nil {
		return "", fmt.Errorf("user %s (created by the amavisd-new package): %v", daemonUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{home, filepath.Join(home, "tmp"), filepath.Join(home, "db"), filepath.Join(home, "virusmails")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return "", err
		}
		if err := os.Chown(d, uid, gid); err != nil {
			return "", err
		}
	}
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if d == os.TempDir() {
			break
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return "", err
		}
	}
	return home, nil
}

// perlDaemon is Debian's amavisd-new, configured like the Debian package
// (its 20-debian_defaults settings) but self-contained in one private file:
// virus checks on with the Debian clamd entry pointed at our clamd, spam
// checks bypassed, MIME decoding and banned-file checks on.
type perlDaemon struct{ bin string }

func (d perlDaemon) start(dir string, servers int, next, clamdSocket string, sp spamSetup) (*filterRun, error) {
	// 32 Perl children need a while to fork and compile.
	return startFilter(dir, "amavisd-new", d.bin, "amavisd.conf", func(home string, port int) string {
		return strings.Replace(perlConfig(home, port, servers, next, clamdSocket), "\n1;\n", "\n"+sp.perl()+"1;\n", 1)
	}, 120*time.Second, 30*time.Second)
}

// startFilter runs a filter daemon in the foreground on a free port with the configuration
// file config writes, and waits up to greet for its SMTP greeting; stop bounds its stop when
// it does not greet.
func startFilter(dir, name, bin, confName string, config func(home string, port int) string, greet, stop time.Duration) (*filterRun, error) {
	home, err := homeDirs(dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, confName)
	if err := os.WriteFile(conf, []byte(config(home, port)), 0o644); err != nil {
		return nil, err
	}
	return launch(name, filepath.Join(dir, "amavisd.out"), loopback(port), greet, stop, bin, "-c", conf, "foreground")
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// launch starts the filter argv, which listens on addr, and waits up to greet for its SMTP
// greeting; stop bounds its stop when it does not greet.
func launch(name, logPath, addr string, greet, stop time.Duration, argv ...string) (*filterRun, error) {
	p, err := start(name, logPath, argv...)
	if err != nil {
		return nil, err
	}
	if err := waitGreeting(p, addr, greet); err != nil {
		p.stop(stop)
		return nil, err
	}
	return &filterRun{process: p, addr: addr}, nil
}

// perlConfig writes amavisd.conf. Only this file is read (-c), so it sets
// what Debian's conf.d files would. $enable_db is off (Debian turns it on for
// the nanny/SNMP counters): this spares the Perl daemon work ours does not do.
func perlConfig(home string, port, servers int, next, clamdSocket string) string {
	host, nextPort, _ := net.SplitHostPort(next)
	// In the foreground with max_servers 1 amavis runs as a single plain
	// Net::Server process, which exits for good after $max_requests tasks
	// (it is meant for debugging); elsewhere the default 20 stays.
	maxRequests := "# $max_requests: default (20)"
	if servers == 1 {
		maxRequests = "$max_requests = 0;  # single-process mode would exit after 20 tasks"
	}
	return fmt.Sprintf(`use strict;
# Written by bench/cmd/benchrun: Debian's defaults, private paths and ports.
$MYHOME = '%[1]s';
$TEMPBASE = "$MYHOME/tmp";
$ENV{TMPDIR} = $TEMPBASE;
$db_home = "$MYHOME/db";
$QUARANTINEDIR = "$MYHOME/virusmails";
$quarantine_subdir_levels = 1;
$lock_file = "$MYHOME/amavisd.lock";
$pid_file = "$MYHOME/amavisd.pid";
$daemon_user = '%[7]s';
$daemon_group = '%[7]s';
$ENV{PATH} = $path = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin';
$file = 'file'; $gzip = 'gzip'; $bzip2 = 'bzip2'; $lzop = 'lzop';
$rpm2cpio = ['rpm2cpio.pl','rpm2cpio']; $cabextract = 'cabextract';
$uncompress = ['uncompress', 'gzip -d', 'zcat']; $unfreeze = undef;
$arc = ['nomarch', 'arc']; $unarj = ['arj', 'unarj']; $unrar = ['unrar-free'];
$zoo = 'zoo'; $lha = undef; $pax = 'pax'; $cpio = 'cpio'; $ar = 'ar'; $ripole = 'ripole';
$myhostname = 'bench.localdomain';
$mydomain = 'localdomain';
@local_domains_acl = ( ".$mydomain" );
$inet_socket_port = %[2]d;
$inet_socket_bind = '127.0.0.1';
$forward_method = 'smtp:[%[4]s]:%[5]s';
$notify_method = $forward_method;
$max_servers = %[3]d;
%[8]s
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavisd.log";
$log_level = 0;
$log_recip_templ = undef;
$enable_db = 0;
@bypass_spam_checks_maps = (1);
@bypass_virus_checks_maps = (0);
@av_scanners = (
 ['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {}\n", "%[6]s"],
   qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
$MAXLEVELS = 14;
$MAXFILES = 1500;
$MIN_EXPANSION_QUOTA = 100*1024;
$MAX_EXPANSION_QUOTA = 300*1024*1024;
$final_virus_destiny = D_DISCARD;
$final_banned_destiny = D_DISCARD;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
$enable_dkim_verification = 0;
$virus_admin = "postmaster\@$mydomain";
$X_HEADER_LINE = "Debian $myproduct_name at $mydomain";
@viruses_that_fake_sender_maps = (new_RE([qr'\bEICAR\b'i => 0], [qr/.*/ => 1]));
@keep_decoded_original_maps = (new_RE(
  qr'^MAIL-UNDECIPHERABLE$',
  qr'^(ASCII(?! cpio)|text|uuencoded|xxencoded|binhex)'i,
));
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
`, home, port, servers, host, nextPort, clamdSocket, daemonUser, maxRequests)
}

// oursDaemon is our daemon, bin/amavisd, with the same settings in TOML.
type oursDaemon struct {
	bin string
	// omit lists optional sections this build does not know yet (see probe).
	omit []string
}

func (d oursDaemon) start(dir string, servers int, next, clamdSocket string, sp spamSetup) (*filterRun, error) {
	return startFilter(dir, "amavisd (ours)", d.bin, "amavisd.toml", func(home string, port int) string {
		keys, tables := sp.ours()
		return keys + oursConfig(home, port, servers, next, clamdSocket, d.omit) + tables
	}, 30*time.Second, 10*time.Second)
}

// floorDaemon is bench/cmd/floorfilter, a filter that does only the I/O of ours (with parts,
// it also decodes the MIME leaves for clamd to scan): it runs as root beside the root clamd, in
// a directory of the work directory.
type floorDaemon struct {
	bin   string
	parts bool
}

func (d floorDaemon) start(dir string, _ int, next, clamdSocket string, _ spamSetup) (*filterRun, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := loopback(port)
	return launch("floorfilter", filepath.Join(dir, "floorfilter.out"), addr, 10*time.Second, 5*time.Second, d.bin,
		"-listen", addr, "-next", next, "-clamd", clamdSocket, "-tempbase", dir, fmt.Sprintf("-parts=%t", d.parts))
}

// buildFloor builds bench/cmd/floorfilter into dir and returns its path.
func buildFloor(dir string) (string, error) {
	bin := filepath.Join(dir, "floorfilter")
	out, err := exec.Command("go", "build", "-o", bin, "amavisgo/bench/cmd/floorfilter").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the floor filter: %v\n%s", err, out)
	}
	return bin, nil
}

// probe checks the configuration with `amavisd -c FILE test-config` and
// drops optional sections whose key the build does not know yet, so that
// the benchmark runs while features are still landing; what was dropped is
// reported in results.md. Any other configuration error is fatal.
func (d *oursDaemon) probe(dir string) error {
	for {
		conf := filepath.Join(dir, "probe.toml")
		text := oursConfig(dir, 10024, 2, "127.0.0.1:10025", filepath.Join(dir, "clamd.sock"), d.omit)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return err
		}
		out, err := exec.Command(d.bin, "-c", conf, "test-config").CombinedOutput()
		if err == nil {
			return nil
		}
		dropped := false
		for _, sec := range oursOptional {
			if !slices.Contains(d.omit, sec.key) && strings.Contains(string(out), `key "`+sec.key+`": unknown setting`) {
				d.omit = append(d.omit, sec.key)
				dropped = true
			}
		}
		if !dropped {
			return fmt.Errorf("our daemon rejects the benchmark configuration: %s", bytes.TrimSpace(out))
		}
	}
}

// oursOptional are sections of oursConfig that need features of the daemon
// which may not be built yet.
var oursOptional = []struct{ key, text string }{
	{"av_scanners", `
# Debian's clamd entry (15-av_scanners), pointed at the private clamd.
[[av_scanners]]
name = "ClamAV-clamd"
type = "clamd"
sockets = [CLAMD_SOCKET]
query = "CONTSCAN {}\n"
clean_pattern = '\bOK$'
infected_pattern = '\bFOUND$'
names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'
`},
	{"banned_rules", `
# Debian's $banned_filename_re (20-debian_defaults).
[banned_rules]
DEFAULT = [
  "qr'\\.[^./]*\\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\\.?$'i",
  "qr'\\{[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\\}?$'i",
  "qr'^application/x-msdownload$'i",
  "qr'^application/x-msdos-program$'i",
  "qr'^application/hta$'i",
  "qr'.\\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i",
  "qr'^\\.(exe-ms)$'",
]
`},
}

// oursConfig is the TOML equivalent of perlConfig, without the optional
// sections named in omit.
func oursConfig(home string, port, servers int, next, clamdSocket string, omit []string) string {
	host, nextPort, _ := net.SplitHostPort(next)
	q := strconv.Quote
	lines := []string{
		"# Written by bench/cmd/benchrun: Debian's defaults, private paths and ports.",
		"MYHOME = " + q(home),
		"TEMPBASE = " + q(home+"/tmp"),
		"QUARANTINEDIR = " + q(home+"/virusmails"),
		"quarantine_subdir_levels = 1",
		"pid_file = " + q(home+"/amavisd.pid"),
		"daemon_user = " + q(daemonUser),
		"daemon_group = " + q(daemonUser),
		fmt.Sprintf("inet_socket_port = [%d]", port),
		`inet_socket_bind = ["127.0.0.1"]`,
		fmt.Sprintf("max_servers = %d", servers),
		`myhostname = "bench.localdomain"`,
		`mydomain = "localdomain"`,
		"forward_method = " + q("smtp:["+host+"]:"+nextPort),
		"notify_method = " + q("smtp:["+host+"]:"+nextPort),
		"log_level = 0",
		`log_recip_templ = ""`, // Debian's undef, as in the Perl configuration
		"DO_SYSLOG = false",
		"LOGFILE = " + q(home+"/amavisd.log"),
		`path = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]`,
		"MAXLEVELS = 14",
		"MAXFILES = 1500",
		"MIN_EXPANSION_QUOTA = 102400",
		"MAX_EXPANSION_QUOTA = 314572800",
		`virus_admin = "postmaster@localdomain"`,
	}
	text := strings.Join(lines, "\n") + "\n" + `
[[local_domains_maps]]
acl = [".localdomain"]
`
	for _, sec := range oursOptional {
		if !slices.Contains(omit, sec.key) {
			text += strings.ReplaceAll(sec.text, "CLAMD_SOCKET", q(clamdSocket))
		}
	}
	return text
}

// lookBin finds a program, trying the given path first.
func lookBin(path, name string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
	}
	return exec.LookPath(name)
}
