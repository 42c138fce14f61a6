// Package sdnotify tells systemd about the daemon's state through $NOTIFY_SOCKET (sd_notify(3)),
// so that a Type=notify unit knows when amavisd is ready, reloading or stopping.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state lines to systemd. The zero value and a Notifier without a socket do
// nothing, so callers need not check whether they run under systemd.
type Notifier struct {
	addr *net.UnixAddr
}

// FromEnv returns a Notifier for $NOTIFY_SOCKET; without it, one that does nothing. The variable
// is left in the environment: systemd also reads MAINPID from us, and children we exec (the
// background start) must reach the same socket.
func FromEnv() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &Notifier{}
	}
	// A leading '@' names a socket in the abstract namespace; Go's net package knows that form.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Enabled reports whether there is a socket to notify.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send writes state lines ("READY=1", "STATUS=...") as one datagram.
func (n *Notifier) Send(lines ...string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready says start-up is complete: the sockets are bound and the daemon accepts mail.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1", "STATUS="+status, fmt.Sprintf("MAINPID=%d", os.Getpid()))
}

// Reloading says a reload began; systemd (Type=notify-reload and newer Type=notify) wants the
// CLOCK_MONOTONIC time with it, and a READY=1 when the reload is over.
func (n *Notifier) Reloading() error {
	return n.Send("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()), "STATUS=reloading configuration")
}

// Stopping says shutdown began.
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1", "STATUS=stopping")
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now().UnixMicro() // cannot happen on Linux
	}
	return ts.Sec*1_000_000 + ts.Nsec/1000
}
