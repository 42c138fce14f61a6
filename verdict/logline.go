package verdict

import (
	"sort"
	"strconv"
	"strings"

	"amavisgo/conf"
)

// LogCategory is the category word of the main log line ($log_short_templ), the same in its
// Passed and Blocked lines: from the blocking category when a recipient is blocked, else from
// the message's main category. E.g. "CLEAN", "INFECTED (Eicar-Test-Signature)",
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

// ActionWord is the recipient's word in the log line's {actions}: its status (Relayed,
// RelayedTagged, Discarded, Bounced, NoBounce, Rejected, TempFailed) and the direction:
// Inbound (local, not originating), Internal (local, originating), Outbound (remote,
// originating), OpenRelay (remote, not originating).
func ActionWord(r *Recipient, originating bool) string {
	var status string
	class := r.Reply.Class()
	switch {
	case class == 4:
		status = "TempFailed"
	case class == 5 && r.Destiny == conf.D_REJECT:
		status = "Rejected"
	case r.Delivered():
		status = "Relayed"
		if r.Tagged {
			status = "RelayedTagged"
		}
	case r.Destiny == conf.D_DISCARD:
		status = "Discarded"
	case r.Destiny == conf.D_BOUNCE || r.Destiny == conf.D_REJECT:
		status = "Bounced"
		if r.DSN == DSNSuppressed {
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

// Actions joins the recipients' action words (sorted, each once) and then the message's other
// actions in the order performed ("Quarantined", "Archived"), as "{...}". amavis sorts before it
// shortens RelayedUntagged to Relayed (check_mail in Amavis.pm), so RelayedTaggedInbound comes
// before RelayedOpenRelay.
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
