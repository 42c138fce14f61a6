package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestMakeRun: README's first command sets up and runs the daemon on the bundled
// configuration, listening on 127.0.0.1:10024 with amavis's banner.
func TestMakeRun(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("make run sets up the amavis user and /var/lib/amavis: run as root")
		}
		t.Skip("make run needs root")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:10024", time.Second); err == nil {
		c.Close()
		t.Fatal("something already listens on 127.0.0.1:10024")
	}
	var out bytes.Buffer
	cmd := exec.Command("make", "-C", "../..", "run")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	defer func() {
		if exited {
			t.Logf("make run printed:\n%s", out.String())
			return
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("make run printed:\n%s", out.String())
		}
	}()
	deadline := time.Now().Add(3 * time.Minute) // includes building the binary
	for {
		if banner, err := testenv.Greeting("127.0.0.1:10024"); err == nil {
			if want := "220 [127.0.0.1] ESMTP amavis service ready\r\n"; banner != want {
				t.Fatalf("banner %q, want %q", banner, want)
			}
			releaseWithDefaults(t)
			return
		}
		select {
		case err := <-done:
			exited = true
			t.Fatalf("make run ended before listening: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing listens on 127.0.0.1:10024 after 3 minutes")
		}
	}
}

// releaseWithDefaults: Debian's amavisd-release, as installed (its socket path compiled in),
// reaches the daemon of the bundled configuration, whose AM.PDP-SOCK bank takes a release
// without secret_id: asked for a mail_id that is not in the quarantine, it prints our answer.
func releaseWithDefaults(t *testing.T) {
	t.Helper()
	prog := testenv.RequireProgram(t, "amavisd-release", "/usr/sbin/amavisd-release")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, "virus-Nq0uiT5Dw7Xz").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", prog, err, out)
	}
	want := regexp.MustCompile(`^450 4\.5\.0 Failure: .*virus-Nq0uiT5Dw7Xz`)
	if !want.Match(out) {
		t.Errorf("amavisd-release printed %q, want our answer matching %s", out, want)
	}
}
