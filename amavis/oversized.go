package amavis

import (
	"fmt"

	"amavisgo/smtp"
	"amavisgo/verdict"
)

// Size limits of message_size_limit_maps are enforced by the SMTP session itself, as
// Amavis::In::SMTP does: a declared SIZE over a recipient's limit refuses that recipient at RCPT,
// and a message that turns out bigger than the largest limit of its recipients is refused in
// DATA, as a whole (one reply, in LMTP too), without being checked, forwarded or bounced.

// rcptCheck refuses a recipient whose message_size_limit_maps limit is below the size the
// client declared with MAIL SIZE=, and logs it as amavis does (not as a client error).
func (cs *connState) rcptCheck(tx *smtp.Transaction, rc *smtp.Recipient) *smtp.Reply {
	if rep := cs.ldapRcpt(tx, rc); rep != nil { // the directory is asked at RCPT (ldap.go)
		return rep
	}
	if tx.Size <= 0 {
		return nil
	}
	if limit := verdict.SizeLimit(cs.rcptPolicy(tx, rc.Addr), rc.Addr); limit > 0 && tx.Size > limit {
		rep := &smtp.Reply{Code: 552, Enh: "5.3.4", Text: fmt.Sprintf(
			"Declared message size (%d B) exceeds size limit for recipient %s", tx.Size, rc.AddrSMTP)}
		cs.tl.Logf(0, "%s REJECT 'RCPT TO': %s", tx.Proto, rep)
		return rep
	}
	return nil
}

// dataSizeLimit is the limit DATA is held to: the largest message_size_limit_maps limit among
// the recipients, lowered to smtpd_message_size_limit; 0 (none) when no recipient has a limit,
// since the oversized destiny of the others is D_PASS.
func (cs *connState) dataSizeLimit(tx *smtp.Transaction) int64 {
	var limit int64
	for _, rc := range tx.Rcpts {
		limit = max(limit, verdict.SizeLimit(cs.rcptPolicy(tx, rc.Addr), rc.Addr))
	}
	if limit == 0 {
		return 0
	}
	if g := cs.policy.SmtpdMessageSizeLimit; g > 0 {
		if g < 65536 && cs.cfg.EnforceSmtpdMessageSizeLimit64kbMin {
			g = 65536
		}
		limit = min(limit, g)
	}
	return limit
}

// refuseOversized answers a message over its DATA size limit (wire is its size on the wire,
// stuffing dots included, as amavis counts it).
func (d *Daemon) refuseOversized(m *Message, tl *taskLog, tx *smtp.Transaction, wire int64) []smtp.Reply {
	tl.Logf(1, "Message size exceeded %d B, skipping further input", m.sizeLimit)
	rep := smtp.Reply{Code: 552, Enh: "5.3.4", Text: fmt.Sprintf("Message size (%d B) exceeds size limit", wire)}
	tl.Logf(0, "%s REJECT: %s", m.Proto, rep)
	tx.Refused = true
	return []smtp.Reply{rep}
}
