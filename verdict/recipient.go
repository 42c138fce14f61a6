package verdict

import (
	"amavisgo/conf"
	"amavisgo/smtp"
)

// Recipient is one envelope recipient, the one record every stage shares from RCPT to the
// reply: the RCPT command as the server parsed it, the decision Decide fills in, and the
// outcome the daemon sets as it forwards and notifies. No stage keeps a copy of it.
type Recipient struct {
	smtp.Recipient // Addr, AddrSMTP, NOTIFY and ORCPT as RCPT gave them

	// SenderList is the sender's entry in this recipient's own white/black list (SQL wblist):
	// "W", "B" or a score; "" for none. Amavis::SpamControl asks it before the static lists.
	SenderList string

	// The decision (Decide).
	Local bool // local_domains_maps

	BypassVirus, BypassBanned, BypassHeader, BypassSpam bool

	CCats    CCats // the categories that apply to this recipient
	Blocking CCat  // the blocking category, when Blocked
	Blocked  bool
	Destiny  conf.Destiny // D_PASS when not blocked
	// DSNSuppress, when set, says why no DSN is to be sent for a bounced recipient
	// ("INFECTED" for viruses that fake the sender, "BANNED:DISCARD suggested by rule").
	DSNSuppress string

	Banned       []BannedPart
	BannedReason string // %F: the first banned part, "comment:.exe,.exe-ms,run.exe"
	OverLimit    int64  // the recipient's size limit when CC_OVERSIZED
	Spam         Spam   // its spam level, tests, sender lists and levels

	// Reply is the recipient's reply. Decide sets a blocked recipient's, e.g.
	// "554 5.7.0 Reject, id=12345-01 - INFECTED: Eicar-Test-Signature"; the daemon sets a
	// passed one's from the next hop's answer, which NextHopFailed rewrites in place when the
	// next hop did not take it. The zero Reply while a passed recipient is not forwarded.
	Reply smtp.Reply

	// The outcome (the daemon).
	ByMTA  bool       // Reply came from the next hop (or from the failure to reach it)
	Remote smtp.Reply // the next hop's own reply: the log's queued_as, the DSN's Remote-MTA
	Tagged bool       // its copy got an alert or a subject tag (HeaderEdits.Tagged)
	DSN    DSN        // whether a DSN reported it
}

// DSN is what happened about a delivery status notification for a recipient.
type DSN int

const (
	NoDSN         DSN = iota
	DSNSent           // amavis sent a DSN to the sender
	DSNSuppressed     // a DSN was due but suppressed
)

// Category is the recipient's blocking category when it is blocked, else its main one: what
// its quarantine, its administrator and its warning go by.
func (r *Recipient) Category() CCat {
	if r.Blocked {
		return r.Blocking
	}
	return r.CCats.Main()
}

// Delivered: the recipient got the message (a pass that the next hop accepted).
func (r *Recipient) Delivered() bool { return r.Destiny == conf.D_PASS && r.Reply.Class() == 2 }

// Relayed: the next hop took the recipient (the DSN's "Action: relayed").
func (r *Recipient) Relayed() bool { return r.ByMTA && r.Reply.Class() == 2 }

// NextHopRefused: the next hop did not take the recipient, or could not be reached.
func (r *Recipient) NextHopRefused() bool { return r.ByMTA && r.Reply.Class() != 2 }
