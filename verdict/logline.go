package verdict

import (
	"sort"
	"strconv"
	"strings"

	"amavisgo/conf"
	"amavisgo/smtp"
)

// LogCategory is the category word of the main log line (SPEC §5.4), the same in its Passed
// and Blocked lines: from the blocking category when a recipient is blocked, else from the
// message's main category. E.g. "CLEAN", "INFECTED (Eicar-Test-Signature)",
// "BANNED (.exe,.exe-ms,run.exe)", "BAD-HEADER-7", "UNCHECKED-ENCRYPTED".
func (v *Verdict) LogCategory() string {
	c := v.CCats.Main()
	if v.Blocked {
		c = v.Blocking
	}
	switch c.Major {
	case CC_CLEAN:
		return "CLEAN"
	case CC_MTA:
		return "MTA-BLOCKED"
	case CC_OVERSIZED:
		return "OVERSIZED"
	case CC_BADH:
		return "BAD-HEADER-" + strconv.Itoa(c.Minor)
	case CC_SPAMMY:
		return "SPAMMY"
	case CC_SPAM:
		return "SPAM"
	case CC_UNCHECKED:
		if c.Minor == 1 {
			return "UNCHECKED-ENCRYPTED"
		}
		return "UNCHECKED"
	case CC_BANNED:
		return "BANNED (" + v.firstBannedReason() + ")"
	case CC_VIRUS:
		return "INFECTED (" + strings.Join(v.Viruses, ", ") + ")"
	}
	return "OTHER"
}

// DSN is what happened about a delivery status notification for a recipient.
type DSN int

const (
	NoDSN         DSN = iota
	DSNSent           // amavis sent a DSN to the sender
	DSNSuppressed     // a DSN was due but suppressed
)

// Outcome is what became of one recipient, as the daemon knows it after forwarding.
type Outcome struct {
	Reply     smtp.Reply // the recipient's final reply; its class counts
	Forwarded bool       // the next hop accepted it (a genuine delivery, not a discard)
	Tagged    bool       // HeaderEdits.Tagged of its copy
	DSN       DSN
}

// ActionWord is the recipient's word in the log line's {actions}: its status (Relayed,
// RelayedTagged, Discarded, Bounced, NoBounce, Rejected, TempFailed) and the direction:
// Inbound (local, not originating), Internal (local, originating), Outbound (remote,
// originating), OpenRelay (remote, not originating).
func ActionWord(r *Recipient, out Outcome, originating bool) string {
	var status string
	class := out.Reply.Class()
	switch {
	case class == 4:
		status = "TempFailed"
	case class == 5 && r.Destiny == conf.D_REJECT:
		status = "Rejected"
	case out.Forwarded:
		status = "Relayed"
		if out.Tagged {
			status = "RelayedTagged"
		}
	case r.Destiny == conf.D_DISCARD:
		status = "Discarded"
	case r.Destiny == conf.D_BOUNCE || r.Destiny == conf.D_REJECT:
		status = "Bounced"
		if out.DSN == DSNSuppressed {
			status = "NoBounce"
		}
	default:
		status = "Unknown"
	}
	switch {
	case r.Local && originating:
		return status + "Internal"
	case r.Local:
		return status + "Inbound"
	case originating:
		return status + "Outbound"
	}
	return status + "OpenRelay"
}

// Actions joins the recipients' action words (sorted, each once) and then the message's
// other actions in the order performed ("Quarantined", "Archived"), as "{...}". amavis
// sorts before it shortens RelayedUntagged to Relayed, so RelayedTaggedInbound comes
// before RelayedOpenRelay (SPEC §5.4's "{RelayedTaggedInbound,RelayedOpenRelay,...}").
func Actions(words []string, performed ...string) string {
	seen := map[string]bool{}
	var uniq []string
	for _, w := range words {
		if !seen[w] {
			seen[w] = true
			uniq = append(uniq, w)
		}
	}
	sortKey := func(w string) string {
		if rest, ok := strings.CutPrefix(w, "Relayed"); ok && !strings.HasPrefix(rest, "Tagged") {
			return "RelayedUntagged" + rest
		}
		return w
	}
	sort.Slice(uniq, func(i, j int) bool { return sortKey(uniq[i]) < sortKey(uniq[j]) })
	return "{" + strings.Join(append(uniq, performed...), ",") + "}"
}
