package amavis

import (
	"strings"
	"testing"
	"time"
)

// A command line over the 64 KiB limit, sent alone, is answered at once, and the session
// goes on.
func TestOverlongCommandLineAnsweredAtOnce(t *testing.T) {
	td := startDaemon(t, "", "")
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "NOOP "+strings.Repeat("x", 70000))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	expect(t, r, "500 5.5.2 Error: bad syntax")
	send(t, c, "NOOP")
	expect(t, r, "250 2.0.0 Ok NOOP")
	send(t, c, "QUIT")
	expectPrefix(t, r, "221 2.0.0 ")
}
