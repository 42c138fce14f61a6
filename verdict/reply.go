package verdict

import (
	"strconv"
	"strings"

	"amavisgo/conf"
	"amavisgo/smtp"
)

// statusByCCat is the base status of a blocked recipient by its blocking category.
var statusByCCat = byCCat[smtp.Reply]{
	{CC_VIRUS, 0}: {Code: 554, Enh: "5.7.0"}, {CC_BANNED, 0}: {Code: 554, Enh: "5.7.0"},
	{CC_UNCHECKED, 0}: {Code: 554, Enh: "5.7.0"}, {CC_SPAM, 0}: {Code: 554, Enh: "5.7.0"},
	{CC_SPAMMY, 0}: {Code: 554, Enh: "5.7.0"}, {CC_BADH, 2}: {Code: 554, Enh: "5.6.3"},
	{CC_BADH, 0}: {Code: 554, Enh: "5.6.0"}, {CC_OVERSIZED, 0}: {Code: 552, Enh: "5.3.4"},
	{CC_MTA, 0}: {Code: 550, Enh: "5.3.5"}, {CC_CATCHALL, 0}: {Code: 554, Enh: "5.7.0"},
}

// smtpReasonByCCat is amavis's %smtp_reason_by_ccat; %n, %V and %F are expanded.
var smtpReasonByCCat = byCCat[string]{
	{CC_VIRUS, 0}:     "id=%n - INFECTED: %V",
	{CC_BANNED, 0}:    "id=%n - BANNED: %F",
	{CC_UNCHECKED, 1}: "id=%n - UNCHECKED: encrypted",
	{CC_UNCHECKED, 2}: "id=%n - UNCHECKED: over limits",
	{CC_UNCHECKED, 3}: "id=%n - UNCHECKED: ambiguous content",
	{CC_UNCHECKED, 0}: "id=%n - UNCHECKED",
	{CC_SPAM, 0}:      "id=%n - spam",
	{CC_SPAMMY, 1}:    "id=%n - spammy (tag3)",
	{CC_SPAMMY, 0}:    "id=%n - spammy",
	{CC_BADH, 1}:      "id=%n - BAD HEADER: MIME error",
	{CC_BADH, 2}:      "id=%n - BAD HEADER: nonencoded 8-bit character",
	{CC_BADH, 3}:      "id=%n - BAD HEADER: contains invalid control character",
	{CC_BADH, 4}:      "id=%n - BAD HEADER: line made up entirely of whitespace",
	{CC_BADH, 5}:      "id=%n - BAD HEADER: line longer than RFC 5322 limit",
	{CC_BADH, 6}:      "id=%n - BAD HEADER: syntax error",
	{CC_BADH, 7}:      "id=%n - BAD HEADER: missing required header field",
	{CC_BADH, 8}:      "id=%n - BAD HEADER: duplicate header field",
	{CC_BADH, 0}:      "id=%n - BAD HEADER",
	{CC_OVERSIZED, 0}: "id=%n - Message size exceeds recipient's size limit",
	{CC_MTA, 1}:       "id=%n - Temporary MTA failure on relaying",
	{CC_MTA, 2}:       "id=%n - Rejected by next-hop MTA on relaying",
	{CC_MTA, 0}:       "id=%n - Unable to relay message back to MTA",
	{CC_CLEAN, 0}:     "id=%n - CLEAN",
	{CC_CATCHALL, 0}:  "id=%n - OTHER",
}

// maxReason is where amavis chops the reason before wrapping the reply.
const maxReason = 450

// blockedResponse builds a blocked recipient's reply (as Amavis.pm's check_mail does): the base
// status of its blocking category, rewritten by destiny (discard 250, tempfail or soft_bounce 450),
// then "Ok, discarded" | "Reject" | "Bounce" | "Temporary failure" and the reason.
func blockedResponse(v *Verdict, r *Recipient, softBounce bool) smtp.Reply {
	rep, _, _ := statusByCCat.lookup(r.Blocking)
	var soft string
	switch { // every base status is a 5xx
	case r.Destiny == conf.D_TEMPFAIL:
		rep = recode(rep, 450)
	case softBounce:
		rep, soft = recode(rep, 450), " (soft_bounce)"
	case r.Destiny == conf.D_DISCARD:
		rep = recode(rep, 250)
	}
	reason, _, _ := smtpReasonByCCat.lookup(r.Blocking)
	reason = expandReason(reason, v, r)
	if len(reason) > maxReason+3 {
		reason = reason[:maxReason] + "..."
	}
	var word string
	switch r.Destiny {
	case conf.D_PASS:
		word = "Ok"
	case conf.D_DISCARD:
		word = "Ok, discarded"
	case conf.D_REJECT:
		word = "Reject"
	case conf.D_BOUNCE:
		word = "Bounce"
	case conf.D_TEMPFAIL:
		word = "Temporary failure"
	default:
		word = "Not ok (" + r.Destiny.String() + ")"
	}
	rep.Text = word + soft
	if reason != "" {
		rep.Text += ", " + reason
	}
	return rep
}

// recode gives a reply another code; the class digit of its enhanced code follows
// ("554 5.7.0" -> "250 2.7.0").
func recode(rep smtp.Reply, code int) smtp.Reply {
	rep.Code, rep.Enh = code, strconv.Itoa(code/100)+rep.Enh[1:]
	return rep
}

// expandReason expands %n, %V and %F (the only macros of the default reasons), and makes
// the result printable on one line.
func expandReason(s string, v *Verdict, r *Recipient) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b.WriteString(v.LogID)
		case 'V':
			b.WriteString(strings.Join(v.Viruses, ", "))
		case 'F':
			b.WriteString(v.firstBannedReason())
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return printable(b.String())
}

// firstBannedReason is %F: the first recipient's banned part description.
func (v *Verdict) firstBannedReason() string {
	for _, r := range v.Recips {
		if r.BannedReason != "" {
			return r.BannedReason
		}
	}
	return ""
}

// printable replaces control characters so that a text fits on one reply or header line.
func printable(s string) string {
	if strings.IndexFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return ' '
		}
		return c
	}, s)
}

// NextHopFailed records that the next hop did not take recipient r's copy. r.Reply
// is the forwarder's reply for r, e.g. "550 5.1.1 from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1
// <x@example.com>: Recipient address rejected"; a 5xx adds CC_MTA,2 (destiny D_REJECT), a
// 4xx CC_MTA,1 (D_TEMPFAIL), and r.Reply becomes amavis's reply, e.g. "550 5.1.1
// id=12345-08 - Rejected by next-hop MTA on relaying, from MTA(...): 550 5.1.1 ...".
func (v *Verdict) NextHopFailed(r *Recipient) {
	resp := r.Reply
	var minor int
	switch resp.Class() {
	case 5:
		minor = 2
	case 4:
		minor = 1
	default:
		return
	}
	c := CCat{CC_MTA, minor}
	r.CCats.Add(CC_MTA, minor)
	v.CCats.Add(CC_MTA, minor)
	r.Blocked, r.Blocking = true, c
	if !v.Blocked {
		v.Blocked, v.Blocking = true, c
	}
	r.Destiny = destinyOf(v.policy, c)
	rep := smtp.Reply{Code: resp.Code, Enh: resp.Enh}
	if rep.Enh == "" {
		rep.Enh = strconv.Itoa(rep.Class()) + ".0.0"
	}
	if rep.Class() == 5 && v.policy.SoftBounce { // the destiny of CC_MTA is never D_DISCARD
		rep = recode(rep, 450)
	}
	reason, _, _ := smtpReasonByCCat.lookup(c)
	rep.Text = expandReason(reason, v, r) + ", " + resp.Text
	r.Reply = rep
}
