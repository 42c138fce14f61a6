package amavis

import (
	"context"
	"errors"
	"strings"

	"amavisgo/notify"
	"amavisgo/verdict"
)

// notifyBefore sends the admin notices and recipient warnings before anything is forwarded, as
// Amavis.pm's do_notify_and_quarantine does ahead of the delivery; a DSN for a recipient is
// planned from the replies known by then (the blocked ones).
func (d *Daemon) notifyBefore(ctx context.Context, m *Message) error {
	nm := noticeMessage(m)
	if nm == nil {
		return nil
	}
	n := m.eng.notifier
	plan := notify.PlanDSN(nm, m.LMTP)
	if _, err := n.Admins(ctx, m.Policy, nm, plan); err != nil {
		return notifyFailure(err, m)
	}
	if _, err := n.Warnings(ctx, m.Policy, nm); err != nil {
		return notifyFailure(err, m)
	}
	return nil
}

// notifyDSN sends the sender's DSN once every recipient has its outcome (Amavis::Notify), and
// records for each recipient whether a DSN went out, for the reply and the log.
func (d *Daemon) notifyDSN(ctx context.Context, m *Message) error {
	nm := noticeMessage(m)
	if nm == nil {
		return nil
	}
	states, err := m.eng.notifier.DSN(ctx, m.Policy, nm, m.LMTP)
	if err != nil {
		return notifyFailure(err, m)
	}
	for i, r := range m.Recips {
		switch states[i] {
		case notify.DSNReported:
			r.DSN = verdict.DSNSent
		case notify.DSNSuppressed:
			r.DSN = verdict.DSNSuppressed
		}
	}
	return nil
}

// noticeMessage is what the notifications are told about the message; nil when it is clean,
// delivered and nobody asked for a DSN on success: nothing to tell anyone about.
func noticeMessage(m *Message) *notify.Message {
	v := m.Verdict
	if !v.Blocked && v.CCats.Main().Major <= verdict.CC_CLEAN && !successRequested(m) {
		return nil
	}
	fwd := m.Policy.Forward()
	nm := &notify.Message{
		LogID: m.LogID, MailID: m.MailID, SecretID: m.SecretID, Sender: m.Sender,
		Category: v.CCats.Main(), MainCategory: v.CCats.Main(),
		Header: m.Header, Viruses: v.Viruses, Scanners: m.AV.Detectors, BadHeaders: v.BadHeaders,
		Quarantined: m.Quarantined, ClientAddr: trimIPv6Tag(m.Client.Addr), ClientPort: m.Client.Port, OriginatorIP: oldestPublicIP(m),
		ClientName: m.Client.Name, ClientHelo: m.Client.Helo, Originating: m.Policy.Originating,
		ConnAddr: m.Conn.PeerIP, ConnHelo: m.Conn.Helo, ConnProto: m.Proto,
		Bulk: m.Bulk, Received: m.RxTime, ENVID: m.ENVID,
		PolicyBank: m.Policy.PolicyBankPath, QueueID: m.QueueID, Size: m.Size,
		Recipients: m.Recips, DSNPassedOn: m.DSNPassedOn,
		RemoteMTA: "[" + fwd.Host + "]:" + fwd.Port,
	}
	if v.Blocked {
		nm.Category = v.Blocking
	}
	if m.AV.Output != "" {
		nm.ScannerOutput = strings.Split(strings.TrimRight(m.AV.Output, "\n"), "\n")
	}
	for _, r := range m.Recips {
		if r.BannedReason != "" {
			nm.BannedReason = r.BannedReason
			break
		}
	}
	return nm
}

// successRequested: some recipient asked for a DSN on success (RCPT NOTIFY=SUCCESS).
func successRequested(m *Message) bool {
	for _, r := range m.Recips {
		for _, n := range r.Notify {
			if strings.EqualFold(n, "SUCCESS") {
				return true
			}
		}
	}
	return false
}

func notifyFailure(err error, m *Message) error {
	var ne *notify.Error
	if errors.As(err, &ne) {
		return &stageError{section: ne.Section, err: err, reply: ne.Reply(m.LogID)}
	}
	return &stageError{section: "delivery-notification", err: err}
}
