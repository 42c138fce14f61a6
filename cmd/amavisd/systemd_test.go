package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amavisgo/conf"
)

const unitFile = "../../contrib/systemd/amavisgo.service"

// unitSettings reads a systemd unit: section -> key -> values in order.
func unitSettings(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: line %q", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// TestSystemdUnit runs the daemon the way contrib/systemd/amavisgo.service tells systemd to:
// ExecStartPre, ExecStart with NOTIFY_SOCKET (READY=1 from the main pid), ExecReload with
// $MAINPID (RELOADING=1, then READY=1), KillSignal (STOPPING=1, a clean exit). The binary and
// configuration paths are the only things substituted. systemd-analyze verify checks the
// unit's syntax where systemd is installed.
func TestSystemdUnit(t *testing.T) {
	unit := unitSettings(t, unitFile)
	svc := unit["Service"]
	one := func(key string) string {
		if len(svc[key]) != 1 {
			t.Fatalf("%s: [Service] %s = %q, want one value", unitFile, key, svc[key])
		}
		return svc[key][0]
	}
	if v := one("Type"); v != "notify" {
		t.Errorf("Type=%s, want notify", v)
	}
	if v := one("NotifyAccess"); v != "main" {
		t.Errorf("NotifyAccess=%s, want main (the daemon itself sends)", v)
	}
	if v := one("KillSignal"); v != "SIGTERM" {
		t.Errorf("KillSignal=%s, want SIGTERM (messages in flight finish)", v)
	}
	stopSec, _ := strconv.Atoi(strings.TrimSuffix(one("TimeoutStopSec"), "s"))
	if def := conf.Default().ChildTimeout; stopSec <= def {
		t.Errorf("TimeoutStopSec=%d: systemd would SIGKILL a message still within child_timeout (%d s)", stopSec, def)
	}
	if v := one("UMask"); v != "0027" {
		t.Errorf("UMask=%s, want amavis's 0027", v)
	}

	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true")
	argv := func(key string) []string {
		line := strings.ReplaceAll(one(key), "/usr/local/sbin/amavisd", amavisdBin)
		line = strings.ReplaceAll(line, "/etc/amavisgo/amavisd.toml", e.file)
		return strings.Fields(line)
	}
	pre := argv("ExecStartPre")
	if out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre %q: %v\n%s", pre, err, out)
	}
	start := argv("ExecStart")
	if start[len(start)-1] != "foreground" {
		t.Errorf("ExecStart %q: a Type=notify daemon must not fork: want the foreground verb", start)
	}
	sock := e.listenNotify()
	d := &daemon{done: make(chan struct{})}
	d.cmd = exec.Command(start[0], start[1:]...)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	d.cmd.Stderr = lockedWriter{d}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.done
	})
	pid := d.cmd.Process.Pid
	if msg := e.waitNotify("READY=1"); !strings.Contains(msg, fmt.Sprintf("MAINPID=%d\n", pid)) {
		t.Errorf("READY message %q does not name the main pid %d", msg, pid)
	}
	if g := greetingOf(t, e.addr); !strings.HasPrefix(g, "220 ") {
		t.Errorf("greeting after READY=1: %q", g)
	}

	var reload []string
	for _, a := range argv("ExecReload") {
		reload = append(reload, strings.ReplaceAll(a, "$MAINPID", strconv.Itoa(pid)))
	}
	if out, err := exec.Command(reload[0], reload[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v\n%s", reload, err, out)
	}
	e.waitNotify("RELOADING=1")
	e.waitNotify("READY=1")
	e.waitLog(fmt.Sprintf("warm restart on HUP [%d]: reloaded configuration %s", pid, e.file))

	d.cmd.Process.Signal(syscall.SIGTERM)
	e.waitNotify("STOPPING=1")
	d.wait(t, 10*time.Second)
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after KillSignal, want 0 (systemd would call it a failure)\n%s", code, d.Stderr())
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze (package systemd) is missing")
		}
		t.Skip("systemd-analyze is missing: the unit's syntax is not verified")
	}
	text, _ := os.ReadFile(unitFile)
	verify := filepath.Join(t.TempDir(), "amavisgo.service")
	os.WriteFile(verify, []byte(strings.ReplaceAll(string(text), "/usr/local/sbin/amavisd", amavisdBin)), 0o644)
	if out, err := exec.Command(analyze, "verify", verify).CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
