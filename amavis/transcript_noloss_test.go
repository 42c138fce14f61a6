package amavis

import (
	"strings"
	"testing"
	"time"

	"amavisgo/smtp"
	"amavisgo/smtp/smtptest"
)

// TestNothingAcknowledgedThatTheNextHopDidNotTake: every kind of next-hop trouble, with SMTP and
// with LMTP input. The replies are amavis's (Amavis::In::SMTP, one_response_for_all in
// Amavis::rfc2821_2822_Tools, Amavis::Out::SMTP), line for line, and for every recipient we
// answered 2xx for, the next hop holds the message for it or the DSN that tells the sender it was
// rejected.
func TestNothingAcknowledgedThatTheNextHopDidNotTake(t *testing.T) {
	rcpts := []string{"x@example.com", "y@example.com"}
	for _, tc := range []struct {
		name      string
		down      bool
		blackhole bool   // the next hop drops our SYNs
		hold      bool   // the next hop holds back its reply to the final dot
		extra     string // more configuration
		opts      smtptest.Options
		smtp      string   // the one reply to SMTP input
		lmtp      []string // the replies to LMTP input, per recipient; nil: smtp's for each
	}{
		{name: "down", down: true,
			smtp: "451 4.5.0 id=PID-NN - Temporary MTA failure on relaying, From MTA() during fwd-connect (All attempts (1) failed connecting to smtp:[127.0.0.1]:10025): id=PID-NN",
			lmtp: nil},
		{name: "drops SYNs", blackhole: true,
			smtp: "451 4.5.0 id=PID-NN - Temporary MTA failure on relaying, From MTA() during fwd-connect (All attempts (1) failed connecting to smtp:[127.0.0.1]:10025): id=PID-NN",
			lmtp: nil},
		{name: "MAIL 451", opts: smtptest.Options{MailCode: 451},
			smtp: "451 4.1.0 id=PID-NN - Temporary MTA failure on relaying, from MTA(smtp:[127.0.0.1]:10025): 451 4.1.0 <a@sender.example.org>: Sender address rejected: test",
			lmtp: nil},
		{name: "MAIL 550", opts: smtptest.Options{MailCode: 550},
			smtp: "550 5.1.0 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.0 <a@sender.example.org>: Sender address rejected: test",
			lmtp: nil},
		{name: "RCPT 550 for one", opts: smtptest.Options{RcptCode: map[string]int{"y@example.com": 550}},
			smtp: "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001, but 1 REJECT",
			lmtp: []string{
				"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001",
				"550 5.1.1 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <y@example.com>: Recipient address rejected: test"}},
		{name: "RCPT 450 for one", opts: smtptest.Options{RcptCode: map[string]int{"y@example.com": 450}},
			smtp: "451 4.5.0 id=PID-NN - Temporary MTA failure on relaying, From MTA(smtp:[127.0.0.1]:10025) during fwd-data-chkpnt (Bail out, DATA accepted but tempfailed recips, not an LMTP input): id=PID-NN",
			lmtp: []string{
				"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001",
				"450 4.1.1 id=PID-NN - Temporary MTA failure on relaying, from MTA(smtp:[127.0.0.1]:10025): 450 4.1.1 <y@example.com>: Recipient address rejected: test"}},
		{name: "RCPT 550 for both", opts: smtptest.Options{RcptCode: map[string]int{"x@example.com": 550, "y@example.com": 550}},
			smtp: "550 5.1.1 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <x@example.com>: Recipient address rejected: test",
			lmtp: []string{
				"550 5.1.1 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <x@example.com>: Recipient address rejected: test",
				"550 5.1.1 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <y@example.com>: Recipient address rejected: test"}},
		{name: "451 after DATA", opts: smtptest.Options{DataCode: 451},
			smtp: "451 4.3.0 id=PID-NN - Temporary MTA failure on relaying, from MTA(smtp:[127.0.0.1]:10025): 451 4.3.0 Error: test failure after DATA",
			lmtp: nil},
		{name: "554 after DATA", opts: smtptest.Options{DataCode: 554},
			smtp: "554 5.3.0 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 554 5.3.0 Error: test failure after DATA",
			lmtp: nil},
		// Debian's amavisd-new 2.13 answers this very case so (Amavis::Out::SMTP takes the
		// missing answer for an empty one).
		{name: "dropped after DATA", opts: smtptest.Options{DropAfterData: true},
			smtp: "451 4.5.0 id=PID-NN - Temporary MTA failure on relaying, from MTA(smtp:[127.0.0.1]:10025): No resp. to data-dot",
			lmtp: nil},
		{name: "silent after DATA past child_timeout", hold: true, extra: "child_timeout = 1",
			smtp: "450 4.4.2 id=PID-NN - Temporary MTA failure on relaying, Timed out during fwd-data-end, MTA(smtp:[127.0.0.1]:10025), id=PID-NN",
			lmtp: nil},
		{name: "LMTP hop 450 for one after DATA", opts: smtptest.Options{LMTP: true, DataCodeFor: map[string]int{"y@example.com": 450}},
			smtp: "450 4.1.1 id=PID-NN - Temporary MTA failure on relaying, from MTA(lmtp:[127.0.0.1]:10025): 450 4.1.1 <y@example.com> <y@example.com>: mailbox unavailable: test",
			lmtp: []string{
				"250 2.0.0 from MTA(lmtp:[127.0.0.1]:10025): 250 2.0.0 <x@example.com> Ok: queued as SINKQ0001",
				"450 4.1.1 id=PID-NN - Temporary MTA failure on relaying, from MTA(lmtp:[127.0.0.1]:10025): 450 4.1.1 <y@example.com> <y@example.com>: mailbox unavailable: test"}},
		{name: "LMTP hop 550 for one after DATA", opts: smtptest.Options{LMTP: true, DataCodeFor: map[string]int{"y@example.com": 550}},
			smtp: "250 2.0.0 from MTA(lmtp:[127.0.0.1]:10025): 250 2.0.0 <x@example.com> Ok: queued as SINKQ0001, but 1 REJECT",
			lmtp: []string{
				"250 2.0.0 from MTA(lmtp:[127.0.0.1]:10025): 250 2.0.0 <x@example.com> Ok: queued as SINKQ0001",
				"550 5.1.1 id=PID-NN - Rejected by next-hop MTA on relaying, from MTA(lmtp:[127.0.0.1]:10025): 550 5.1.1 <y@example.com> <y@example.com>: mailbox unavailable: test"}},
	} {
		for _, lmtpIn := range []bool{false, true} {
			name := tc.name + "/SMTP input"
			if lmtpIn {
				name = tc.name + "/LMTP input"
			}
			t.Run(name, func(t *testing.T) {
				var h *smtptest.NextHop
				var td *testDaemon
				switch {
				case tc.down:
					td = startDaemon(t, "", "")
				case tc.blackhole:
					// Restored after the daemon's own cleanup (cleanups run last-in first-out).
					saved := smtp.ConnectTimeout
					t.Cleanup(func() { smtp.ConnectTimeout = saved })
					smtp.ConnectTimeout = 300 * time.Millisecond
					td = startDaemon(t, smtptest.Blackhole(t), "")
				default:
					if tc.hold {
						hold := make(chan struct{})
						t.Cleanup(func() { close(hold) })
						tc.opts.HoldReply = hold
					}
					h = hop(t, tc.opts)
					extra := tc.extra
					if tc.opts.LMTP {
						extra += "\nforward_method = \"lmtp:[127.0.0.1]:" + h.Port() + "\""
					}
					td = startDaemon(t, h.Addr, extra)
				}
				got := sendMessage(t, td, lmtpIn, "a@sender.example.org", rcpts, smallBody)
				want := []string{tc.smtp}
				if lmtpIn {
					want = tc.lmtp
					if want == nil {
						want = []string{tc.smtp, tc.smtp}
					}
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("replies\n got %q\nwant %q", got, want)
				}
				var msgs []smtptest.Msg
				if h != nil {
					msgs = h.Msgs()
				}
				for i, r := range rcpts {
					reply := got[0]
					if lmtpIn {
						reply = got[i]
					}
					if reply[0] == '2' && !tookMessage(msgs, r) && !tookDSN(msgs, "a@sender.example.org", r) {
						t.Errorf("%s acknowledged with %q, but the next hop took neither the message nor a DSN for it", r, reply)
					}
				}
			})
		}
	}
}

// tookMessage: the next hop accepted the original message for rcpt.
func tookMessage(msgs []smtptest.Msg, rcpt string) bool {
	for _, m := range msgs {
		if m.From == "a@sender.example.org" && strings.Contains(","+strings.Join(m.Rcpts, ",")+",", ","+rcpt+",") {
			return true
		}
	}
	return false
}

// tookDSN: the next hop accepted a failure DSN to sender that names rcpt.
func tookDSN(msgs []smtptest.Msg, sender, rcpt string) bool {
	for _, m := range msgs {
		if m.From == "" && strings.Join(m.Rcpts, ",") == sender &&
			strings.Contains(string(m.Data), "Final-Recipient: rfc822;"+rcpt+"\r\nAction: failed\r\n") {
			return true
		}
	}
	return false
}

// A next hop that does not announce XFORWARD gets none (amavis sends only announced
// attributes), and the message goes through all the same.
func TestNextHopWithoutXForward(t *testing.T) {
	h := hop(t, smtptest.Options{NoXForward: true})
	td := startDaemon(t, h.Addr, "")
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "EHLO mta.example.com", "XFORWARD NAME=mail.sender.example.org ADDR=198.51.100.7 PORT=4567",
		"MAIL FROM:<a@sender.example.org>", "RCPT TO:<x@example.com>", "DATA")
	for l := expectPrefix(t, r, "250"); !strings.HasPrefix(l, "250 "); l = expectPrefix(t, r, "250") {
	}
	expect(t, r, "250 2.5.0 Ok XFORWARD")
	expectPrefix(t, r, "250 2.1.0 ")
	expectPrefix(t, r, "250 2.1.5 ")
	expectPrefix(t, r, "354 ")
	send(t, c, "Subject: no xforward", "", "x", ".")
	expectPrefix(t, r, "250 2.0.0 from MTA(smtp:[127.0.0.1]:")
	lines := h.Lines()
	for _, l := range lines {
		if strings.HasPrefix(strings.ToUpper(l), "XFORWARD") {
			t.Errorf("the next hop got %q without announcing XFORWARD", l)
		}
	}
	if len(lines) < 2 || lines[1] != "MAIL FROM:<a@sender.example.org> BODY=7BIT" {
		t.Errorf("next hop got %q", lines)
	}
}
