package notify

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/notify/template"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// DSNState is what becomes of one recipient in the sender's delivery status notification.
type DSNState int

const (
	// NoDSN: nothing to report (delivered, discarded, a temporary failure, or a rejection the
	// MTA reports itself).
	NoDSN DSNState = iota
	// DSNReported: the recipient is reported in the DSN.
	DSNReported
	// DSNSuppressed: a failure amavis's rules keep quiet (null sender, NOTIFY, a sender faked
	// by a virus, ...): logged as NoBounce, replied as DISCARD(bounce.suppressed).
	DSNSuppressed
)

// PlanDSN decides per recipient (in m.Recipients order) whether a DSN reports it, following
// amavis's rules (Amavis::Notify's delivery_status_notification). perRecipCapable is true when the
// MTA gets one reply per recipient (LMTP): then a rejected recipient's 5xx goes back to the MTA,
// which reports it itself; so it does when every recipient was rejected.
func PlanDSN(m *Message, perRecipCapable bool) []DSNState {
	allRejected := len(m.Recipients) > 0
	for _, r := range m.Recipients {
		if r.Destiny != conf.D_REJECT || r.Reply.Class() != 5 {
			allRejected = false
		}
	}
	out := make([]DSNState, len(m.Recipients))
	for i, r := range m.Recipients {
		onFailure, onSuccess, never := r.Notify == nil, false, false
		for _, k := range r.Notify {
			switch strings.ToUpper(k) {
			case "FAILURE":
				onFailure = true
			case "SUCCESS":
				onSuccess = true
			case "NEVER":
				never = true
			}
		}
		if never || m.Sender == "" {
			onFailure, onSuccess = false, false
		}
		class := r.Reply.Class()
		switch {
		case class == 0: // not forwarded yet: nothing to report
		case class == 4:
		case class == 5 && r.Destiny == conf.D_REJECT && (perRecipCapable || allRejected):
		case class == 5 && !onFailure:
			out[i] = DSNSuppressed
		case class == 2 && (!onSuccess || r.Relayed() && m.DSNPassedOn):
		case never || m.Sender == "":
			out[i] = DSNSuppressed
		case r.Destiny == conf.D_DISCARD:
			out[i] = DSNSuppressed
		case r.DSNSuppress != "":
			out[i] = DSNSuppressed
		case m.Bulk && r.Category().Major > CC_CLEAN:
			out[i] = DSNSuppressed
		default:
			out[i] = DSNReported
		}
	}
	return out
}

// DSN sends the sender a delivery status notification for the recipients PlanDSN reports, if
// any, and returns the plan. A 4xx from the next hop is an *Error (the daemon replies 451);
// a 5xx is logged, as amavis does.
func (n *Notifier) DSN(ctx context.Context, p *conf.Policy, m *Message, perRecipCapable bool) ([]DSNState, error) {
	plan := PlanDSN(m, perRecipCapable)
	if !slices.Contains(plan, DSNReported) {
		return plan, nil
	}
	msg, body, err := n.dsnMessage(p, m, plan)
	if err != nil {
		return plan, &Error{Section: "delivery-notification", What: "unable to make DSN", Detail: err.Error()}
	}
	rcpts := []string{m.Sender}
	if p.DsnBcc != "" {
		rcpts = append(rcpts, p.DsnBcc)
	}
	// as amavis: BODY by the report's own text, ORCPT for each recipient
	_, err = n.send(ctx, p, m, "", rcpts, msg, "delivery-notification", "send DSN to "+delivery.Bracket(m.Sender),
		delivery.Options{Body: body, ORCPT: true})
	return plan, err
}

// DSNMessage writes the DSN (RFC 3464 multipart/report) for the reported recipients of plan.
func (n *Notifier) DSNMessage(p *conf.Policy, m *Message, plan []DSNState) (string, error) {
	msg, _, err := n.dsnMessage(p, m, plan)
	return msg, err
}

// dsnMessage is DSNMessage and the BODY type amavis declares for it: 8BITMIME when the
// delivery-status part has 8-bit text, else 7BIT.
func (n *Notifier) dsnMessage(p *conf.Policy, m *Message, plan []DSNState) (string, string, error) {
	addrs := n.Config.NotifyAddrs(p)
	path, builtin := p.NotifySenderTempl, "dsn.txt"
	switch m.Category.Major {
	case CC_VIRUS, CC_BANNED:
		path, builtin = p.NotifyVirusSenderTempl, "virus-sender.txt"
	case CC_SPAM:
		path, builtin = p.NotifySpamSenderTempl, "spam-sender.txt"
	}
	t, err := n.templ(path, builtin)
	if err != nil {
		return "", "", err
	}
	to := delivery.Bracket(m.Sender)
	mv := n.macros(m, addrs.HdrfromSender, []string{to}, true)
	mv["report_format"] = "dsn"
	text, err := t.Expand(mv)
	if err != nil {
		return "", "", err
	}
	date := RFC2822Date(m.Received)
	var ds strings.Builder
	ds.WriteString("Reporting-MTA: dns; " + n.Config.Myhostname + "\n")
	// amavis names the MTA that handed it the message, not the client XFORWARD names
	if m.ConnHelo != "" {
		ds.WriteString("Received-From-MTA: dns; " + m.ConnHelo + " ([" + m.ConnAddr + "])\n")
	}
	ds.WriteString("Arrival-Date: " + date + "\n")
	if m.ENVID != "" {
		ds.WriteString("Original-Envelope-Id: " + m.ENVID + "\n")
	}
	anyFail := false
	for i, r := range m.Recipients {
		if plan[i] != DSNReported {
			continue
		}
		ds.WriteString("\n")
		if r.ORCPT != "" {
			ds.WriteString("Original-Recipient: " + r.ORCPT + "\n")
		}
		ds.WriteString("Final-Recipient: rfc822;" + strings.Trim(delivery.Bracket(r.Addr), "<>") + "\n")
		action := "failed"
		switch {
		case r.Reply.Class() == 2 && r.Relayed():
			action = "relayed"
		case r.Reply.Class() == 2:
			action = "delivered"
		}
		anyFail = anyFail || action == "failed"
		ds.WriteString("Action: " + action + "\n")
		status := r.Reply.Enh
		if status == "" {
			status = strconv.Itoa(r.Reply.Class()) + ".0.0"
		}
		ds.WriteString("Status: " + status + "\n")
		var diag string
		if remoteMTA(m, r) != "" && r.Remote != (smtp.Reply{}) {
			ds.WriteString("Remote-MTA: dns; " + m.RemoteMTA + "\n")
			diag = r.Remote.String()
		} else {
			diag = diagnosticReply(r.Reply.String())
		}
		ds.WriteString("Diagnostic-Code: smtp; " + strings.ReplaceAll(diag, "\n", "\n ") + "\n")
		ds.WriteString("Last-Attempt-Date: " + date + "\n")
		ds.WriteString("Final-Log-ID: " + m.LogID + "/" + m.MailID + "\n")
	}
	bodyType := "7BIT"
	status := part{"message/delivery-status", "dsn_status.dsn", "Delivery report", ds.String(), ""}
	if !isASCII(status.body) {
		bodyType = "8BITMIME"
	}
	if !isASCII(status.body) && utf8.ValidString(status.body) {
		status.contentType, status.filename = `message/global-delivery-status; charset="UTF-8"`, "dsn_status.u8dsn"
	}
	if anyFail {
		status.description = "Delivery error report"
	}
	reportType := strings.TrimPrefix(strings.Fields(status.contentType)[0], "message/")
	return compose(text, [][2]string{{"From", addrs.HdrfromSender}, {"To", to}, {"Date", date}},
		"multipart/report; report-type="+strings.TrimSuffix(reportType, ";"),
		[]part{status, headersPart(to, m.Header)}), bodyType, nil
}

// diagnosticReply is our own reply as amavis puts it in Diagnostic-Code: when longer than
// the field leaves room for, wrapped at blanks into a multi-line reply (RFC 3461 section 9.2),
// each line with the code, as its wrap_string and wrap_smtp_resp do.
func diagnosticReply(resp string) string {
	const room = 78 - len("Diagnostic-Code: smtp; ")
	if strings.Contains(resp, "\n") || len(resp) <= room {
		return resp
	}
	// wrapped as if it followed the field name, so that its lines keep their length
	pad := strings.Repeat("x", len("Diagnostic-Code: smtp; ")-len(" 554 5.0.0 "))
	w := strings.TrimPrefix(template.WrapString(pad+resp, 78-len(" 554 5.0.0 "), "", "", true), pad)
	code, rest, _ := strings.Cut(w, " ")
	enh := ""
	if e, after, ok := strings.Cut(rest, " "); ok && isEnhanced(e) {
		enh, rest = e+" ", after
	}
	lines := strings.Split(rest, "\n")
	for i := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		lines[i] = code + sep + enh + lines[i]
	}
	return strings.Join(lines, "\n")
}

// isEnhanced reports an enhanced status code, "5.7.0".
func isEnhanced(s string) bool {
	p := strings.Split(s, ".")
	if len(p) != 3 || len(p[0]) != 1 || strings.IndexByte("245", p[0][0]) < 0 {
		return false
	}
	for _, x := range p[1:] {
		if x == "" || len(x) > 3 || strings.Trim(x, "0123456789") != "" {
			return false
		}
	}
	return true
}

// String names the state for logs.
func (s DSNState) String() string {
	return [...]string{"none", "reported", "suppressed"}[s]
}

// remoteMTA is the next hop that refused recipient r, "" when it did not (or r was not sent).
func remoteMTA(m *Message, r *verdict.Recipient) string {
	if r.NextHopRefused() {
		return m.RemoteMTA
	}
	return ""
}
