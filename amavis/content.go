package amavis

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"

	"amavisgo/conf"
	"amavisgo/notify"
	"amavisgo/quarantine"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// stageError is a failure of one stage of the flow; section names it in the 451 reply
// ("Error in processing, id=..., <section> FAILED: ...") as amavis does.
type stageError struct {
	section string
	err     error
	// reply, when not the zero Reply, is the whole reply for the MTA (a quarantine or
	// notification failure has its own wording).
	reply smtp.Reply
}

func (e *stageError) Error() string { return e.section + " FAILED: " + e.err.Error() }

// check decodes the message, scans it for viruses and decides per recipient (SPEC §4.3
// steps 5 to 11). Decoding and scanning run only when a recipient needs them; the virus scan
// is skipped when decoding went over a limit (the message is then UNCHECKED, as in amavis).
func (d *Daemon) check(ctx context.Context, m *Message) error {
	e := m.eng
	addrs := make([]string, len(m.Recips))
	for i, r := range m.Recips {
		addrs[i] = r.Addr
	}
	checks := verdict.Plan(m.Policy, addrs)
	m.Bulk = isBulk(m.Header, m.Sender)
	if checks.Decode {
		res, err := e.unpacker.Unpack(ctx, m.File, filepath.Join(m.Dir, "parts"))
		if err != nil {
			return &stageError{section: "mime_decode", err: err}
		}
		m.Unpacked = res
		if res.Hold != "" {
			m.tl.Logf(-1, "NOTICE: %s, virus scan skipped", res.Hold)
		}
	}
	if checks.Virus && e.av.Configured() && (m.Unpacked == nil || m.Unpacked.Hold == "") {
		m.AV = e.av.Scan(ctx, m.Dir)
		for _, en := range m.AV.Engines {
			m.tl.Logf(2, "virus_scan: %s took %d ms", en.Name, en.Duration.Milliseconds())
		}
	}
	v, err := verdict.Decide(verdict.Input{
		Config: m.cfg, Policy: m.Policy, LogID: m.LogID,
		Sender: m.Sender, Recipients: addrs, Header: m.Header, SMTPUTF8: m.SMTPUTF8,
		Size: m.Size, Bulk: m.Bulk, Unpacked: m.Unpacked, AV: m.AV,
	})
	if err != nil {
		return &stageError{section: "check-banned", err: err}
	}
	for _, n := range v.Notes {
		m.tl.Logf(2, "%s", n)
	}
	m.Verdict = v
	if v.Tempfail != (smtp.Reply{}) {
		return &stageError{section: "virus_scan", err: errors.New(m.AV.FailReason), reply: v.Tempfail}
	}
	return nil
}

// decide takes the verdict's per-recipient decisions: a blocked recipient's reply is final.
func (d *Daemon) decide(m *Message) {
	for i, r := range m.Recips {
		vr := m.Verdict.Recips[i]
		r.v = vr
		r.Local = vr.Local
		if vr.Blocked {
			r.Destiny, r.Done = vr.Destiny, true
			r.Reply = vr.Response
		}
	}
}

// act quarantines, forwards the passed recipients and sends the notifications, in amavis's
// order (SPEC §4.3 steps 12 to 14). Quarantine comes first: a failure there is a 451 before
// anything was delivered. A notification that fails temporarily is a 451 too, as in amavis.
func (d *Daemon) act(ctx context.Context, m *Message) error {
	if err := d.quarantine(ctx, m); err != nil {
		return err
	}
	d.forwardPassed(ctx, m)
	return d.notify(ctx, m)
}

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

func recipCategory(r *verdict.Recipient) verdict.CCat {
	if r.Blocked {
		return r.Blocking
	}
	return r.CCats.Main()
}

// quarantine stores the copies the recipients' categories ask for (SPEC §11.1).
func (d *Daemon) quarantine(ctx context.Context, m *Message) error {
	v := m.Verdict
	byKind := map[quarantine.Kind][]string{}
	var kinds []quarantine.Kind
	var all, blocked []string
	for _, r := range m.Recips {
		all = append(all, r.Addr)
		if r.v.Blocked {
			blocked = append(blocked, r.Addr)
		}
		if k, ok := quarantineKind(recipCategory(r.v)); ok && k.Method(m.Policy) != "" {
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
	received := string(bytes.ReplaceAll(foldHeader(nil, "Received",
		receivedFields(m, m.cfg.LocalhostName, m.cfg.Myhostname)), []byte("\r\n"), []byte("\n")))
	qm := &quarantine.Message{
		MailID: m.MailID, LogID: m.LogID, Received: m.RxTime, Sender: m.Sender,
		Recipients: all, Blocked: blocked, Fields: quarantine.Fields(alerts, nil),
		ReceivedField: strings.TrimRight(received, "\n"), Original: m.File,
	}
	for _, k := range kinds {
		locs, err := m.eng.store.Quarantine(ctx, m.Policy, k, qm, byKind[k])
		if err != nil {
			var qe *quarantine.Error
			if errors.As(err, &qe) {
				return &stageError{section: "quar+notif", err: err, reply: qe.Reply(m.LogID)}
			}
			return &stageError{section: "quar+notif", err: err}
		}
		// The quarantine-to name as amavis logs it ("virus-quarantine"); a copy mailed to an
		// address is named by its address.
		local := k.To(m.Policy).Lookup(byKind[k][0], m.Policy.LookupOptions())
		for _, l := range locs {
			m.Quarantined = append(m.Quarantined, l.Name)
			to := local
			if l.Type == 'M' {
				to = l.Name
			}
			m.tl.Logf(1, "local delivery: %s -> %s, mbx=%s", m.SenderSMTP, to, l.Name)
		}
	}
	return nil
}

// forwardPassed forwards the recipients that passed, in clusters: recipients whose copies
// need the same header edits share one transaction (SPEC §3), in order of first appearance.
func (d *Daemon) forwardPassed(ctx context.Context, m *Message) {
	type cluster struct {
		edits verdict.HeaderEdits
		rs    []*Recipient
	}
	var clusters []*cluster
	byKey := map[string]*cluster{}
	quarantined := len(m.Quarantined) > 0
	for _, r := range m.Recips {
		if r.Done || r.v.Blocked {
			continue
		}
		edits := m.Verdict.HeaderEdits(r.v, m.MailID, quarantined)
		r.Tagged = edits.Tagged
		key := edits.Key()
		c, ok := byKey[key]
		if !ok {
			c = &cluster{edits: edits}
			byKey[key] = c
			clusters = append(clusters, c)
		}
		c.rs = append(c.rs, r)
	}
	for _, c := range clusters {
		header, skip := forwardHeader(m, c.edits)
		d.forward(ctx, m, m.Policy.Forward(), header, skip, c.rs)
	}
}

// forwardHeader is what goes in front of the spooled bytes for a copy with these edits: the
// added fields, amavis's Received field (SPEC §10 order), and, when the edits change the
// original header (a deleted field, a subject tag), the edited header section, which then
// replaces the first skip bytes of the spool file.
func forwardHeader(m *Message, edits verdict.HeaderEdits) (header []byte, skip int64) {
	header = edits.Prepend()
	header = foldHeader(header, "Received", receivedFields(m, m.cfg.LocalhostName, m.cfg.Myhostname))
	if edited := edits.EditHeader(m.Header); m.HeaderComplete && !bytes.Equal(edited, m.Header) {
		header = append(header, edited...)
		skip = int64(len(m.Header))
	}
	return header, skip
}

// notify sends the admin notices, recipient warnings and the sender's DSN (SPEC §12), and
// records for each recipient whether a DSN went out, for the reply and the log.
func (d *Daemon) notify(ctx context.Context, m *Message) error {
	v := m.Verdict
	if !v.Blocked && v.CCats.Main().Major <= verdict.CC_CLEAN && !successRequested(m) {
		return nil // clean and delivered: nothing to tell anyone about
	}
	nm := &notify.Message{
		LogID: m.LogID, MailID: m.MailID, SecretID: m.SecretID, Sender: m.Sender,
		Category: v.CCats.Main(), MainCategory: v.CCats.Main(),
		Header: m.Header, Viruses: v.Viruses, Scanners: m.AV.Detectors, BadHeaders: v.BadHeaders,
		Quarantined: m.Quarantined, ClientAddr: trimIPv6Tag(m.Client.Addr), ClientPort: m.Client.Port, OriginatorIP: oldestPublicIP(m),
		ClientName: m.Client.Name, ClientHelo: m.Client.Helo, Originating: m.Policy.Originating,
		Bulk: m.Bulk, Received: m.RxTime, ENVID: m.ENVID,
		PolicyBank: m.Policy.PolicyBankPath, QueueID: m.QueueID, Size: m.Size,
	}
	if v.Blocked {
		nm.Category = v.Blocking
	}
	if m.AV.Output != "" {
		nm.ScannerOutput = strings.Split(strings.TrimRight(m.AV.Output, "\n"), "\n")
	}
	for _, r := range m.Recips {
		nr := &notify.Recipient{
			Addr: r.Addr, Local: r.Local, Category: recipCategory(r.v),
			Blocked: r.Destiny != conf.D_PASS || r.v.Blocked, Destiny: r.Destiny, Response: r.Reply,
			Relayed: r.ByMTA && r.Reply.Class() == 2, DSNSuppress: r.v.DSNSuppress,
			DSNPassedOn: r.ByMTA && r.Reply.Class() == 2 && m.DSNPassedOn,
			Notify:      r.Notify, ORCPT: r.ORCPT,
		}
		if r.ByMTA && r.Reply.Class() != 2 {
			nr.RemoteMTA, nr.RemoteResponse = "["+m.Policy.Forward().Host+"]:"+m.Policy.Forward().Port, r.Remote
		}
		if nm.BannedReason == "" {
			nm.BannedReason = r.v.BannedReason
		}
		nm.Recipients = append(nm.Recipients, nr)
	}
	n := m.eng.notifier
	plan := notify.PlanDSN(nm, m.LMTP)
	if _, err := n.Admins(ctx, m.Policy, nm, plan); err != nil {
		return notifyFailure(err, m)
	}
	if _, err := n.Warnings(ctx, m.Policy, nm); err != nil {
		return notifyFailure(err, m)
	}
	states, err := n.DSN(ctx, m.Policy, nm, m.LMTP)
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

// isBulk tells mailing-list, bulk and automatic mail as amavis does (SPEC §4.3 step 2): such
// mail gets no DSN for a non-clean category.
func isBulk(header []byte, sender string) bool {
	bulk := false
	eachField(header, func(name, body []byte) bool {
		switch strings.ToLower(string(name)) {
		case "list-id", "list-post", "list-unsubscribe", "mailing-list":
			bulk = true
		case "precedence":
			switch strings.ToLower(unfold(body)) {
			case "bulk", "junk", "list", "auto_reply":
				bulk = true
			}
		case "auto-submitted":
			as := strings.ToLower(unfold(body))
			bulk = as != "" && as != "no"
		}
		return !bulk
	})
	if bulk {
		return true
	}
	if sender == "" {
		return true
	}
	local := strings.ToLower(sender)
	if at := strings.LastIndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	switch {
	case strings.HasSuffix(local, "-request"), strings.HasSuffix(local, "-bounces"),
		strings.HasSuffix(local, "-owner"), strings.HasPrefix(local, "owner-"):
		return true
	}
	switch local {
	case "mailer-daemon", "double-bounce", "mailer", "autoreply":
		return true
	}
	return false
}
