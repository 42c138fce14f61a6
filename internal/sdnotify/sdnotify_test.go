package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen opens the datagram socket systemd would, and returns a function that reads one message.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

func TestMessages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	read := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	n := FromEnv()
	if !n.Enabled() {
		t.Fatal("not enabled with NOTIFY_SOCKET set")
	}
	pid := os.Getpid()
	for _, tc := range []struct {
		name string
		send func() error
		want string
	}{
		{"ready", func() error { return n.Ready("listening on 127.0.0.1:10024") }, fmt.Sprintf("READY=1\nSTATUS=listening on 127.0.0.1:10024\nMAINPID=%d\n", pid)},
		{"stopping", n.Stopping, "STOPPING=1\nSTATUS=stopping\n"},
	} {
		if err := tc.send(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := read(); got != tc.want {
			t.Errorf("%s: sent %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	read := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	before := monotonicUsec()
	if err := FromEnv().Reloading(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(read(), "\n")
	if len(lines) != 4 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") || lines[2] != "STATUS=reloading configuration" {
		t.Fatalf("sent %q", lines)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec < before || usec > monotonicUsec() {
		t.Errorf("MONOTONIC_USEC=%d is not between %d and now", usec, before)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("amavisgo-sdnotify-test-%d", os.Getpid())
	read := listen(t, "@"+name) // Go spells the abstract namespace with '@' too
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	if err := FromEnv().Send("STATUS=x"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "STATUS=x\n" {
		t.Errorf("sent %q", got)
	}
}

func TestWithoutSocketDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n.Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("Ready without a socket: %v", err)
	}
}

func TestMissingSocketIsAnError(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if err := FromEnv().Ready("x"); err == nil || !strings.Contains(err.Error(), "sd_notify") {
		t.Errorf("err = %v, want an sd_notify error", err)
	}
}
