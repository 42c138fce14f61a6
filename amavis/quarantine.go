package amavis

import (
	"context"
	"errors"

	"amavisgo/hdr"
	"amavisgo/quarantine"
	"amavisgo/verdict"
)

// quarantineKind maps a recipient's category (its blocking one, else its main one) to the
// quarantine it goes to; ok is false for categories with no quarantine.
func quarantineKind(c verdict.CCat) (quarantine.Kind, bool) {
	switch c.Major {
	case verdict.CC_VIRUS:
		return quarantine.Virus, true
	case verdict.CC_BANNED:
		return quarantine.Banned, true
	case verdict.CC_UNCHECKED:
		return quarantine.Unchecked, true
	case verdict.CC_SPAM:
		return quarantine.Spam, true
	case verdict.CC_BADH:
		return quarantine.BadHeader, true
	case verdict.CC_CLEAN:
		return quarantine.Clean, true
	}
	return 0, false
}

// quarantine stores the copies the recipients' categories ask for (Amavis.pm's do_quarantine).
func (d *Daemon) quarantine(ctx context.Context, m *Message) error {
	v := m.Verdict
	byKind := map[quarantine.Kind][]string{}
	var kinds []quarantine.Kind
	var all, blocked []string
	for _, r := range m.Recips {
		all = append(all, r.Addr)
		if r.Blocked {
			blocked = append(blocked, r.Addr)
		}
		if k, ok := quarantineKind(r.Category()); ok && k.Method(m.Policy) != "" && !(k == quarantine.Spam && r.Spam.NoQuarantine) {
			if _, seen := byKind[k]; !seen {
				kinds = append(kinds, k)
			}
			byKind[k] = append(byKind[k], r.Addr)
		}
	}
	if m.Policy.ArchiveQuarantineMethod != "" {
		kinds = append(kinds, quarantine.Archive)
		byKind[quarantine.Archive] = all
	}
	if len(kinds) == 0 {
		return nil
	}
	alerts := quarantine.Alerts{}
	if v.CCats.Has(verdict.CC_VIRUS, 0) {
		alerts.Viruses = v.Viruses
	}
	for _, r := range v.Recips {
		if r.BannedReason != "" {
			alerts.Banned = r.BannedReason
			break
		}
	}
	if v.CCats.Has(verdict.CC_BADH, 0) && len(v.BadHeaders) > 0 {
		alerts.BadHeader = v.BadHeaders[0]
	}
	// the quarantine's format has LF line ends
	lf := receivedStyle
	lf.EOL = "\n"
	received := hdr.Fold(nil, "Received:", receivedFields(m, m.cfg.LocalhostName, m.cfg.Myhostname), lf)
	qm := &quarantine.Message{
		MailID: m.MailID, LogID: m.LogID, Received: m.RxTime, Sender: m.Sender,
		Recipients: all, Blocked: blocked, Fields: quarantine.Fields(alerts, spamInfo(m)),
		ReceivedField: string(received), Original: m.File,
	}
	for _, k := range kinds {
		locs, err := m.eng.store.Quarantine(ctx, m.Policy, k, qm, byKind[k])
		if err != nil {
			d.metrics.QuarantineFailed()
			var qe *quarantine.Error
			if errors.As(err, &qe) {
				return &stageError{section: "quar+notif", err: err, reply: qe.Reply(m.LogID)}
			}
			return &stageError{section: "quar+notif", err: err}
		}
		// The quarantine-to name as amavis logs it ("virus-quarantine"); a copy mailed to an
		// address is named by its address.
		if len(locs) > 0 {
			d.metrics.Quarantined(quarantineCategory(k), m.Size)
		}
		local := k.To(m.Policy).Lookup(byKind[k][0], m.Policy.LookupOptions())
		for _, l := range locs {
			m.Quarantined = append(m.Quarantined, l.Name)
			m.sqlQuarantined(l)
			to := local
			if l.Type == 'M' {
				to = l.Name
			}
			m.tl.Logf(1, "local delivery: %s -> %s, mbx=%s", m.SenderSMTP, to, l.Name)
		}
	}
	return nil
}
