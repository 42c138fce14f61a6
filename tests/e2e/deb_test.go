package e2e

import (
	"bytes"
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

// TestDebianPackage: `make deb` builds a package that apt installs beside Debian's amavisd-new,
// whose unit systemd accepts, whose daemon passes its selftest and carries a message from Postfix
// to the mailbox on the packaged configuration (pointed at the test's clamd, Postfix and log),
// and that purges without leaving its files behind. It changes the machine, so it runs as root in
// CI (or with AMAVISGO_DEB_TEST=1), where the machine is thrown away afterwards.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 || (os.Getenv("CI") != "true" && os.Getenv("AMAVISGO_DEB_TEST") != "1") {
		t.Skip("installs a Debian package: runs as root in CI or with AMAVISGO_DEB_TEST=1")
	}
	testenv.RequireProgram(t, "dpkg-deb", "/usr/bin/dpkg-deb")
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "amavisgo").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatal("amavisgo is already installed: this test installs and purges it")
	}
	out, err := exec.Command("make", "-s", "-C", "../..", "deb").CombinedOutput()
	if err != nil {
		t.Fatalf("make deb: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	deb, _ := filepath.Abs(filepath.Join("../..", lines[len(lines)-1]))
	if !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("make deb printed %q", out)
	}
	info, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Depends").Output()
	if err != nil || !strings.Contains(string(info), "Package: amavisgo") {
		t.Fatalf("dpkg-deb --field: %v %s", err, info)
	}

	apt := func(args ...string) {
		t.Helper()
		cmd := exec.Command("apt-get", append([]string{"-y", "-q", "--no-install-recommends"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	apt("install", deb)
	purged := false
	t.Cleanup(func() {
		if !purged {
			exec.Command("apt-get", "-y", "purge", "amavisgo").Run()
		}
	})
	for _, path := range []string{"/usr/sbin/amavisgo", "/usr/share/doc/amavisgo/examples/amavisd.toml", "/lib/systemd/system/amavisgo.service", "/var/lib/amavis/tmp"} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	// amavisd-new's configuration is here: it is what the daemon reads, no TOML file of ours
	if _, err := os.Stat("/etc/amavisgo/amavisd.toml"); err == nil {
		t.Error("postinst wrote /etc/amavisgo/amavisd.toml beside amavisd-new's /etc/amavis/conf.d")
	}
	if err := exec.Command("id", "amavis").Run(); err != nil {
		t.Errorf("no amavis user after install: %v", err)
	}
	// the unit's own command line: no -c, so Debian's conf.d in Debian's order
	if out, err := exec.Command("/usr/sbin/amavisgo", "configtest").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "/etc/amavis/conf.d/50-user is OK") {
		t.Errorf("configtest as the unit runs it: %v\n%s", err, out)
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(sa, "verify", "/lib/systemd/system/amavisgo.service").CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("amavisgo.service")) {
			t.Errorf("systemd-analyze verify amavisgo.service: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Error("systemd-analyze is missing")
	}

	// Debian's conf.d as amavisd-new installed it, a site's usual edit (virus checks on, as
	// uncommenting 15-content_filter_mode does) and, last, TOML pointing the daemon at this
	// test's clamd, Postfix, log and sockets.
	clamd := testenv.StartClamd(t)
	amPort := testenv.FreePort(t)
	pf := testenv.StartPostfix(t, testenv.PostfixOptions{FilterPort: amPort, Transport: "smtp"})
	fwd, _ := strconv.Atoi(portOf(pf.ForwardAddr))
	d := &daemon{t: t, bin: "/usr/sbin/amavisgo", Dir: t.TempDir(), Addr: fmt.Sprintf("127.0.0.1:%d", amPort)}
	d.Config, d.LogFile = filepath.Join(d.Dir, "amavisd.toml"), filepath.Join(d.Dir, "amavis.log")
	site := filepath.Join(d.Dir, "60-site")
	if err := os.WriteFile(site, []byte("@bypass_virus_checks_maps = (\\%bypass_virus_checks, \\@bypass_virus_checks_acl, \\$bypass_virus_checks_re);\n1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	override := fmt.Sprintf(`inet_socket_port = %d
forward_method = "smtp:[127.0.0.1]:%d"
notify_method = "smtp:[127.0.0.1]:%d"
DO_SYSLOG = false
log_level = 2 # daemon.start waits for the level-1 "listening on" line
LOGFILE = %q
pid_file = %q
unix_socketname = %q
[[av_scanners]] # clamd on TCP: its socket directory is root's, the daemon runs as amavis
name = "ClamAV-clamd"
type = "clamd"
sockets = [%q]
query = "CONTSCAN {}\n"
`, amPort, fwd, fwd, d.LogFile, filepath.Join(d.Dir, "amavisd.pid"), filepath.Join(d.Dir, "amavisd.sock"), clamd.TCPAddr)
	if err := os.WriteFile(d.Config, []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}
	d.confArgs = []string{"-c", "/usr/share/amavis/conf.d", "-c", "/etc/amavis/conf.d", "-c", site, "-c", d.Config}
	t.Cleanup(d.stop)

	if out, err := exec.Command(d.bin, append(d.confArgs, "selftest")...).CombinedOutput(); err != nil {
		t.Errorf("selftest: %v\n%s", err, out)
	}
	d.start()
	if _, err := pf.Submit(sender, rcpt, message("<deb@e2e>", "deb", "through the package\n")); err != nil {
		t.Fatal(err)
	}
	m := pf.WaitMessages(t, 1, 30*time.Second)[0]
	if m.MessageID != "<deb@e2e>" || len(m.HeaderValues("X-Virus-Scanned")) != 1 {
		t.Errorf("delivered:\n%s", m.Header)
	}
	d.waitLog(regexp.MustCompile(`Passed CLEAN .*Message-ID: <deb@e2e>`), 10*time.Second)
	d.stop()

	apt("purge", "amavisgo")
	purged = true
	for _, path := range []string{"/usr/sbin/amavisgo", "/etc/amavisgo", "/lib/systemd/system/amavisgo.service"} {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("after purge %s is still there", path)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "amavisgo").Output(); strings.Contains(string(out), "installed") {
		t.Errorf("dpkg still lists amavisgo: %s", out)
	}
}
