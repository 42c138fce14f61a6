package pidfile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestCreateOverExistingFile(t *testing.T) {
	live := os.Getppid() // the go command that runs this test
	for _, tc := range []struct {
		name    string
		content string
		age     time.Duration // how long before now the file was written
		wantErr string        // "" = replaced by our pid
	}{
		{"live daemon", fmt.Sprintf("%d\n", live), 0, fmt.Sprintf("The amavisd daemon is already running, PID: [%d]", live)},
		{"dead daemon", fmt.Sprintf("%d\n", deadPID(t)), 0, ""},
		{"empty", "", 0, ""},
		{"junk", "hello\n", 0, ""},
		{"older than boot", fmt.Sprintf("%d\n", live), 24 * 365 * time.Hour, ""},
		{"two lines", "1\n2\n", 0, "More than one line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "amavisd.pid")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-tc.age)
			os.Chtimes(path, old, old)
			err := Create(path, 4242)
			got, _ := os.ReadFile(path)
			if tc.wantErr == "" {
				if err != nil || string(got) != "4242\n" {
					t.Fatalf("Create: %v; file %q, want it replaced by 4242", err, got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Create: %v, want %q", err, tc.wantErr)
			}
			if string(got) != tc.content {
				t.Errorf("file changed to %q", got)
			}
		})
	}
}

func TestCreateRunningWrapsErrRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "amavisd.pid")
	if err := Create(path, os.Getppid()); err != nil {
		t.Fatal(err)
	}
	if err := Create(path, 1234); !errors.Is(err, ErrRunning) {
		t.Errorf("second Create: %v, want ErrRunning", err)
	}
}

func TestRunning(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "amavisd.pid")
	if _, err := Running(path); err == nil || err.Error() != "The amavisd daemon is apparently not running, no PID file "+path {
		t.Errorf("no file: %v", err)
	}
	os.WriteFile(path, []byte(fmt.Sprintf("%d\n", os.Getppid())), 0o644)
	if pid, err := Running(path); err != nil || pid != os.Getppid() {
		t.Errorf("live: %d, %v", pid, err)
	}
	dead := deadPID(t)
	os.WriteFile(path, []byte(fmt.Sprintf("%d\n", dead)), 0o644)
	var nr *NotRunning
	if _, err := Running(path); !errors.As(err, &nr) || !strings.Contains(err.Error(), fmt.Sprintf("no process [%d]", dead)) {
		t.Errorf("dead: %v", err)
	}
	os.Remove(path)
	os.Mkdir(path, 0o755)
	if _, err := Running(path); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestRemoveOnlyOwnPID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "amavisd.pid")
	if err := Create(path, 100); err != nil {
		t.Fatal(err)
	}
	if err := Remove(path, 200); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("Remove with another pid deleted the file: %v", err)
	}
	if err := Remove(path, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file still there: %v", err)
	}
	if err := Remove(path, 100); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	for _, s := range []string{"", "123\n", " 7 ", "1\n2\n", "-5", "99999999999", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		path := filepath.Join(t.TempDir(), "pid")
		os.WriteFile(path, []byte(s), 0o644)
		pid, err := read(path)
		if err == nil && (pid < 0 || (pid == 0 && strings.TrimSpace(s) != "")) {
			t.Errorf("read(%q) = %d without error", s, pid)
		}
	})
}
