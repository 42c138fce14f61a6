package notify

import (
	"context"
	"slices"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/verdict"
)

// adminFor is the administrator of recipient r by its category (amavis's
// %admin_maps_by_ccat): virus_admin for viruses and unchecked mail, banned_admin (else
// virus_admin) for banned contents, spam_admin, bad_header_admin.
func adminFor(p *conf.Policy, r *verdict.Recipient) string {
	switch r.Category().Major {
	case CC_VIRUS, CC_UNCHECKED:
		return p.VirusAdmin.Lookup(r.Addr, p.LookupOptions())
	case CC_BANNED:
		if a := p.BannedAdmin.Lookup(r.Addr, p.LookupOptions()); a != "" {
			return a
		}
		return p.VirusAdmin.Lookup(r.Addr, p.LookupOptions())
	case CC_SPAM:
		if r.Spam.NoAdminNotice { // over spam_notifyadmin_cutoff_level_maps
			return ""
		}
		return p.SpamAdmin.Lookup(r.Addr, p.LookupOptions())
	case CC_BADH:
		return p.BadHeaderAdmin.Lookup(r.Addr, p.LookupOptions())
	}
	return ""
}

// Admins sends each administrator of the message's recipients one notice (as Amavis.pm's
// do_notify_and_quarantine does) and returns their addresses. dsn is PlanDSN's result, so that the
// notice says whether the sender hears of it. A 4xx from the next hop is an *Error (the daemon
// replies 451).
func (n *Notifier) Admins(ctx context.Context, p *conf.Policy, m *Message, dsn []DSNState) ([]string, error) {
	var admins []string
	for _, r := range m.Recipients {
		if a := adminFor(p, r); a != "" && !slices.Contains(admins, a) {
			admins = append(admins, a)
		}
	}
	if len(admins) == 0 {
		return nil, nil
	}
	addrs := n.Config.NotifyAddrs(p)
	path, builtin := p.NotifyVirusAdminTempl, "virus-admin.txt"
	from, hdrFrom := addrs.MailfromAdmin, addrs.HdrfromAdmin
	if m.Category.Major == CC_SPAM {
		path, builtin = p.NotifySpamAdminTempl, "spam-admin.txt"
		from, hdrFrom = addrs.MailfromSpamadmin, addrs.HdrfromSpamadmin
	}
	t, err := n.templ(path, builtin)
	if err != nil {
		return nil, &Error{Section: "quar+notif", What: "unable to notify admin", Detail: err.Error()}
	}
	var sent []string
	for _, a := range admins {
		to := delivery.Bracket(a)
		text, err := t.Expand(n.macros(m, hdrFrom, []string{to}, slices.Contains(dsn, DSNReported)))
		if err != nil {
			return sent, &Error{Section: "quar+notif", What: "unable to notify admin", Detail: err.Error()}
		}
		// as amavis, the template's From, To and Date stay
		msg := compose(text, nil, "multipart/mixed", []part{headersPart(delivery.Bracket(m.Sender), m.Header)})
		ok, err := n.send(ctx, p, m, from, []string{a}, msg, "quar+notif", "notify admin", delivery.Options{})
		if err != nil {
			return sent, err
		}
		if ok {
			sent = append(sent, a)
		}
	}
	return sent, nil
}

// Warnings warns recipients of their mail, blocked or passed, when warnvirusrecip, warnbannedrecip or
// warnbadhrecip say so, local recipients only unless warn_offsite; it returns who was warned.
func (n *Notifier) Warnings(ctx context.Context, p *conf.Policy, m *Message) ([]string, error) {
	addrs := n.Config.NotifyAddrs(p)
	var sent []string
	for _, r := range m.Recipients {
		warn := false
		switch r.Category().Major {
		case CC_VIRUS:
			warn = p.Warnvirusrecip
		case CC_BANNED:
			warn = p.Warnbannedrecip
		case CC_BADH:
			warn = p.Warnbadhrecip
		}
		// amavis warns passed recipients too (its D_PASS exception is commented out)
		if !warn || !(r.Local || p.WarnOffsite) {
			continue
		}
		t, err := n.templ(p.NotifyVirusRecipsTempl, "virus-recipient.txt")
		if err != nil {
			return sent, &Error{Section: "quar+notif", What: "unable to notify recipient", Detail: err.Error()}
		}
		to := delivery.Bracket(r.Addr)
		text, err := t.Expand(n.macros(m, addrs.HdrfromRecip, []string{to}, false))
		if err != nil {
			return sent, &Error{Section: "quar+notif", What: "unable to notify recipient", Detail: err.Error()}
		}
		msg := compose(text, nil, "", nil)
		ok, err := n.send(ctx, p, m, addrs.MailfromRecip, []string{r.Addr}, msg, "quar+notif", "notify recipient", delivery.Options{})
		if err != nil {
			return sent, err
		}
		if ok {
			sent = append(sent, r.Addr)
		}
	}
	return sent, nil
}
