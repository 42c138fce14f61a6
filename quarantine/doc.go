// Package quarantine keeps copies of blocked mail where a postmaster finds them (the local: store
// under QUARANTINEDIR, or an address through notify_method), in amavis's stored format (Amavis.pm's
// do_quarantine, Amavis::Out::Local), and reads them back for release (package ampdp).
//
// How the daemon uses quarantine, notify and ampdp, per message, after the verdict:
//
//  1. Before the reply to the MTA, for each quarantine kind that the recipients' categories
//     select (the blocking category, else the main one: CC_VIRUS → Virus, CC_BANNED → Banned,
//     CC_UNCHECKED → Unchecked, CC_SPAM → Spam, CC_BADH → BadHeader, CC_CLEAN → Clean; plus
//     Archive for every message): locs, err := store.Quarantine(ctx, p, kind, msg, rcptsOfKind).
//     msg.Fields = Fields(alerts, spamInfoOrNil); msg.ReceivedField is the Received line the
//     forward gets. An error is a *Error: reply err.Reply(amID) (451) and stop; nothing was
//     forwarded yet, nothing is lost. Any location: log action "Quarantined", log
//     "quarantine: <loc.Name>,...", notify's Message.Quarantined = the names.
//  2. Forward the passed recipients.
//  3. plan := notify.PlanDSN(nm, lmtpInput); n.Admins(ctx, p, nm, plan) and
//     n.Warnings(ctx, p, nm); then n.DSN(ctx, p, nm, lmtpInput). A *notify.Error is a 451
//     (err.Reply(amID)) — as amavis, even after forwarding. plan[i] == DSNReported is
//     "Bounced" and a BOUNCE in the reply; DSNSuppressed is "NoBounce" and
//     DISCARD(bounce.suppressed).
//
// A connection on a listener whose bank says protocol = "AM.PDP" goes to
// ampdp.Server.ServeConn(ctx, conn, policy).
package quarantine
