package verdict

import (
	"regexp"
	"slices"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/hdr"
	"amavisgo/lookup"
	"amavisgo/scanners"
	"amavisgo/smtp"
	"amavisgo/unpack"
)

// Input is what the daemon knows about a message when it decides.
type Input struct {
	Config *conf.Config
	Policy *conf.Policy // the message's policy bank (policybank.ForSocket, ForClient)
	LogID  string       // %n, e.g. "12345-03"
	Sender string       // envelope sender, "" for <>
	// Recipients are the envelope recipients in RCPT order, as RCPT gave them; Decide fills
	// the decision into these records, and the Verdict's Recips are the same.
	Recipients []*Recipient
	Header     []byte // the original header section, without the empty line
	SMTPUTF8   bool   // MAIL FROM had SMTPUTF8
	Size       int64  // message size as RFC 1870 counts it
	// Bulk is true for mailing-list, bulk and auto-reply mail (amavis's is_bulk); with a null
	// sender it lets a bad header pass instead of bouncing.
	Bulk bool
	// Unpacked is the decoded message; nil when decoding was skipped (then no banned check).
	Unpacked *unpack.Result
	// AV is the virus scan's report; leave it zero when no scan ran (every recipient bypasses
	// virus checks, or Unpacked.Hold is set).
	AV scanners.Report
	// Spam is what the spam engines said; nil when no spam engine is configured (then no
	// spam phase at all, as amavis without anti-spam code).
	Spam *SpamInput
	// Received is when the message came in (the subject tag macros _DATE_ and _U_).
	Received time.Time
}

// Checks tells which checks any recipient needs, so the daemon can skip the others: amavis
// does not scan for viruses when every recipient bypasses virus checks, and so on.
type Checks struct {
	Virus, Banned, Header, Spam bool
	// Decode is true when the message must be decoded (for the virus scan or banned check).
	Decode bool
}

// Plan returns the checks the recipients of a message need under policy p.
func Plan(p *conf.Policy, recips []*Recipient) Checks {
	o := p.LookupOptions()
	var c Checks
	for _, r := range recips {
		c.Virus = c.Virus || !p.BypassVirusChecksMaps.Bool(r.Addr, o)
		c.Banned = c.Banned || !p.BypassBannedChecksMaps.Bool(r.Addr, o)
		c.Header = c.Header || !p.BypassHeaderChecksMaps.Bool(r.Addr, o)
		c.Spam = c.Spam || !p.BypassSpamChecksMaps.Bool(r.Addr, o)
	}
	c.Banned = c.Banned && p.BannedFilenameMaps.Len() > 0
	c.Decode = c.Virus || c.Banned
	return c
}

// Verdict is the decision for a message and each of its recipients.
type Verdict struct {
	LogID string
	// CCats are the message's categories (every recipient's, bypassed or not).
	CCats CCats
	// Blocking is the most important blocking category among the recipients.
	Blocking CCat
	Blocked  bool         // some recipient is blocked
	Recips   []*Recipient // Input.Recipients, decided

	Viruses    []string // %V
	BadHeaders []string // %X: header findings, then "MIME error: ..."
	Hold       string   // why decoding stopped (X-Amavis-Hold)
	// Tempfail, when not the zero Reply, is the reply for the whole message: the virus scan
	// failed and virus_scanners_failure_is_fatal is set (amavis's 451; the MTA retries).
	Tempfail smtp.Reply
	// Notes are things amavis logs at level 2 (e.g. unknown banned rule set names).
	Notes []string

	policy      *conf.Policy
	xHeaderLine string
	hasSubject  bool
	myhostname  string
	received    time.Time
	spamChecked bool     // the spam phase ran (Input.Spam was set)
	spamPresent []string // the incoming X-Spam-* fields remove_existing_spam_headers deletes
}

// Decide makes the decision for every recipient of in.Recipients, phase by phase: each check
// adds the categories it finds to the message and to the recipients that do not bypass it,
// then block decides each recipient by its categories. (The virus phase comes after the
// banned one: a DSN suppressed for both reads "INFECTED, BANNED:...".) The error reports a
// banned rule that ran out of time; the daemon tempfails the message then.
func Decide(in Input) (*Verdict, error) {
	v := newVerdict(in)
	v.unchecked(in.Unpacked)
	v.badHeader(in)
	if err := v.banned(in); err != nil {
		return nil, err
	}
	v.virusScan(in)
	v.spam(in)
	v.oversized(in.Size)
	v.block(in)
	return v, nil
}

// newVerdict starts the decision: the message and every recipient are CLEAN, and each
// recipient gets its local_domains_maps and bypass_*_checks_maps lookups. Whatever a record
// held besides its RCPT data is cleared.
func newVerdict(in Input) *Verdict {
	p := in.Policy
	o := p.LookupOptions()
	v := &Verdict{LogID: in.LogID, policy: p, xHeaderLine: p.X_HEADER_LINE, Recips: in.Recipients, received: in.Received}
	if in.Config != nil {
		v.xHeaderLine = in.Config.XHeaderLine(p)
		v.myhostname = in.Config.Myhostname
	}
	// only the names are needed: read in place (CheckHeader splits the section for its tests)
	for f := range hdr.Fields(in.Header[:min(len(in.Header), maxHeaderBytes)]) {
		n, _, ok := hdr.Cut(f)
		if !ok {
			continue
		}
		name := string(n)
		if strings.EqualFold(name, "Subject") {
			v.hasSubject = true
		}
		for _, s := range spamRemovable {
			if strings.EqualFold(name, s) && !slices.Contains(v.spamPresent, s) {
				v.spamPresent = append(v.spamPresent, s)
			}
		}
	}
	v.CCats.Add(CC_CLEAN, 0)
	for _, r := range v.Recips {
		addr := r.Addr
		*r = Recipient{
			Recipient:    r.Recipient,
			SenderList:   r.SenderList,
			Local:        p.LocalDomainsMaps.Bool(addr, o),
			BypassVirus:  p.BypassVirusChecksMaps.Bool(addr, o),
			BypassBanned: p.BypassBannedChecksMaps.Bool(addr, o),
			BypassHeader: p.BypassHeaderChecksMaps.Bool(addr, o),
			BypassSpam:   p.BypassSpamChecksMaps.Bool(addr, o),
			Destiny:      conf.D_PASS,
		}
		r.CCats.Add(CC_CLEAN, 0)
	}
	return v
}

// unchecked: decoding found encrypted, over limits, ambiguous or undecipherable parts
// (amavis's CC_UNCHECKED minors 1 to 3); u is nil when the message was not decoded.
func (v *Verdict) unchecked(u *unpack.Result) {
	if u == nil {
		return
	}
	v.Hold = u.Hold
	encrypted, overLimits, ambiguous := u.Encrypted(), u.Hold != "", u.Ambiguous()
	if !encrypted && !overLimits && !ambiguous && !u.Undecipherable() {
		return
	}
	v.CCats.Add(CC_UNCHECKED, 0)
	for _, minor := range uncheckedMinors(encrypted, overLimits, ambiguous) {
		v.CCats.Add(CC_UNCHECKED, minor)
	}
	for _, r := range v.Recips {
		if ambiguous {
			r.CCats.Add(CC_UNCHECKED, 3) // even for recipients bypassing virus checks
		}
		if r.BypassVirus {
			continue
		}
		r.CCats.Add(CC_UNCHECKED, 0)
		for _, minor := range uncheckedMinors(encrypted, overLimits, false) {
			r.CCats.Add(CC_UNCHECKED, minor)
		}
	}
}

// badHeader runs the header checks, unless every recipient bypasses them, and counts the
// decoder's first MIME error as one when the "mime" test is allowed.
func (v *Verdict) badHeader(in Input) {
	p := in.Policy
	if !anyRecip(v.Recips, func(r *Recipient) bool { return !r.BypassHeader }) || len(p.AllowedHeaderTests) == 0 {
		return
	}
	findings, minor := CheckHeader(in.Header, HeaderTests(p.AllowedHeaderTests), in.SMTPUTF8)
	v.BadHeaders = findings
	var mimeErr string
	if p.AllowedHeaderTests["mime"] && in.Unpacked != nil && len(in.Unpacked.MIMEErrors) > 0 {
		mimeErr = mimeErrorText(in.Unpacked.MIMEErrors)
		v.BadHeaders = append(v.BadHeaders, sanitize("MIME error: "+mimeErr))
	}
	if len(findings) > 0 {
		v.CCats.Add(CC_BADH, minor)
	}
	if mimeErr != "" {
		v.CCats.Add(CC_BADH, 1)
	}
	for _, r := range v.Recips {
		if r.BypassHeader {
			continue
		}
		if len(findings) > 0 {
			r.CCats.Add(CC_BADH, minor)
		}
		if mimeErr != "" {
			r.CCats.Add(CC_BADH, 1)
		}
	}
}

// banned checks the decoded parts against each recipient's banned rule sets; recipients
// sharing rule sets share one check.
func (v *Verdict) banned(in Input) error {
	if in.Unpacked == nil {
		return nil
	}
	p := in.Policy
	o := p.LookupOptions()
	paths := leafPaths(in.Unpacked)
	done := map[string][]BannedPart{} // rule set names -> result, for recipients sharing them
	for _, r := range v.Recips {
		if r.BypassBanned {
			continue
		}
		tables, key, unknown := bannedTables(p.BannedFilenameMaps, p.BannedRules, r.Addr, o)
		for _, n := range unknown {
			v.Notes = append(v.Notes, "INFO: unknown banned table name "+n+", recip="+r.Addr)
		}
		if len(tables) == 0 {
			continue
		}
		parts, ok := done[key]
		if !ok {
			var err error
			if parts, err = checkBanned(paths, tables); err != nil {
				return err
			}
			done[key] = parts
		}
		if len(parts) == 0 {
			continue
		}
		r.Banned = parts
		r.BannedReason = reasonShort(parts[0])
		for _, b := range parts {
			if strings.HasPrefix(lookup.String(b.RHS), "DISCARD") {
				r.DSNSuppress = "BANNED:" + lookup.String(b.RHS) + " suggested by rule"
			}
		}
		r.CCats.Add(CC_BANNED, 0)
		v.CCats.Add(CC_BANNED, 0)
	}
	return nil
}

// virusScan takes the virus scan's report: a failed scan makes the message UNCHECKED (and,
// with virus_scanners_failure_is_fatal, a tempfail), a virus makes it INFECTED.
func (v *Verdict) virusScan(in Input) {
	p := in.Policy
	if in.AV.Failed {
		v.CCats.Add(CC_UNCHECKED, 0)
		for _, r := range v.Recips {
			if !r.BypassVirus {
				r.CCats.Add(CC_UNCHECKED, 0)
			}
		}
		if p.VirusScannersFailureIsFatal {
			v.Tempfail = in.AV.TempfailReply(in.LogID)
		}
	}
	if len(in.AV.Viruses) == 0 {
		return
	}
	v.Viruses = in.AV.Viruses
	fakes := p.VirusesThatFakeSenderMaps.Fakes(in.AV.Viruses)
	v.CCats.Add(CC_VIRUS, 0)
	for _, r := range v.Recips {
		if !r.BypassVirus {
			r.CCats.Add(CC_VIRUS, 0)
		}
		if fakes {
			if r.DSNSuppress == "" {
				r.DSNSuppress = "INFECTED"
			} else {
				r.DSNSuppress = "INFECTED, " + r.DSNSuppress
			}
		}
	}
}

// oversized: the message is bigger than a recipient's message_size_limit_maps allows.
func (v *Verdict) oversized(size int64) {
	for _, r := range v.Recips {
		if limit := SizeLimit(v.policy, r.Addr); limit > 0 && size > limit {
			r.OverLimit = limit
			r.CCats.Add(CC_OVERSIZED, 0)
			v.CCats.Add(CC_OVERSIZED, 0)
		}
	}
}

// mimeErrorText words the decoder's MIME errors as Amavis::Unpackers::MIME does MIME::Parser's:
// each "error: <text>" and its line end, joined by "; ", line ends made "; ", runs of white
// space one space, cut after 250 characters: "error: a; ; error: b".
func mimeErrorText(errs []string) string {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("error: " + e + "\n")
	}
	s := strings.TrimRight(b.String(), " \t\r\n")
	s = mimeLineEnds.ReplaceAllString(s, "; ")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 250 {
		s = s[:250] + "[...]"
	}
	return s
}

var mimeLineEnds = regexp.MustCompile(`[ \t\r]*\n+`)

func uncheckedMinors(encrypted, overLimits, ambiguous bool) []int {
	var m []int
	if encrypted {
		m = append(m, 1)
	}
	if overLimits {
		m = append(m, 2)
	}
	if ambiguous {
		m = append(m, 3)
	}
	return m
}

func anyRecip(rs []*Recipient, f func(*Recipient) bool) bool {
	for _, r := range rs {
		if f(r) {
			return true
		}
	}
	return false
}

// destinyKeys are the keys of amavis's %final_destiny_maps_by_ccat and %lovers_maps_by_ccat:
// the decision walks a recipient's categories through these only (so "4,7" is decided as "4").
var destinyKeys = map[CCat]bool{
	{9, 0}: true, {8, 0}: true, {7, 0}: true, {6, 0}: true, {5, 0}: true, {4, 0}: true,
	{3, 0}: true, {2, 0}: true, {2, 1}: true, {2, 2}: true, {0, 0}: true,
}

// destinyOf is %final_destiny_maps_by_ccat for one key (D_PASS when it has none).
func destinyOf(p *conf.Policy, c CCat) conf.Destiny {
	switch c {
	case CCat{CC_VIRUS, 0}:
		return p.FinalVirusDestiny
	case CCat{CC_BANNED, 0}:
		if p.FinalBannedDestiny == conf.D_DISCARD && p.Warnbannedsender {
			return conf.D_BOUNCE
		}
		return p.FinalBannedDestiny
	case CCat{CC_UNCHECKED, 0}:
		return p.FinalUncheckedDestiny
	case CCat{CC_SPAM, 0}:
		return p.FinalSpamDestiny
	case CCat{CC_BADH, 0}:
		if p.FinalBadHeaderDestiny == conf.D_DISCARD && p.Warnbadhsender {
			return conf.D_BOUNCE
		}
		return p.FinalBadHeaderDestiny
	case CCat{CC_MTA, 1}, CCat{CC_MTA, 0}:
		return conf.D_TEMPFAIL
	case CCat{CC_MTA, 2}:
		return conf.D_REJECT
	case CCat{CC_OVERSIZED, 0}:
		return conf.D_BOUNCE
	}
	return conf.D_PASS
}

// loversOf is %lovers_maps_by_ccat.
func loversOf(p *conf.Policy, major int) *lookup.Maps {
	switch major {
	case CC_VIRUS:
		return &p.VirusLoversMaps
	case CC_BANNED:
		return &p.BannedFilesLoversMaps
	case CC_UNCHECKED:
		return &p.UncheckedLoversMaps
	case CC_SPAM, CC_SPAMMY:
		return &p.SpamLoversMaps
	case CC_BADH:
		return &p.BadHeaderLoversMaps
	}
	return nil
}

// block finds each recipient's blocking category and destiny, walking its categories from
// the most important, and its reply when blocked.
func (v *Verdict) block(in Input) {
	p := in.Policy
	o := p.LookupOptions()
	for _, r := range v.Recips {
		for _, c := range append(append(CCats(nil), r.CCats...), CCat{}) {
			if !destinyKeys[c] {
				continue
			}
			d := destinyOf(p, c)
			if d == conf.D_PASS {
				continue
			}
			if l := loversOf(p, c.Major); l != nil && l.Bool(r.Addr, o) {
				continue // a content lover gets it
			}
			if d == conf.D_BOUNCE && (in.Sender == "" || in.Bulk) && c.Major == CC_BADH {
				continue // have mercy: its bounce would be suppressed anyway
			}
			r.Blocked, r.Blocking, r.Destiny = true, c, d
			break
		}
		if !r.Blocked {
			continue
		}
		if !v.Blocked || r.Blocking.Compare(v.Blocking) > 0 {
			v.Blocked, v.Blocking = true, r.Blocking
		}
		r.Reply = blockedResponse(v, r, p.SoftBounce)
	}
}

// SizeLimit is a recipient's message_size_limit_maps limit in bytes, never below 64 KiB
// (RFC 5321); 0 when it has none.
func SizeLimit(p *conf.Policy, addr string) int64 {
	lv, _, found := p.MessageSizeLimitMaps.Lookup(addr, p.LookupOptions())
	if !found {
		return 0
	}
	if n, ok := lookup.Number(lv); ok && n > 0 {
		return max(int64(n), 65536)
	}
	return 0
}
