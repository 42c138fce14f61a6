package amavis

import (
	"errors"
	"fmt"
	"strings"

	"amavisgo/conf"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// reply gives the client's replies from the per-recipient outcomes: one reply for SMTP,
// one per recipient for LMTP.
func (d *Daemon) reply(m *Message) []smtp.Reply {
	if m.LMTP {
		return lmtpReplies(m.Recips)
	}
	suppressed := false
	for _, r := range m.Recips {
		suppressed = suppressed || r.DSN == verdict.DSNSuppressed
	}
	m.Response = aggregateReply(m.Recips, m.LogID, suppressed)
	return []smtp.Reply{m.Response}
}

// stageFailed is the reply when a stage failed: its own reply when it has one (a quarantine
// or notification failure, a fatal virus scan failure), else the generic 451 of failed.
func (d *Daemon) stageFailed(m *Message, tl *taskLog, err error) []smtp.Reply {
	var se *stageError
	if !errors.As(err, &se) || se.reply == (smtp.Reply{}) {
		section := "check"
		if se != nil {
			section, err = se.section, se.err
		}
		return d.failed(m, tl, section, err)
	}
	tl.Logf(-2, "TROUBLE in check_mail: %v", err)
	m.preserve = err.Error()
	rep := se.reply
	out := []smtp.Reply{rep}
	if m.LMTP {
		out = make([]smtp.Reply, len(m.Recips))
		for i := range out {
			out[i] = rep
		}
	}
	return out
}

// failed is the reply for an internal error: "451 4.5.0 Error in processing, id=<logid>,
// <section> FAILED: <error>" for the message (or each LMTP recipient).
func (d *Daemon) failed(m *Message, tl *taskLog, section string, err error) []smtp.Reply {
	rep := smtp.ProcessingFailed(m.LogID, section, err.Error())
	tl.Logf(-2, "TROUBLE in check_mail: %s FAILED: %v", section, err)
	if section != "spool" { // only once it is all there
		m.preserve = rep.Text
	}
	if !m.LMTP {
		return []smtp.Reply{rep}
	}
	out := make([]smtp.Reply, len(m.Recips))
	for i := range out {
		out[i] = rep
	}
	return out
}

// aggregateReply computes the one SMTP reply for all recipients from the per-recipient
// replies, as one_response_for_all in Amavis::rfc2821_2822_Tools does:
//  1. any 4xx: the first 4xx, so that the MTA retries everything;
//  2. all recipients discarded: the first discard reply;
//  3. all rejected (5xx, not bounced; discards allowed): a 5xx, the next hop's own preferred;
//  4. otherwise the first genuine delivery reply (or "250 2.5.0 Ok, id=<logid>"), followed by
//     ", [but ][N ]REJECT, and [N ]BOUNCE, and [N ]DISCARD" for the recipients not delivered.
func aggregateReply(rs []*verdict.Recipient, logID string, bounceSuppressed bool) smtp.Reply {
	if len(rs) == 0 {
		return smtp.Reply{Code: 250, Enh: "2.5.0", Text: "Ok, id=" + logID}
	}
	for _, r := range rs {
		if r.Reply.Class() == 4 {
			return r.Reply
		}
	}
	for _, r := range rs {
		if c := r.Reply.Class(); c != 2 && c != 5 {
			return badCode(r.Reply)
		}
	}
	allDiscard := true
	for _, r := range rs {
		if r.Destiny != conf.D_DISCARD {
			allDiscard = false
			break
		}
	}
	if allDiscard {
		return rs[0].Reply
	}
	var reject *smtp.Reply
	rejectByMTA, allRejected := false, true
	for _, r := range rs {
		switch {
		case r.Destiny == conf.D_DISCARD:
		case r.Reply.Class() == 5 && r.Destiny != conf.D_BOUNCE:
			if reject == nil || (r.ByMTA && !rejectByMTA) {
				reject, rejectByMTA = &r.Reply, r.ByMTA
			}
		default:
			allRejected = false
		}
		if !allRejected {
			break
		}
	}
	if allRejected && reject != nil {
		return *reject
	}
	var ok *smtp.Reply
	rejects, bounces, drops := 0, 0, 0
	for _, r := range rs {
		if r.Reply.Class() == 2 && r.Destiny == conf.D_PASS && ok == nil {
			ok = &r.Reply
		}
		if r.Destiny == conf.D_DISCARD {
			drops++
		}
		if r.Reply.Class() == 5 {
			if r.Destiny == conf.D_BOUNCE {
				bounces++
			} else {
				rejects++
			}
		}
	}
	res := smtp.Reply{Code: 250, Enh: "2.5.0", Text: "Ok, id=" + logID}
	if ok != nil {
		res = *ok
	}
	if n := rejects + bounces + drops; n > 0 {
		var parts []string
		add := func(cnt int, name string) {
			switch {
			case cnt == 0:
			case cnt == len(rs):
				parts = append(parts, name)
			default:
				parts = append(parts, fmt.Sprintf("%d %s", cnt, name))
			}
		}
		bounceName := "BOUNCE"
		if bounceSuppressed {
			bounceName = "DISCARD(bounce.suppressed)"
		}
		add(rejects, "REJECT")
		add(bounces, bounceName)
		add(drops, "DISCARD")
		res.Text += ", "
		if n < len(rs) {
			res.Text += "but "
		}
		res.Text += strings.Join(parts, ", and ")
	}
	return res
}

// lmtpReplies gives the per-recipient replies of an LMTP session, in RCPT order: 2xx and 4xx
// as they are; a 5xx of a recipient amavis bounced (a DSN went out) becomes a 250 so that the
// MTA does not bounce again; a D_REJECT 5xx stays (as Amavis::In::SMTP answers LMTP).
func lmtpReplies(rs []*verdict.Recipient) []smtp.Reply {
	out := make([]smtp.Reply, len(rs))
	for i, r := range rs {
		rep := r.Reply
		switch {
		case rep.Class() == 2 || rep.Class() == 4:
		case r.DSN == verdict.DSNSent:
			rep = smtp.Reply{Code: 250, Enh: "2.5.0", Text: fmt.Sprintf("Ok %s, DSN was sent (%s)", r.AddrSMTP, r.Reply)}
		case r.DSN == verdict.DSNSuppressed:
			rep = smtp.Reply{Code: 250, Enh: "2.5.0", Text: fmt.Sprintf("Ok %s, DSN suppressed (%s)", r.AddrSMTP, r.Reply)}
		case rep.Class() == 5 && r.Destiny != conf.D_REJECT:
			rep = smtp.Reply{Code: 250, Enh: "2.5.0", Text: fmt.Sprintf("Ok %s, DSN suppressed_2 (%s)", r.AddrSMTP, r.Reply)}
		case rep.Class() != 5:
			rep = badCode(rep)
		}
		out[i] = rep
	}
	return out
}

// badCode tempfails a recipient whose reply is not 2xx, 4xx or 5xx (a next hop's 354 to RCPT):
// its fate is unknown, so the MTA must keep the message for it.
func badCode(rep smtp.Reply) smtp.Reply {
	return smtp.Reply{Code: 451, Enh: "4.5.0", Text: fmt.Sprintf("Bad SMTP response code??? %q", rep.String())}
}
