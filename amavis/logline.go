package amavis

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// logMain writes amavis's main log line ($log_short_templ): "Passed ..." for the delivered
// recipients and "Blocked ..." for the others; both when the message was split.
func (d *Daemon) logMain(tl *taskLog, m *Message, elapsed time.Duration) {
	var passed, blocked []*verdict.Recipient
	for _, r := range m.Recips {
		if r.Delivered() {
			passed = append(passed, r)
		} else {
			blocked = append(blocked, r)
		}
	}
	if len(passed) > 0 {
		tl.Logf(0, "%s", mainLine(m, "Passed", passed, elapsed))
	}
	if len(blocked) > 0 {
		tl.Logf(0, "%s", mainLine(m, "Blocked", blocked, elapsed))
	}
	if m.Policy.LogRecipLines() && tl.Enabled(0) {
		for _, r := range m.Recips {
			tl.Logf(0, "%s", recipLine(m, r))
		}
	}
}

// recipCategory names a recipient's category as amavis's built-in $log_recip_templ does.
var recipCategory = [...]string{"OTHER", "CLEAN", "MTA-BLOCKED", "OVERSIZED", "BAD-HEADER", "SPAMMY", "SPAM", "UNCHECKED", "BANNED", "INFECTED"}

var queuedAsRE = regexp.MustCompile(`queued as ([0-9A-Za-z]+)`)

// recipLine is one recipient's line of amavis's built-in $log_recip_templ (Amavis.pm), as it
// comes out without spam checks: "Passed CLEAN, <s> -> <r>, Hits: -, tag=0, tag2=0, kill=0,
// queued_as: 4Fq, L/0/0/0". A recipient not passed is "Blocked ..., <s> -> , ..." (the template
// lists the passed recipients there, so none), without the next hop's answer.
func recipLine(m *Message, r *verdict.Recipient) string {
	var b strings.Builder
	passed := r.Destiny == conf.D_PASS && (r.Reply.Class() == 2 || r.Reply == (smtp.Reply{}))
	if passed {
		b.WriteString("Passed ")
	} else {
		b.WriteString("Blocked ")
	}
	c := r.Category()
	if c.Major >= 0 && c.Major < len(recipCategory) {
		b.WriteString(recipCategory[c.Major])
	}
	switch c.Major {
	case verdict.CC_BANNED:
		b.WriteString(" (" + r.BannedReason + ")")
	case verdict.CC_VIRUS:
		b.WriteString(" (" + strings.Join(m.Verdict.Viruses, ", ") + ")")
	}
	b.WriteString(", " + m.SenderSMTP + " -> ")
	if passed {
		b.WriteString(smtp.Quote(r.Addr))
	}
	b.WriteString(", Hits: -, tag=0, tag2=0, kill=0")
	if passed && r.Remote != (smtp.Reply{}) {
		resp := r.Remote.String()
		if id := queuedAsRE.FindStringSubmatch(resp); id != nil {
			b.WriteString(", queued_as: " + id[1])
		} else {
			b.WriteString(", fwd: " + resp)
		}
	}
	if r.Local {
		b.WriteString(", L/0/0/0")
	} else {
		b.WriteString(", 0/0/0/0")
	}
	return b.String()
}

func mainLine(m *Message, passed string, rs []*verdict.Recipient, elapsed time.Duration) string {
	var b strings.Builder
	b.Grow(256)
	b.WriteString(passed)
	b.WriteByte(' ')
	b.WriteString(m.Verdict.LogCategory())
	words := make([]string, len(m.Recips))
	for i, r := range m.Recips {
		if !m.LMTP {
			// SMTP: a recipient's status is the message's one reply (a 550 of the next hop
			// for one recipient under a 250 for the message was bounced, not rejected).
			rc := *r
			rc.Reply = m.Response
			r = &rc
		}
		words[i] = verdict.ActionWord(r, m.Policy.Originating)
	}
	var performed []string
	if len(m.Quarantined) > 0 {
		performed = append(performed, "Quarantined")
	}
	b.WriteString(" ")
	b.WriteString(verdict.Actions(words, performed...))
	b.WriteString(",")
	if p := m.Policy.PolicyBankPath; p != "" {
		b.WriteString(" ")
		b.WriteString(p)
	}
	if m.Client.Addr != "" {
		if m.Policy.Originating {
			b.WriteString(" LOCAL")
		}
		b.WriteString(" [")
		b.WriteString(trimIPv6Tag(m.Client.Addr))
		b.WriteString("]")
		if m.Client.Port != "" {
			b.WriteString(":")
			b.WriteString(m.Client.Port)
		}
	}
	if e := oldestPublicIP(m); e != "" {
		b.WriteString(" [")
		b.WriteString(e)
		b.WriteString("]")
	}
	// The sender as the client wrote it, the recipients quoted canonically (amavis's %s and %D).
	b.WriteString(" ")
	b.WriteString(m.SenderSMTP)
	b.WriteString(" -> ")
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(smtp.Quote(r.Addr))
	}
	if len(m.Quarantined) > 0 {
		b.WriteString(", quarantine: ")
		b.WriteString(strings.Join(m.Quarantined, ", "))
	}
	if m.QueueID != "" {
		b.WriteString(", Queue-ID: ")
		b.WriteString(m.QueueID)
	}
	if m.MessageID != "" {
		b.WriteString(", Message-ID: ")
		b.WriteString(m.MessageID)
	}
	if m.MailID != "" {
		b.WriteString(", mail_id: ")
		b.WriteString(m.MailID)
	}
	b.WriteString(", Hits: ")
	b.WriteString(m.Verdict.Hits())
	b.WriteString(", size: ")
	b.WriteString(itoa(m.Size))
	if passed == "Passed" {
		var qs []string
		seen := map[string]bool{}
		for _, r := range m.Recips {
			if r.Remote == (smtp.Reply{}) {
				continue
			}
			if q := queuedAs(r.Remote.String()); !seen[q] {
				seen[q] = true
				qs = append(qs, q)
			}
		}
		if len(qs) > 0 {
			b.WriteString(", queued_as: ")
			b.WriteString(strings.Join(qs, "/"))
		}
	}
	b.WriteString(dkimLogFields(m))
	b.WriteString(", ")
	b.WriteString(itoa(elapsed.Milliseconds()))
	b.WriteString(" ms")
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
