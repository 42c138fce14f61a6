package amavis

import (
	"errors"
	"net"
	"strings"
	"syscall"

	"amavisgo/conf"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// logForwarding explains one forwarding transaction in the log as amavis does: a failed
// connection attempt (Amavis::IO::RW), a negative answer to DATA or to the final dot, an abort
// in the middle of the message, and the summary "<mail_id> FWD from <s> -> <r>, <params>
// <reply>" (Amavis::Out::SMTP), at level -1 when the transaction did not succeed. It runs once
// every recipient of rs has its reply from this transaction.
func logForwarding(tl *taskLog, m *Message, method conf.Method, rs []*verdict.Recipient, res *smtp.Result, err error) {
	var se *smtp.Error
	errors.As(err, &se)
	hostPort := "[" + method.Host + "]:" + method.Port
	if se != nil && se.Stage == "fwd-connect" {
		var ne *net.OpError
		if errors.As(se.Err, &ne) && ne.Op == "dial" {
			tl.Logf(-1, "connect to %s failed, attempt #1: Can't connect to socket %s: %s", hostPort, hostPort, errnoText(ne.Err))
		}
	}
	if res != nil {
		logNegativeReplies(tl, m, rs, res)
	}
	if se != nil && se.InData {
		tl.Logf(-1, "mail_via_smtp: NOTICE: aborting SMTP session, %v", se)
	}
	// The one reply that stands for the transaction: a tempfail before a reject before a
	// success, the first of each; a broken conversation's own reply beats them all.
	var sum smtp.Reply
	for i, r := range rs {
		if res == nil || !res.Rcpts[i].Done {
			sum = r.Reply
			break
		}
		if c, s := r.Reply.Class(), sum.Class(); i == 0 || c == 4 && s != 4 || c != 2 && s != 4 && s != 5 {
			sum = r.Reply
		}
	}
	level := -1
	if sum.Class() == 2 {
		level = 1
	}
	if !tl.Enabled(level) {
		return
	}
	addrs := make([]string, len(rs))
	for i, r := range rs {
		addrs[i] = smtp.Quote(r.Addr)
	}
	var params []string
	if res != nil {
		params = res.Params
	}
	tl.Logf(level, "%s FWD from %s -> %s, %s %s", m.MailID, m.SenderSMTP, strings.Join(addrs, ","),
		strings.Join(params, " "), sum)
}

// logNegativeReplies logs the next hop's refusal of DATA, and its negative answers (or none)
// to the final dot: one for SMTP, named by the first recipient (", etc." when there are more),
// one per recipient for LMTP.
func logNegativeReplies(tl *taskLog, m *Message, rs []*verdict.Recipient, res *smtp.Result) {
	for _, rr := range res.Rcpts {
		if rr.Done && rr.Cmd == "DATA" && rr.Reply.Class() != 2 {
			tl.Logf(0, "Negative SMTP resp. to DATA: %s", rr.Reply)
			break
		}
	}
	for i, rr := range res.Rcpts {
		if !rr.Done || rr.Cmd != "data-dot" {
			continue
		}
		who := smtp.Quote(rs[i].Addr)
		if !m.LMTP && len(rs) > 1 {
			who += ", etc."
		}
		switch {
		case rr.Reply.Code == 0:
			tl.Logf(0, "No SMTP response to data-dot (%s), dt: %.3f s", who, rr.Elapsed.Seconds())
		case rr.Reply.Class() != 2:
			tl.Logf(0, "Negative SMTP response to data-dot (%s): %s, dt: %.1f ms", who, rr.Reply,
				float64(rr.Elapsed.Microseconds())/1000)
		}
		if !m.LMTP {
			break
		}
	}
}

// errnoText is a system error as the C library words it ("Connection refused").
func errnoText(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err.Error()
	}
	s := errno.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
