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
	for _, path := range []string{"/usr/sbin/amavisgo", "/etc/amavisgo/amavisd.toml", "/lib/systemd/system/amavisgo.service", "/var/lib/amavis/tmp"} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	if err := exec.Command("id", "amavis").Run(); err != nil {
		t.Errorf("no amavis user after install: %v", err)
	}
	if out, err := exec.Command("/usr/sbin/amavisgo", "-c", "/etc/amavisgo/amavisd.toml", "configtest").CombinedOutput(); err != nil {
		t.Errorf("configtest of the packaged configuration: %v\n%s", err, out)
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(sa, "verify", "/lib/systemd/system/amavisgo.service").CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("amavisgo.service")) {
			t.Errorf("systemd-analyze verify amavisgo.service: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Error("systemd-analyze is missing")
	}

	// The packaged configuration, pointed at this test's clamd, Postfix and log file.
	clamd := testenv.StartClamd(t)
	packaged, err := os.ReadFile("/etc/amavisgo/amavisd.toml")
	if err != nil {
		t.Fatal(err)
	}
	amPort := testenv.FreePort(t)
	pf := testenv.StartPostfix(t, testenv.PostfixOptions{FilterPort: amPort, Transport: "smtp"})
	fwd, _ := strconv.Atoi(portOf(pf.ForwardAddr))
	d := &daemon{t: t, bin: "/usr/sbin/amavisgo", Dir: t.TempDir(), Addr: fmt.Sprintf("127.0.0.1:%d", amPort)}
	d.Config, d.LogFile = filepath.Join(d.Dir, "amavisd.toml"), filepath.Join(d.Dir, "amavis.log")
	overrides := map[string]string{
		"inet_socket_port": strconv.Itoa(amPort),
		"forward_method":   strconv.Quote(fmt.Sprintf("smtp:[127.0.0.1]:%d", fwd)),
		"notify_method":    strconv.Quote(fmt.Sprintf("smtp:[127.0.0.1]:%d", fwd)),
		"DO_SYSLOG":        "false",
		"log_level":        "2", // daemon.start waits for the level-1 "listening on" line
		"LOGFILE":          strconv.Quote(d.LogFile),
		"pid_file":         strconv.Quote(filepath.Join(d.Dir, "amavisd.pid")),
		"unix_socketname":  strconv.Quote(filepath.Join(d.Dir, "amavisd.sock")),
	}
	text := string(packaged)
	var top strings.Builder
	for k, v := range overrides {
		text = regexp.MustCompile(`(?m)^`+k+`\s*=.*$`).ReplaceAllString(text, "")
		fmt.Fprintf(&top, "%s = %s\n", k, v)
	}
	if !strings.Contains(text, `"/var/run/clamav/clamd.ctl"`) {
		t.Fatal("the packaged configuration has no Debian clamd socket to point at the test's clamd")
	}
	// clamd listens on TCP too: its socket directory is root's, the daemon runs as amavis.
	text = strings.ReplaceAll(text, `"/var/run/clamav/clamd.ctl"`, strconv.Quote(clamd.TCPAddr))
	if err := os.WriteFile(d.Config, []byte(top.String()+text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)

	if out, err := exec.Command(d.bin, "-c", d.Config, "selftest").CombinedOutput(); err != nil {
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
