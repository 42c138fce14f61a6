package amavis

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amavisgo/smtp/smtptest"
)

// sendMessage runs one transaction (EHLO or LHLO, MAIL, RCPTs, DATA) and returns the replies
// to the final dot: one for SMTP, one per recipient for LMTP.
func sendMessage(t *testing.T, td *testDaemon, lmtp bool, from string, rcpts []string, body string) []string {
	t.Helper()
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	greet := "EHLO"
	if lmtp {
		greet = "LHLO"
	}
	send(t, c, greet+" mta.example.com")
	for {
		if l := expectPrefix(t, r, "250"); strings.HasPrefix(l, "250 ") {
			break
		}
	}
	send(t, c, "MAIL FROM:<"+from+">")
	expectPrefix(t, r, "250 2.1.0")
	for _, rc := range rcpts {
		send(t, c, "RCPT TO:<"+rc+">")
		expectPrefix(t, r, "250 2.1.5")
	}
	send(t, c, "DATA")
	expectPrefix(t, r, "354 ")
	if _, err := io.WriteString(c, body+".\r\n"); err != nil {
		t.Fatal(err)
	}
	n := 1
	if lmtp {
		n = len(rcpts)
	}
	var out []string
	for range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, newNormalizer(td).line(strings.TrimSuffix(line, "\r\n")))
	}
	send(t, c, "QUIT")
	expectPrefix(t, r, "221 ")
	return out
}

const smallBody = "From: a@sender.example.org\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\nSubject: fault\r\n\r\nbody\r\n"

func TestNextHopDown(t *testing.T) {
	for _, lmtp := range []bool{false, true} {
		td := startDaemon(t, "", "")
		got := sendMessage(t, td, lmtp, "a@sender.example.org", []string{"x@example.com"}, smallBody)
		want := "451 4.5.0 id=PID-NN - Temporary MTA failure on relaying, From MTA() during fwd-connect (All attempts (1) failed connecting to smtp:[127.0.0.1]:10025): id=PID-NN"
		if got[0] != want {
			t.Errorf("lmtp=%v:\n got %q\nwant %q", lmtp, got[0], want)
		}
		waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
		if l := mainLogLines(td.log.String())[0]; !strings.Contains(l, "Blocked MTA-BLOCKED {TempFailedInbound}") {
			t.Errorf("log line %q", l)
		}
	}
}

func TestNextHop451AfterData(t *testing.T) {
	h := hop(t, smtptest.Options{DataCode: 451})
	td := startDaemon(t, h.Addr, "")
	got := sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com", "y@example.com"}, smallBody)
	want := "451 4.3.0 id=PID-NN - Temporary MTA failure on relaying, from MTA(smtp:[127.0.0.1]:10025): 451 4.3.0 Error: test failure after DATA"
	if got[0] != want {
		t.Errorf("\n got %q\nwant %q", got[0], want)
	}
}

func TestNextHopRejectsOneOfTwo(t *testing.T) {
	rcpts := []string{"x@example.com", "bad@example.com"}
	t.Run("SMTP", func(t *testing.T) {
		h := hop(t, smtptest.Options{RcptCode: map[string]int{"bad@example.com": 550}})
		td := startDaemon(t, h.Addr, "")
		got := sendMessage(t, td, false, "a@sender.example.org", rcpts, smallBody)
		want := "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001, but 1 REJECT"
		if got[0] != want {
			t.Errorf("\n got %q\nwant %q", got[0], want)
		}
		// SMTP cannot reject one recipient after DATA: amavis tells the sender with a DSN.
		msgs := h.Msgs()
		if len(msgs) != 2 || strings.Join(msgs[0].Rcpts, ",") != "x@example.com" ||
			msgs[1].From != "" || strings.Join(msgs[1].Rcpts, ",") != "a@sender.example.org" ||
			!strings.Contains(string(msgs[1].Data), "Final-Recipient: rfc822;bad@example.com\r\nAction: failed\r\nStatus: 5.1.1") {
			t.Errorf("next hop took %d messages: the message for x@ and a DSN to the sender expected", len(msgs))
		}
	})
	t.Run("LMTP", func(t *testing.T) {
		h := hop(t, smtptest.Options{RcptCode: map[string]int{"bad@example.com": 550}})
		td := startDaemon(t, h.Addr, "")
		got := sendMessage(t, td, true, "a@sender.example.org", rcpts, smallBody)
		want := []string{
			"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001",
			"550 5.1.1 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <bad@example.com>: Recipient address rejected: test",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("\n got %q\nwant %q", got, want)
		}
	})
}

// With SMTP input one tempfailed recipient tempfails the whole message, and the next hop
// must not get the message for the other one (the MTA will retry both).
func TestNextHopTempfailsOneOfTwo(t *testing.T) {
	h := hop(t, smtptest.Options{RcptCode: map[string]int{"later@example.com": 450}})
	td := startDaemon(t, h.Addr, "")
	got := sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com", "later@example.com"}, smallBody)
	want := "451 4.5.0 id=PID-NN - Temporary MTA failure on relaying, From MTA(smtp:[127.0.0.1]:10025) during fwd-data-chkpnt (Bail out, DATA accepted but tempfailed recips, not an LMTP input): id=PID-NN"
	if got[0] != want {
		t.Errorf("\n got %q\nwant %q", got[0], want)
	}
	if m := h.Msgs(); len(m) != 0 {
		t.Errorf("the next hop got %d messages", len(m))
	}
	// The aborted connection is not reused: the next message gets through on a new one.
	got = sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA") {
		t.Errorf("after the abort: %q", got[0])
	}
	// LMTP input: per-recipient answers, the other recipient is delivered.
	got = sendMessage(t, td, true, "a@sender.example.org", []string{"x@example.com", "later@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA") || !strings.HasPrefix(got[1], "450 4.1.1 id=PID-NN - Temporary MTA failure on relaying, from MTA(smtp:[127.0.0.1]:10025): 450 4.1.1 <later@example.com>") {
		t.Errorf("LMTP: %q", got)
	}
}

func TestDSNParameters(t *testing.T) {
	for _, dsn := range []bool{true, false} {
		h := hop(t, smtptest.Options{DSN: dsn})
		td := startDaemon(t, h.Addr, "")
		c, r := dial(t, td.addr)
		expectPrefix(t, r, "220 ")
		send(t, c, "EHLO mta.example.com", "MAIL FROM:<a@sender.example.org> RET=HDRS ENVID=QQ314159",
			"RCPT TO:<x@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+40example.com", "DATA")
		for l := expectPrefix(t, r, "250"); !strings.HasPrefix(l, "250 "); l = expectPrefix(t, r, "250") {
		}
		expectPrefix(t, r, "250 2.1.0")
		expectPrefix(t, r, "250 2.1.5")
		expectPrefix(t, r, "354 ")
		send(t, c, "Subject: dsn", "", "x", ".")
		expectPrefix(t, r, "250 2.0.0 from MTA")
		var mail, rcpt string
		for _, l := range h.Lines() {
			switch {
			case mail == "" && strings.HasPrefix(l, "MAIL "):
				mail = l
			case rcpt == "" && strings.HasPrefix(l, "RCPT "):
				rcpt = l
			}
		}
		wantMail, wantRcpt := "MAIL FROM:<a@sender.example.org> BODY=7BIT", "RCPT TO:<x@example.com>"
		if dsn {
			wantMail += " RET=HDRS ENVID=QQ314159"
			wantRcpt += " NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+40example.com"
		}
		if mail != wantMail || rcpt != wantRcpt {
			t.Errorf("dsn=%v: next hop got\n  %q\n  %q\nwant\n  %q\n  %q", dsn, mail, rcpt, wantMail, wantRcpt)
		}
		m := h.Msgs()
		if dsn && (len(m) != 1 || string(m[0].Mail.Return) != "HDRS" || m[0].Mail.EnvelopeID != "QQ314159" ||
			m[0].RcptOpts[0].OriginalRecipient != "x@example.com") {
			t.Errorf("go-smtp parsed %+v", m)
		}
		// A next hop without DSN cannot report the success the sender asked for: amavis does.
		if !dsn && (len(m) != 2 || m[1].From != "" || !strings.Contains(string(m[1].Data),
			"Original-Recipient: rfc822;x+40example.com\r\nFinal-Recipient: rfc822;x@example.com\r\nAction: relayed\r\nStatus: 2.0.0")) {
			t.Errorf("dsn=false: %d messages at the next hop, want the message and a success DSN", len(m))
		}
	}
}

func TestNextHopConnectionReusedAndReconnected(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	for i := 0; i < 3; i++ {
		got := sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com"}, smallBody)
		if !strings.HasPrefix(got[0], "250 2.0.0 from MTA") {
			t.Fatalf("message %d: %q", i, got[0])
		}
	}
	if n := h.Conns(); n != 1 {
		t.Errorf("3 messages used %d connections, want 1 (cached)", n)
	}
	h.DropConns() // the cached connection dies: the next message must not notice
	got := sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0004") {
		t.Errorf("after the drop: %q", got[0])
	}
	if n := h.Conns(); n != 2 {
		t.Errorf("connections: %d, want 2", n)
	}
}

// After the reply the message's files are gone; its emptied directory serves the next message
// (spooldirs.go) and goes when the daemon stops.
func TestSpoolRemovedAfterReply(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	var first []string
	for i := range 3 {
		sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com"}, smallBody)
		waitFor(t, "no message file in TEMPBASE", func() bool { return len(spoolFiles(t, td.tempbase)) == 0 })
		// given back a moment after the reply
		waitFor(t, "the directory kept", func() bool {
			td.spoolDirs.mu.Lock()
			defer td.spoolDirs.mu.Unlock()
			return len(td.spoolDirs.free) == 1
		})
		dirs, _ := filepath.Glob(filepath.Join(td.tempbase, "amavis-*"))
		if i == 0 {
			first = dirs
		}
		if len(dirs) != 1 || dirs[0] != first[0] {
			t.Errorf("message %d: message directories %v, want the first message's %v again", i+1, dirs, first)
		}
	}
	if len(h.Msgs()) != 3 {
		t.Errorf("next hop got %d messages, want 3", len(h.Msgs()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	td.Shutdown(ctx)
	if ents, _ := os.ReadDir(td.tempbase); len(ents) != 0 {
		t.Errorf("TEMPBASE after the stop holds %v", ents)
	}
}

func TestInternalErrorIs451(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	os.Chmod(td.tempbase, 0500) // the spool directory cannot be made
	defer os.Chmod(td.tempbase, 0700)
	if os.Geteuid() == 0 {
		os.RemoveAll(td.tempbase) // root ignores modes
	}
	got := sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "451 4.5.0 Error in processing, id=PID-NN, spool FAILED: ") {
		t.Errorf("got %q", got[0])
	}
	if len(h.Msgs()) != 0 {
		t.Error("the next hop got the message")
	}
}

func TestInetACLDenied(t *testing.T) {
	td := startDaemon(t, "", `inet_acl = ["10.0.0.0/8"]`)
	c, r := dial(t, td.addr)
	_ = c
	if line, err := r.ReadString('\n'); err == nil {
		t.Fatalf("denied client got %q", line)
	}
	waitFor(t, "log", func() bool {
		return strings.Contains(td.log.String(), "DENIED ACCESS from IP 127.0.0.1, policy bank ''")
	})
}

func TestMaxServers(t *testing.T) {
	td := startDaemon(t, "", "max_servers = 1")
	_ = td
	c1, r1 := dial(t, td.addr)
	expectPrefix(t, r1, "220 ")
	c2, r2 := dial(t, td.addr)
	c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if line, err := r2.ReadString('\n'); err == nil {
		t.Fatalf("second client greeted while the only slot is busy: %q", line)
	}
	send(t, c1, "QUIT")
	expectPrefix(t, r1, "221 ")
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	r2 = bufio.NewReader(c2)
	expectPrefix(t, r2, "220 ")
}

// smtpd_timeout bounds each line of DATA, not the whole transfer (as in Amavis::In::SMTP).
func TestSmtpdTimeoutIsPerLine(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "smtpd_timeout = 2")
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "HELO mta.example.com")
	expectPrefix(t, r, "250 ")
	send(t, c, "MAIL FROM:<a@sender.example.org>")
	expectPrefix(t, r, "250 ")
	send(t, c, "RCPT TO:<x@example.com>")
	expectPrefix(t, r, "250 ")
	send(t, c, "DATA")
	expectPrefix(t, r, "354 ")
	// 3 s of DATA in all, longer than smtpd_timeout, but never more than 0.5 s without input
	// (a margin of 1.5 s per read for a loaded machine).
	for i := 0; i < 6; i++ {
		send(t, c, fmt.Sprintf("X-Slow-%d: yes", i))
		time.Sleep(500 * time.Millisecond)
	}
	send(t, c, "", "slow body", ".")
	expectPrefix(t, r, "250 2.0.0 from MTA")
	// Idle while waiting for a command: 421 and close, once smtpd_timeout has passed.
	idle := time.Now()
	expect(t, r, "421 4.3.2 Service shutting down, closing channel")
	if waited := time.Since(idle); waited < 1900*time.Millisecond {
		t.Errorf("421 after %v of idleness, before smtpd_timeout", waited)
	}
}

func TestShutdownIdleAndInFlight(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	idle, ri := dial(t, td.addr)
	_ = idle
	expectPrefix(t, ri, "220 ")
	busy, rb := dial(t, td.addr)
	expectPrefix(t, rb, "220 ")
	send(t, busy, "HELO mta.example.com", "MAIL FROM:<a@sender.example.org>", "RCPT TO:<x@example.com>", "DATA")
	expectPrefix(t, rb, "250 ")
	expectPrefix(t, rb, "250 ")
	expectPrefix(t, rb, "250 ")
	expectPrefix(t, rb, "354 ")
	send(t, busy, "Subject: in flight", "")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- td.Shutdown(ctx)
	}()
	expect(t, ri, "421 4.3.2 Service shutting down, closing channel")
	time.Sleep(100 * time.Millisecond)
	send(t, busy, "the message still completes", ".")
	expectPrefix(t, rb, "250 2.0.0 from MTA")
	expect(t, rb, "421 4.3.2 Service shutting down, closing channel")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", td.addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// More than 100 Received fields: a mail loop; the message is rejected, not forwarded.
func TestTooManyHops(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	body := strings.Repeat("Received: from a by b; Sun, 22 Nov 2026 09:45:23 +0000\r\n", 101) + "Subject: loop\r\n\r\nx\r\n"
	got := sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com"}, body)
	want := "554 5.4.6 id=PID-NN - Rejected by next-hop MTA on relaying, Reject: Too many hops: 101 'Received:' header fields, id=PID-NN"
	if got[0] != want {
		t.Errorf("\n got %q\nwant %q", got[0], want)
	}
	if len(h.Msgs()) != 0 {
		t.Error("forwarded a looping message")
	}
	body = strings.Repeat("Received: from a by b; Sun, 22 Nov 2026 09:45:23 +0000\r\n", 100) + "Subject: ok\r\n\r\nx\r\n"
	if got := sendMessage(t, td, false, "a@sender.example.org", []string{"x@example.com"}, body); !strings.HasPrefix(got[0], "250 ") {
		t.Errorf("100 hops: %q", got[0])
	}
}

// A shutdown whose time runs out closes what is left; nothing was acknowledged.
func TestShutdownTimeoutClosesSessions(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	c, r := openData(t, td.addr)
	send(t, c, "Subject: never finished")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := td.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown: %v", err)
	}
	if line, err := r.ReadString('\n'); err == nil {
		t.Errorf("got %q after a forced close", line)
	}
	if len(h.Msgs()) != 0 {
		t.Error("a message was forwarded")
	}
}

// The client goes away in the middle of DATA: nothing is forwarded, the spool is removed.
func TestClientGoneMidData(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	c, _ := openData(t, td.addr)
	send(t, c, "Subject: cut", "", "half a message")
	time.Sleep(100 * time.Millisecond)
	c.Close()
	waitFor(t, "no message file in TEMPBASE", func() bool { return len(spoolFiles(t, td.tempbase)) == 0 })
	if len(h.Msgs()) != 0 || len(mainLogLines(td.log.String())) != 0 {
		t.Errorf("a broken transfer was processed")
	}
}

// A next hop answering RCPT with a code outside 2xx/4xx/5xx (here 354) leaves that recipient's
// fate unknown: it is tempfailed, never passed on to the client as it is.
func TestNextHopBadReplyCodeIsTempfail(t *testing.T) {
	rcpts := []string{"x@example.com", "odd@example.com"}
	for _, lmtp := range []bool{false, true} {
		h := hop(t, smtptest.Options{RcptCode: map[string]int{"odd@example.com": 354}})
		td := startDaemon(t, h.Addr, "")
		got := sendMessage(t, td, lmtp, "a@sender.example.org", rcpts, smallBody)
		bad := `451 4.5.0 Bad SMTP response code??? "354 3.1.0 from MTA(smtp:[127.0.0.1]:10025): 354 3.1.1 <odd@example.com>: Recipient address rejected: test"`
		want := []string{bad}
		if lmtp {
			want = []string{"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001", bad}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("lmtp=%v:\n got %q\nwant %q", lmtp, got, want)
		}
	}
}
