package notify

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"amavisgo/conf"
	"amavisgo/delivery"
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
	msg, err := n.DSNMessage(p, m, plan)
	if err != nil {
		return plan, &Error{Section: "delivery-notification", What: "unable to make DSN", Detail: err.Error()}
	}
	rcpts := []string{m.Sender}
	if p.DsnBcc != "" {
		rcpts = append(rcpts, p.DsnBcc)
	}
	_, err = n.send(ctx, p, m, "", rcpts, msg, "delivery-notification", "send DSN to "+delivery.Bracket(m.Sender))
	return plan, err
}

// DSNMessage writes the DSN (RFC 3464 multipart/report) for the reported recipients of plan.
func (n *Notifier) DSNMessage(p *conf.Policy, m *Message, plan []DSNState) (string, error) {
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
		return "", err
	}
	to := delivery.Bracket(m.Sender)
	text, err := t.Expand(n.macros(m, addrs.HdrfromSender, []string{to}, true))
	if err != nil {
		return "", err
	}
	date := RFC2822Date(m.Received)
	var ds strings.Builder
	ds.WriteString("Reporting-MTA: dns; " + n.Config.Myhostname + "\n")
	if m.ClientHelo != "" {
		ds.WriteString("Received-From-MTA: dns; " + m.ClientHelo + " ([" + m.ClientAddr + "])\n")
	}
	ds.WriteString("Arrival-Date: " + date + "\n")
	if m.ENVID != "" {
		ds.WriteString("Original-Envelope-Id: " + m.ENVID + "\n")
	}
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
		ds.WriteString("Action: " + action + "\n")
		status := r.Reply.Enh
		if status == "" {
			status = strconv.Itoa(r.Reply.Class()) + ".0.0"
		}
		ds.WriteString("Status: " + status + "\n")
		diag := r.Reply
		if remoteMTA(m, r) != "" && r.Remote != (smtp.Reply{}) {
			ds.WriteString("Remote-MTA: dns; " + m.RemoteMTA + "\n")
			diag = r.Remote
		}
		ds.WriteString(foldWords("Diagnostic-Code: smtp; "+diag.String()) + "\n")
		ds.WriteString("Last-Attempt-Date: " + date + "\n")
		ds.WriteString("Final-Log-ID: " + m.LogID + "/" + m.MailID + "\n")
	}
	reportType := "delivery-status"
	if !isASCII(ds.String()) {
		reportType = "global-delivery-status"
	}
	hdr := strings.ReplaceAll(string(m.Header), "\r\n", "\n")
	return compose(text, [][2]string{{"From", addrs.HdrfromSender}, {"To", to}, {"Date", date}},
		"multipart/report; report-type="+reportType,
		[]part{
			{"message/" + reportType, "Delivery report", ds.String()},
			{"text/rfc822-headers", "Undelivered-message headers", hdr},
		}, m.MailID), nil
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
