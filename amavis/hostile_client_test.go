package amavis

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"amavisgo/smtp/smtptest"
)

// trickle sends one byte every 100 ms of a line that never ends, until stop is closed or
// the daemon closes the connection.
func trickle(c net.Conn, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
		}
	}
}

// Ten clients that trickle a line byte by byte, a command or a line of the message, hold all
// max_servers slots; smtpd_timeout runs from the start of the wait for each line and is not
// extended by partial input, so each of them gets 421 once it has passed, and a normal client
// waiting in the listen queue is served within smtpd_timeout: its message passes.
func TestTricklingClientsDoNotHoldThePool(t *testing.T) {
	const timeout = 2 * time.Second
	for _, tc := range []struct{ phase, logLine string }{
		{"command", "Requesting process rundown, task exceeded allowed time during waiting for input from client"},
		{"data", "SMTP: NOTICE: ABORTING the session: timed out during waiting for input from client"},
	} {
		t.Run(tc.phase, func(t *testing.T) {
			h := hop(t, smtptest.Options{})
			td := startDaemon(t, h.Addr, "smtpd_timeout = 2\nmax_servers = 10")
			stop := make(chan struct{})
			t.Cleanup(func() { close(stop) })
			type result struct {
				line    string
				err     error
				elapsed time.Duration
			}
			results := make(chan result, 10)
			for range 10 {
				// Each client holds a slot once it has its greeting.
				began := time.Now()
				var c net.Conn
				var r *bufio.Reader
				if tc.phase == "data" {
					c, r = openData(t, td.addr)
				} else {
					c, r = dial(t, td.addr)
					expectPrefix(t, r, "220 ")
				}
				go trickle(c, stop)
				go func() {
					line, err := r.ReadString('\n')
					results <- result{strings.TrimSuffix(line, "\r\n"), err, time.Since(began)}
				}()
			}

			start := time.Now()
			c, r := dial(t, td.addr)
			c.SetReadDeadline(start.Add(timeout + time.Second))
			expectPrefix(t, r, "220 ")
			c.SetDeadline(time.Now().Add(30 * time.Second))
			send(t, c, "EHLO mta.example.com")
			for line := ""; !strings.HasPrefix(line, "250 "); {
				line = expectPrefix(t, r, "250")
			}
			send(t, c, "MAIL FROM:<a@sender.example.org>", "RCPT TO:<x@example.com>", "DATA")
			expectPrefix(t, r, "250 ")
			expectPrefix(t, r, "250 ")
			expectPrefix(t, r, "354 ")
			send(t, c, "Subject: normal", "", "not trickled", ".")
			expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:")
			send(t, c, "QUIT")
			expectPrefix(t, r, "221 ")
			if n := len(h.Msgs()); n != 1 {
				t.Errorf("next hop got %d messages", n)
			}

			for range 10 {
				res := <-results
				if res.err != nil || res.line != "421 4.3.2 Service shutting down, closing channel" {
					t.Errorf("trickling client got %q (%v)", res.line, res.err)
				}
				if res.elapsed < timeout {
					t.Errorf("trickling client cut off after %v, before smtpd_timeout", res.elapsed)
				}
			}
			waitFor(t, "the timeouts logged", func() bool { return strings.Count(td.log.String(), tc.logLine) == 10 })
		})
	}
}

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
