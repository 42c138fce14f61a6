package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestMailFlows: a message submitted to Postfix goes through amavisfeed to
// us and back through the re-injection smtpd into the mailbox, carrying our
// X-Virus-Scanned and Received fields; Postfix logs our reply; our log
// names the original client that Postfix passed with XFORWARD.
func TestMailFlows(t *testing.T) {
	for _, transport := range []string{"lmtp", "smtp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			p := startPipeline(t, transport, 2, nil)
			// The client enters on 127.0.0.2 while Postfix talks to us from
			// 127.0.0.1: only XFORWARD can tell us 127.0.0.2.
			qid, err := p.pf.SubmitFrom("127.0.0.2", sender, rcpt, message("<flow-"+transport+"@e2e>", "flow", "hello\n"))
			if err != nil {
				t.Fatal(err)
			}
			msgs := p.pf.WaitMessages(t, 1, 30*time.Second)
			m := msgs[0]
			if m.MessageID != "<flow-"+transport+"@e2e>" {
				t.Fatalf("delivered %q", m.MessageID)
			}
			if v := m.HeaderValues("X-Virus-Scanned"); len(v) != 1 || v[0] != "amavis at example.com" {
				t.Errorf("X-Virus-Scanned = %q, want [amavis at example.com]", v)
			}
			proto := map[string]string{"lmtp": "LMTP", "smtp": "ESMTP"}[transport]
			ourReceived := regexp.MustCompile(`^from ` + regexp.QuoteMeta(testenv.PostfixHostname) + ` \(\[127\.0\.0\.1\]\) by localhost \(` +
				regexp.QuoteMeta(daemonHostname) + ` \[127\.0\.0\.1\]\) \(amavis, port ` + portOf(p.am.Addr) + `\) with ` + proto +
				` id [A-Za-z0-9_-]{12} for <rcpt@example\.com>; [A-Z][a-z]{2}, [ 0-9]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \([A-Z]+\)$`)
			found := false
			for _, r := range m.HeaderValues("Received") {
				found = found || ourReceived.MatchString(r)
			}
			if !found {
				t.Errorf("no Received field of ours (%s) in:\n%s", ourReceived, m.Header)
			}
			// Order: X-Virus-Scanned, then our Received, then the Received
			// of the first smtpd (the one Postfix added before filtering).
			hdr := m.Header
			iX, iOurs, iPF := strings.Index(hdr, "X-Virus-Scanned:"), strings.Index(hdr, "(amavis, port"), strings.Index(hdr, "with ESMTP id "+qid)
			if iX < 0 || iOurs < iX || iPF < iOurs {
				t.Errorf("header order X-Virus-Scanned(%d) < our Received(%d) < Postfix's Received for %s(%d) broken:\n%s", iX, iOurs, qid, iPF, hdr)
			}

			// Postfix: delivered via amavisfeed with our reply, which names
			// the queue id of the re-injected copy that reached the mailbox.
			line := p.pf.WaitLog(t, regexp.MustCompile(`postfix/amavisfeed/`+transport+`\[\d+\]: `+qid+`: to=<rcpt@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:`+portOf(p.am.Addr)+`, .*, status=sent \(`), 10*time.Second)
			// LMTP too: amavis's per-recipient reply has no <rcpt> in it.
			reply := regexp.MustCompile(`status=sent \(250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:` + portOf(p.pf.ForwardAddr) + `\): 250 2\.0\.0 Ok: queued as ([0-9A-F]+)\)$`).FindStringSubmatch(line)
			if reply == nil {
				t.Fatalf("Postfix's amavisfeed line lacks our 250 2.0.0 from MTA(...) reply:\n%s", line)
			}
			p.pf.WaitLog(t, regexp.MustCompile(`postfix/local\[\d+\]: `+reply[1]+`: to=<rcpt@example\.com>, .*status=sent \(delivered to file`), 10*time.Second)
			// We pass XFORWARD on to the re-injection smtpd, which takes it
			// from 127.0.0.0/8 (smtpd_authorized_xforward_hosts).
			p.pf.WaitLog(t, regexp.MustCompile(`postfix/reinject/smtpd\[\d+\]: `+reply[1]+`: client=localhost\[127\.0\.0\.1\], orig_queue_id=`+qid+`, orig_client=[^ ]*\[127\.0\.0\.2\]$`), 10*time.Second)

			// Our log: the client address and Postfix's queue id came with
			// XFORWARD.
			ours := p.am.waitLog(regexp.MustCompile(`Passed CLEAN .*\[127\.0\.0\.2\]`), 10*time.Second)
			for _, want := range []string{"<sender@example.org> -> <rcpt@example.com>", "Queue-ID: " + qid, "Message-ID: <flow-" + transport + "@e2e>", "queued_as: " + reply[1]} {
				if !strings.Contains(ours, want) {
					t.Errorf("our log line lacks %q:\n%s", want, ours)
				}
			}
		})
	}
}

// TestLMTPTwoRecipients: over LMTP we answer once per recipient, so
// Postfix logs our reply for each; the one re-injected copy carries both.
func TestLMTPTwoRecipients(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, "lmtp", 2, nil)
	to := []string{"rcpt@" + testenv.PostfixDomain, "other@" + testenv.PostfixDomain}
	qid, err := p.pf.Submit(sender, to, message("<two@e2e>", "two", "for both\n"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := p.pf.WaitMessages(t, 2, 30*time.Second)
	var queuedAs []string
	for _, r := range to {
		line := p.pf.WaitLog(t, regexp.MustCompile(`postfix/amavisfeed/lmtp\[\d+\]: `+qid+`: to=<`+regexp.QuoteMeta(r)+`>, .*status=sent \(250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:`+portOf(p.pf.ForwardAddr)+`\): 250 2\.0\.0 Ok: queued as ([0-9A-F]+)\)$`), 10*time.Second)
		queuedAs = append(queuedAs, line[strings.LastIndex(line, " ")+1:len(line)-1])
	}
	if queuedAs[0] != queuedAs[1] {
		t.Errorf("the recipients were re-injected as %v, want one copy", queuedAs)
	}
	for _, m := range msgs {
		if m.MessageID != "<two@e2e>" {
			t.Errorf("delivered %q", m.MessageID)
		}
		for _, r := range m.HeaderValues("Received") {
			if strings.Contains(r, "(amavis, port") && strings.Contains(r, " for <") {
				t.Errorf("our Received names a recipient of two: %s", r)
			}
		}
	}
	if q, err := p.pf.Queue(); err != nil || len(q) != 0 {
		t.Errorf("Postfix queue = %+v, %v; want empty", q, err)
	}
}

// TestReinjectionDown: with the re-injection smtpd gone we answer 4xx, so
// the message waits in Postfix's deferred queue; when the smtpd is back a
// flush delivers it, once.
func TestReinjectionDown(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, "lmtp", 2, nil)
	p.pf.SetReinject(t, false)
	qid, err := p.pf.Submit(sender, rcpt, message("<down@e2e>", "down", "wait for me\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.pf.WaitQueued(t, qid, "deferred", 30*time.Second)
	reason := regexp.MustCompile(`^host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.5\.0 .*Temporary MTA failure on relaying.* \(in reply to end of DATA command\)$`)
	if len(m.Recipients) != 1 || !reason.MatchString(m.Recipients[0].DelayReason) {
		t.Errorf("deferred %+v, want a delay reason matching %s", m, reason)
	}
	if msgs, err := p.pf.Messages(); err != nil || len(msgs) != 0 {
		t.Fatalf("mailbox while the next hop is down: %d messages, %v", len(msgs), err)
	}

	p.pf.SetReinject(t, true)
	if err := p.pf.Flush(); err != nil {
		t.Fatal(err)
	}
	p.pf.WaitMessages(t, 1, 30*time.Second)
	assertDeliveredOnce(t, p.pf, []string{"<down@e2e>"})
}

// TestKilledMidMessage: SIGKILL while a 20 MB message streams into us; the
// message stays in Postfix's queue and is delivered exactly once, intact,
// after we are restarted.
func TestKilledMidMessage(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, "lmtp", 2, []string{"message_size_limit = 52428800"})

	var body bytes.Buffer
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz", 2) + "\r\n"
	for body.Len() < 20<<20 {
		body.WriteString(line)
	}
	msg := append(message("<big@e2e>", "big", ""), body.Bytes()...)
	qid, err := p.pf.Submit(sender, rcpt, msg)
	if err != nil {
		t.Fatal(err)
	}

	// Kill as soon as a message file of ours has grown past 64 KiB: the
	// transfer is under way and no reply can have been sent yet.
	spool := filepath.Join(p.am.Dir, "home", "tmp")
	deadline := time.Now().Add(30 * time.Second)
	var seen int64
	for seen < 64<<10 {
		files, _ := filepath.Glob(filepath.Join(spool, "*", "email.txt"))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() > seen {
				seen = fi.Size()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no growing email.txt under %s", spool)
		}
		time.Sleep(time.Millisecond)
	}
	p.am.kill(syscall.SIGKILL)
	t.Logf("killed with %d of %d bytes spooled", seen, len(msg))

	q := p.pf.WaitQueued(t, qid, "deferred", 30*time.Second)
	t.Logf("deferred: %s", q.Recipients[0].DelayReason)
	if !strings.Contains(q.Recipients[0].DelayReason, "lost connection") {
		t.Errorf("delay reason %q, want a lost connection", q.Recipients[0].DelayReason)
	}
	if msgs, err := p.pf.Messages(); err != nil || len(msgs) != 0 {
		t.Fatalf("mailbox after the kill: %d messages, %v", len(msgs), err)
	}

	p.am.start()
	if err := p.pf.Flush(); err != nil {
		t.Fatal(err)
	}
	msgs := p.pf.WaitMessages(t, 1, 60*time.Second)
	assertDeliveredOnce(t, p.pf, []string{"<big@e2e>"})
	want := sha256.Sum256(bytes.ReplaceAll(body.Bytes(), []byte("\r\n"), []byte("\n")))
	if got := sha256.Sum256(msgs[0].Body); got != want {
		t.Errorf("body of %d bytes differs from the %d submitted", len(msgs[0].Body), body.Len())
	}
}

// TestParallelNoLoss: 300 messages from 8 parallel clients through Postfix
// with maxproc 8 and max_servers 8, over LMTP and over SMTP: each delivered
// exactly once.
func TestParallelNoLoss(t *testing.T) {
	const total, clients = 300, 8
	for _, transport := range []string{"lmtp", "smtp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			p := startPipeline(t, transport, 8, nil)
			start := time.Now()
			var wg sync.WaitGroup
			ids := make([]string, total)
			for c := range clients {
				wg.Go(func() {
					for i := c; i < total; i += clients {
						ids[i] = fmt.Sprintf("<n%03d-%s@e2e>", i, transport)
						if _, err := p.pf.Submit(sender, rcpt, message(ids[i], fmt.Sprintf("no loss %d", i), fmt.Sprintf("message %d\n", i))); err != nil {
							t.Errorf("submit %d: %v", i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			submitted := time.Since(start)
			p.pf.WaitMessages(t, total, 120*time.Second)
			t.Logf("%s: %d messages submitted in %v, all delivered after %v", transport, total, submitted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			assertDeliveredOnce(t, p.pf, ids)
			// the main lines, not the per-recipient ones of $log_recip_templ ("Passed CLEAN, <...")
			if n := strings.Count(p.am.Log(), "Passed CLEAN {"); n != total {
				t.Errorf("our log has %d Passed CLEAN lines, want %d", n, total)
			}
		})
	}
}

// TestRestartUnderLoad: a stop (SIGTERM, then a new daemon) or a reload
// (SIGHUP) while 8 clients keep sending loses nothing and duplicates
// nothing: what was deferred meanwhile is delivered after a flush.
func TestRestartUnderLoad(t *testing.T) {
	const total, clients = 160, 8
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p := startPipeline(t, "lmtp", 8, nil)
			name := strings.ReplaceAll(sig.String(), " ", "")
			ids := make([]string, total)
			var wg sync.WaitGroup
			for c := range clients {
				wg.Go(func() {
					for i := c; i < total; i += clients {
						ids[i] = fmt.Sprintf("<r%03d-%s@e2e>", i, name)
						if _, err := p.pf.Submit(sender, rcpt, message(ids[i], "restart", fmt.Sprintf("message %d\n", i))); err != nil {
							t.Errorf("submit %d: %v", i, err)
							return
						}
					}
				})
			}
			p.pf.WaitMessages(t, total/4, 60*time.Second)
			if sig == syscall.SIGTERM {
				p.am.kill(sig)
				p.am.start()
			} else {
				p.am.cmd.Process.Signal(sig)
			}
			wg.Wait()
			flushUntil(t, p.pf, total, 60*time.Second)
			assertDeliveredOnce(t, p.pf, ids)
			deferred := 0
			for _, l := range strings.Split(p.pf.Log(), "\n") {
				if strings.Contains(l, "postfix/amavisfeed/lmtp[") && strings.Contains(l, "status=deferred") {
					deferred++
				}
			}
			t.Logf("%s: %d delivery attempts of %d messages were deferred", sig, deferred, total)
			if sig == syscall.SIGHUP && deferred != 0 {
				t.Errorf("a reload deferred %d deliveries; the listener must stay open", deferred)
			}
		})
	}
}

// TestEICAR: the same pipeline with a private clamd carries EICAR end to
// end: discarded by us (Postfix logs our 250 2.7.0 discard reply), nothing
// in the mailbox, while a clean message sent after it arrives.
func TestEICAR(t *testing.T) {
	t.Parallel()
	clamd := testenv.StartClamd(t)
	scanner := []string{"[[av_scanners]]", `name = "ClamAV-clamd"`, `type = "clamd"`, fmt.Sprintf("sockets = [%q]", clamd.TCPAddr), `query = "INSTREAM"`}
	p := startPipeline(t, "lmtp", 2, nil, scanner...)
	qid, err := p.pf.Submit(sender, rcpt, message("<eicar@e2e>", "eicar", testenv.EICAR+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	cleanQID, err := p.pf.Submit(sender, rcpt, message("<clean@e2e>", "clean", "nothing to see\n"))
	if err != nil {
		t.Fatal(err)
	}
	p.pf.WaitMessages(t, 1, 30*time.Second)
	feed := func(id string) *regexp.Regexp {
		return regexp.MustCompile(`postfix/amavisfeed/lmtp\[\d+\]: ` + id + `: to=<rcpt@example\.com>, .*status=sent \((.*)\)$`)
	}
	p.pf.WaitLog(t, feed(cleanQID), 10*time.Second)
	eicarLine := p.pf.WaitLog(t, feed(qid), 10*time.Second)
	asked := false // a FOUND other than StartClamd's own probe below clamd.Dir
	for _, l := range strings.Split(clamd.Log(), "\n") {
		asked = asked || strings.HasSuffix(l, " FOUND") && !strings.Contains(l, clamd.Dir)
	}
	if !asked {
		t.Errorf("clamd was never asked about the message; EICAR went through: %s", eicarLine)
	}
	want := regexp.MustCompile(`status=sent \(250 2\.7\.0 Ok, discarded, id=[0-9-]+ - INFECTED: ` + regexp.QuoteMeta(clamd.VirusName) + `\)$`)
	if !want.MatchString(eicarLine) {
		t.Errorf("Postfix's line for the EICAR message does not match %s:\n%s", want, eicarLine)
	}
	p.am.waitLog(regexp.MustCompile(`Blocked INFECTED \(`+regexp.QuoteMeta(clamd.VirusName)+`\) \{Discarded(Inbound|OpenRelay)\}`), 10*time.Second)
	assertDeliveredOnce(t, p.pf, []string{"<clean@e2e>"})
}

// flushUntil runs `postqueue -f` every 2 s until the mailbox holds n
// messages: after the daemon was down, qmgr suspends the destination and
// defers what it holds, and a message may reach the deferred queue just
// after a flush scanned it.
func flushUntil(t *testing.T, pf *testenv.Postfix, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if err := pf.Flush(); err != nil {
			t.Fatal(err)
		}
		wait := 2 * time.Second
		if rest := time.Until(deadline); rest < wait {
			wait = rest
		}
		if wait <= 0 {
			pf.WaitMessages(t, n, 0)
			return
		}
		if msgs, err := pf.Messages(); err == nil && len(msgs) >= n {
			return
		}
		time.Sleep(wait)
	}
}

// assertDeliveredOnce checks that the mailbox holds each of ids exactly
// once and nothing else, and that Postfix's queue is empty.
func assertDeliveredOnce(t *testing.T, pf *testenv.Postfix, ids []string) {
	t.Helper()
	// Give a duplicate the time to show up.
	time.Sleep(500 * time.Millisecond)
	counts, err := pf.MessageIDCounts()
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, id := range ids {
		if counts[id] != 1 {
			bad++
			if bad <= 10 {
				t.Errorf("%s delivered %d times", id, counts[id])
			}
		}
		delete(counts, id)
	}
	if bad > 10 {
		t.Errorf("... %d messages not delivered exactly once", bad)
	}
	if len(counts) != 0 {
		t.Errorf("unexpected messages in the mailbox: %v", counts)
	}
	if q, err := pf.Queue(); err != nil || len(q) != 0 {
		t.Errorf("Postfix queue = %+v, %v; want empty", q, err)
	}
}

func portOf(addr string) string {
	return addr[strings.LastIndex(addr, ":")+1:]
}
