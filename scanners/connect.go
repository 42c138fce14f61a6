package scanners

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
)

// connectFailure is amavis's line for a scanner daemon that could not be reached (Amavis::AV's
// run_av), which log parsers count as a virus scanner connection failure; "" when err is not a
// failure to connect.
func connectFailure(name string, err error) string {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" || oe.Addr == nil {
		return ""
	}
	kind := "INET socket"
	if oe.Net == "unix" {
		kind = "UNIX socket"
	}
	reason := oe.Err.Error()
	var errno syscall.Errno
	if errors.As(oe.Err, &errno) {
		reason = errno.Error()
	}
	if reason != "" {
		reason = strings.ToUpper(reason[:1]) + reason[1:]
	}
	addr := oe.Addr.String()
	return fmt.Sprintf("run_av (%s, built-in i/f): Too many retries to talk to %s (Can't connect to %s %s: %s)",
		name, addr, kind, addr, reason)
}
