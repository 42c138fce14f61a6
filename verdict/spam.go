package verdict

import (
	"net/mail"
	"strconv"
	"strings"

	"amavisgo/conf"
	"amavisgo/hdr"
	"amavisgo/lookup"
	"amavisgo/spam"
)

// SpamInput is what the spam engines said about a message, the same for every recipient.
type SpamInput struct {
	// Scanned: the engines were asked (not when every recipient bypasses spam checks or the
	// sender lists decided for all). A failed engine still counts as asked, with score 0.
	Scanned bool
	Score   float64  // the engines' scores added up
	Tests   []string // each engine's tests ("GTUBE,NO_RELAYS", "GTUBE=0")
}

// Spam is a recipient's spam data (amavis's spam_level, spam_tests, recip_*listed_sender).
type Spam struct {
	// Scored: the recipient has a spam level (an engine was asked, or a sender list gave
	// points); without one its Hits are "-".
	Scored bool
	Level  float64
	Tests  []string // AM.WBL first, then the engines' tests

	Whitelisted, Blacklisted bool
	// The recipient's levels (nil: undefined); all nil when it bypasses spam checks.
	Tag, Tag2, Tag3, Kill *float64
	// NoQuarantine: the level is at or above spam_quarantine_cutoff_level.
	NoQuarantine bool
	// NoAdminNotice: the level is at or above spam_notifyadmin_cutoff_level_maps.
	NoAdminNotice bool
}

// Senders are the addresses the sender lists are asked about, as amavis's white_black_list
// takes them: the envelope sender and each address of the From field, each once.
func Senders(sender string, header []byte) []string {
	out := []string{sender}
	if from, ok := hdr.Get(header, "From"); ok {
		if list, err := mail.ParseAddressList(strings.TrimSpace(from)); err == nil {
			for _, a := range list {
				out = append(out, a.Address)
			}
		}
	}
	seen := map[string]bool{}
	uniq := out[:0]
	for _, s := range out {
		if k := strings.ToLower(s); !seen[k] {
			seen[k] = true
			uniq = append(uniq, s)
		}
	}
	return uniq
}

// listed is the sender lists' answer for one recipient (Amavis::SpamControl's
// white_black_list): black- or whitelisted, and the points of score_sender_maps. The
// recipient's own entry for the sender (SQL wblist) comes first and decides alone: a number is
// a score, B (or N, F) blacklists, anything else whitelists.
func listed(p *conf.Policy, senders []string, r *Recipient) (white, black bool, boost float64) {
	if wb := strings.TrimSpace(r.SenderList); wb != "" {
		if n, err := strconv.ParseFloat(wb, 64); err == nil {
			return false, false, n
		}
		switch strings.ToUpper(wb[:1]) {
		case "B", "N", "F":
			return false, true, 0
		}
		return true, false, 0
	}
	rcpt := r.Addr
	o := p.LookupOptions()
	for _, s := range senders {
		found := false
		if p.BlacklistSenderMaps.Bool(s, o) {
			found, black = true, true
		}
		if p.WhitelistSenderMaps.Bool(s, o) {
			found, white = true, true
		}
		boost += p.ScoreSenderMaps.Score(rcpt, s, o)
		if found {
			break
		}
	}
	return white, black, boost
}

// AllListed tells whether the sender lists decide for every recipient (each is black- or
// whitelisted): amavis asks no spam engine then.
func AllListed(p *conf.Policy, sender string, header []byte, recips []*Recipient) bool {
	senders := Senders(sender, header)
	for _, r := range recips {
		if w, b, _ := listed(p, senders, r); !w && !b {
			return false
		}
	}
	return len(recips) > 0
}

// spam is the spam phase (amavis's white_black_list, then the levels of check_mail's
// decide_mail_destiny): each recipient's level from the engines and the sender lists, and
// CC_CLEAN,1 (tag), CC_SPAMMY (tag2), CC_SPAMMY,1 (tag3), CC_SPAM (kill) by its levels.
func (v *Verdict) spam(in Input) {
	if in.Spam == nil {
		return
	}
	p := in.Policy
	o := p.LookupOptions()
	v.spamChecked = true
	senders := Senders(in.Sender, in.Header)
	var nw, nb int
	var wr, br string
	for _, r := range v.Recips {
		s := &r.Spam
		var boost float64
		s.Whitelisted, s.Blacklisted, boost = listed(p, senders, r)
		if s.Whitelisted {
			nw, wr = nw+1, r.Addr
		}
		if s.Blacklisted {
			nb, br = nb+1, r.Addr
		}
		if in.Spam.Scanned {
			s.Scored, s.Level = true, in.Spam.Score
		}
		if boost != 0 {
			s.Scored = true
			s.Level += boost
			s.Tests = append(s.Tests, "AM.WBL="+PerlNum3(boost))
		}
		if in.Spam.Scanned {
			s.Tests = append(s.Tests, in.Spam.Tests...)
		}
		if !r.BypassSpam {
			s.Tag = conf.Level(p.SpamTagLevelMaps, p.SaTagLevelDeflt, r.Addr, o)
			s.Tag2 = conf.Level(p.SpamTag2LevelMaps, p.SaTag2LevelDeflt, r.Addr, o)
			s.Tag3 = conf.Level(p.SpamTag3LevelMaps, p.SaTag3LevelDeflt, r.Addr, o)
			s.Kill = conf.Level(p.SpamKillLevelMaps, p.SaKillLevelDeflt, r.Addr, o)
		}
		bypassed := r.BypassSpam
		doTag := !bypassed && (s.Blacklisted || s.Tag == nil || s.Level+wl(s.Whitelisted) >= *s.Tag)
		reached := func(l *float64) bool {
			return !bypassed && !s.Whitelisted && (s.Blacklisted || l != nil && s.Level >= *l)
		}
		doTag2, doTag3, doKill := reached(s.Tag2), reached(s.Tag3), reached(s.Kill)
		doTag2 = doTag2 || doTag3
		// the message gets the categories even from a recipient that bypasses the checks
		add := func(major, minor int) {
			v.CCats.Add(major, minor)
			if !bypassed {
				r.CCats.Add(major, minor)
			}
		}
		if doTag {
			add(CC_CLEAN, 1)
		}
		if doTag2 {
			add(CC_SPAMMY, 0)
		}
		if doTag3 {
			add(CC_SPAMMY, 1)
		}
		if doKill {
			add(CC_SPAM, 0)
		}
		// no spam quarantine, no spam admin notice at or above their cutoffs, nor for a
		// blacklisted sender when a cutoff is set (Amavis.pm's do_notify_and_quarantine)
		cutoff := func(m lookup.Maps, deflt *float64) bool {
			cut := conf.Level(m, deflt, r.Addr, o)
			return cut != nil && (s.Level >= *cut || s.Blacklisted && !s.Whitelisted)
		}
		s.NoQuarantine = cutoff(p.SpamQuarantineCutoffLevelMaps, p.SaQuarantineCutoffLevel)
		s.NoAdminNotice = cutoff(p.SpamNotifyadminCutoffLevelMaps, nil)
		// no DSN at or above the cutoff (Amavis::Notify's delivery_status_notification)
		if cut := conf.Level(p.SpamDsnCutoffLevelMaps, p.SaDsnCutoffLevel, r.Addr, o); cut != nil &&
			(s.Level >= *cut || s.Blacklisted && !s.Whitelisted) && r.DSNSuppress == "" {
			r.DSNSuppress = "spam level " + strconv.FormatFloat(s.Level, 'f', 3, 64) + " exceeds cutoff " + spam.PerlNumber(*cut)
		}
	}
	if msg := wblNote(nw, nb, len(v.Recips), wr, br); msg != "" {
		v.Notes = append(v.Notes, "wbl: "+msg+" sender "+strings.Join(quoteAll(senders), ","))
	}
}

func wl(white bool) float64 {
	if white {
		return -10
	}
	return 0
}

// wblNote is amavis's level-2 summary of the sender lists; wr and br are the last white- and
// blacklisting recipients.
func wblNote(nw, nb, n int, wr, br string) string {
	switch {
	case nw+nb == 0:
		return ""
	case nw == n && nb == 0:
		return "whitelisted"
	case nb == n && nw == 0:
		return "blacklisted"
	case nw+nb >= n:
		return "black or whitelisted by all recips"
	}
	var s string
	who := func(n int, last string) string {
		if n > 1 {
			return strconv.Itoa(n) + " recips, "
		}
		return last + ", "
	}
	if nw > 0 {
		s += "whitelisted by " + who(nw, wr)
	}
	if nb > 0 {
		s += "blacklisted by " + who(nb, br)
	}
	return s + "but not by all,"
}

func quoteAll(a []string) []string {
	out := make([]string, len(a))
	for i, s := range a {
		out[i] = "<" + s + ">"
	}
	return out
}

// PerlNum3 is amavis's 0+sprintf("%.3f", x): rounded to 3 decimals, trailing zeros dropped.
func PerlNum3(x float64) string {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return spam.PerlNumber(r)
}

// trim3 is amavis's sprintf("%.3f") with s/\.?0*\z// (macro_score).
func trim3(x float64) string {
	s := strconv.FormatFloat(x, 'f', 3, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Hits is the log line's "Hits:" (amavis's macro_score over all recipients): "-" when no
// recipient has a spam level, "min..max" when they differ by 0.1 or more.
func (v *Verdict) Hits() string { return Hits(v.Recips) }

// Hits is amavis's macro_score (%c, SCORE) over the recipients rs.
func Hits(rs []*Recipient) string {
	var lo, hi float64
	scored := false
	for _, r := range rs {
		if !r.Spam.Scored {
			continue
		}
		if !scored || r.Spam.Level < lo {
			lo = r.Spam.Level
		}
		if !scored || r.Spam.Level > hi {
			hi = r.Spam.Level
		}
		scored = true
	}
	switch {
	case !scored:
		return "-"
	case hi-lo < 0.1:
		return trim3(lo)
	}
	return trim3(lo) + ".." + trim3(hi)
}

// spamRemovable are the incoming fields remove_existing_spam_headers deletes.
var spamRemovable = []string{"X-Spam-Status", "X-Spam-Level", "X-Spam-Flag", "X-Spam-Score",
	"X-Spam-Report", "X-Spam-Checker-Version", "X-Spam-Tests"}

// spamFields are a recipient's spam header fields, as Amavis.pm's
// add_forwarding_header_edits_per_recip makes them: X-Spam-Flag, X-Spam-Score, X-Spam-Level
// and X-Spam-Status for a local recipient at or above its tag level. It returns the status as
// the level-2 spam-tag line shows it ("" when no status is added).
func (v *Verdict) spamFields(r *Recipient) (fields []Field, status string) {
	p := v.policy
	s := &r.Spam
	doTag := r.CCats.Has(CC_CLEAN, 1)
	doTag2 := r.CCats.Has(CC_SPAMMY, 0)
	if !r.Local || !(doTag || doTag2) {
		return nil, ""
	}
	bar := ""
	if c := p.SaSpamLevelChar; c != "" {
		n := 0.0
		switch {
		case s.Whitelisted || r.BypassSpam:
		case s.Blacklisted:
			n = 64
		default:
			n = min(s.Level, 64)
		}
		if n >= 1 {
			bar = strings.Repeat(c, int(n))
		}
	}
	// the pieces amavis folds X-Spam-Status at
	yes := "No"
	if doTag2 {
		yes = "Yes"
	}
	score := "x" // no level at all: no engine was asked and no list gave points
	if s.Scored {
		score = PerlNum3(s.Level)
	}
	chunks := []string{" " + yes + ",", " score=" + score}
	if s.Tag != nil {
		chunks = append(chunks, " tagged_above="+spam.PerlNumber(*s.Tag))
	}
	if s.Tag2 != nil {
		chunks = append(chunks, " required="+spam.PerlNumber(*s.Tag2))
	}
	if s.Blacklisted {
		chunks = append(chunks, " BLACKLISTED")
	}
	if s.Whitelisted {
		chunks = append(chunks, " WHITELISTED")
	}
	tests := strings.Split(strings.Join(s.Tests, ","), ",")
	for i, t := range tests {
		c := " " + t
		if i == 0 {
			c = " tests=[" + t
		}
		if i < len(tests)-1 {
			c += ","
		} else {
			c += "]"
		}
		chunks = append(chunks, c)
	}
	chunks = append(chunks, " autolearn=unavailable")
	statusValue := strings.TrimPrefix(strings.Join(chunks, "\n"), " ")

	level := s.Level
	if s.Blacklisted {
		level = max(64, level)
	}
	if s.Whitelisted {
		level = min(0, level)
	}
	if doTag && p.HeaderFieldAllowed("X-Spam-Flag") {
		flag := "NO"
		if doTag2 {
			flag = "YES"
		}
		fields = append(fields, Field{Name: "X-Spam-Flag", Value: flag})
	}
	if doTag && p.HeaderFieldAllowed("X-Spam-Score") {
		fields = append(fields, Field{Name: "X-Spam-Score", Value: PerlNum3(level)})
	}
	if doTag && p.HeaderFieldAllowed("X-Spam-Level") && p.SaSpamLevelChar != "" {
		fields = append(fields, Field{Name: "X-Spam-Level", Value: bar})
	}
	if doTag && p.HeaderFieldAllowed("X-Spam-Status") {
		fields = append(fields, Field{Name: "X-Spam-Status", Value: statusValue, Structured: true})
	}
	return fields, strings.ReplaceAll(statusValue, "\n", "")
}

// removesSpamHeaders: r's copy loses the incoming X-Spam-* fields
// (remove_existing_spam_headers_maps, then remove_existing_spam_headers).
func (v *Verdict) removesSpamHeaders(r *Recipient) bool {
	p := v.policy
	if val, _, found := p.RemoveExistingSpamHeadersMaps.Lookup(r.Addr, p.LookupOptions()); found {
		return lookup.Truthy(val)
	}
	return p.RemoveExistingSpamHeaders
}

// spamSubjectTag is the subject tag of a spam category (%subject_tag_maps_by_ccat), its
// macros expanded as add_forwarding_header_edits_per_recip expands them: _SCORE_ _REQD_
// _YESNO_ _YESNOCAPS_ _HOSTNAME_ _DATE_ _U_ _LOGID_ _MAILID_ _SUBJPREFIX_.
func (v *Verdict) spamSubjectTag(r *Recipient, c CCat, mailID string) string {
	p := v.policy
	o := p.LookupOptions()
	var t string
	switch c {
	case CCat{CC_SPAMMY, 1}:
		t = conf.SubjectTag(p.SpamSubjectTag3Maps, "", r.Addr, o)
	case CCat{CC_SPAMMY, 0}:
		t = conf.SubjectTag(p.SpamSubjectTag2Maps, p.SaSpamSubjectTag, r.Addr, o)
	case CCat{CC_CLEAN, 1}:
		t = conf.SubjectTag(p.SpamSubjectTagMaps, p.SaSpamSubjectTag1, r.Addr, o)
	default:
		return ""
	}
	if !strings.Contains(t, "_") {
		return t
	}
	reqd := "-"
	if r.Spam.Tag2 != nil {
		reqd = PerlNum3(*r.Spam.Tag2)
	}
	yes := r.CCats.Has(CC_SPAMMY, 0)
	repl := map[string]string{
		"SCORE": PerlNum3(r.Spam.Level), "REQD": reqd,
		"YESNO": map[bool]string{true: "Yes", false: "No"}[yes], "YESNOCAPS": map[bool]string{true: "YES", false: "NO"}[yes],
		"HOSTNAME": v.myhostname, "LOGID": v.LogID, "MAILID": mailID, "SUBJPREFIX": "",
		// rfc2822_timestamp (local time, %e day) and iso8601_utc_timestamp of Amavis's tools
		"DATE": v.received.Local().Format("Mon, _2 Jan 2006 15:04:05 -0700 (MST)"),
		"U":    v.received.UTC().Format("20060102T150405Z"),
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(t, '_')
		if i < 0 {
			break
		}
		j := strings.IndexByte(t[i+1:], '_')
		if j < 0 {
			break
		}
		if val, ok := repl[t[i+1:i+1+j]]; ok {
			b.WriteString(t[:i] + val)
			t = t[i+2+j:]
			continue
		}
		b.WriteString(t[:i+1])
		t = t[i+1:]
	}
	b.WriteString(t)
	return b.String()
}
