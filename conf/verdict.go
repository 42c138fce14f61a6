package conf

import (
	"fmt"
	"strings"

	"amavisgo/lookup"
)

// VerdictPolicy: content categories, destinies, banned rules, header checks, lookups (amavis's,
// Amavis::Conf). Every *_maps setting is a lookup.Maps: an array of lookup tables in TOML (see
// package lookup for the shapes).
type VerdictPolicy struct {
	FinalVirusDestiny     Destiny `toml:"final_virus_destiny"`
	FinalBannedDestiny    Destiny `toml:"final_banned_destiny"`
	FinalUncheckedDestiny Destiny `toml:"final_unchecked_destiny"`
	FinalSpamDestiny      Destiny `toml:"final_spam_destiny"`
	FinalBadHeaderDestiny Destiny `toml:"final_bad_header_destiny"`
	// SoftBounce turns every 5xx and discard of a blocked recipient into 450 (testing aid).
	SoftBounce bool `toml:"soft_bounce"`
	// Warnbannedsender / Warnbadhsender turn a D_DISCARD of banned / bad-header mail into
	// D_BOUNCE (amavis's compatibility rule).
	Warnbannedsender bool `toml:"warnbannedsender"`
	Warnbadhsender   bool `toml:"warnbadhsender"`

	VirusScannersFailureIsFatal bool   `toml:"virus_scanners_failure_is_fatal"`
	UndecipherableSubjectTag    string `toml:"undecipherable_subject_tag"`

	// Per-recipient lookups (by envelope recipient address).
	LocalDomainsMaps       lookup.Maps `toml:"local_domains_maps"`
	BypassVirusChecksMaps  lookup.Maps `toml:"bypass_virus_checks_maps"`
	BypassBannedChecksMaps lookup.Maps `toml:"bypass_banned_checks_maps"`
	BypassHeaderChecksMaps lookup.Maps `toml:"bypass_header_checks_maps"`
	BypassSpamChecksMaps   lookup.Maps `toml:"bypass_spam_checks_maps"`
	VirusLoversMaps        lookup.Maps `toml:"virus_lovers_maps"`
	BannedFilesLoversMaps  lookup.Maps `toml:"banned_files_lovers_maps"`
	UncheckedLoversMaps    lookup.Maps `toml:"unchecked_lovers_maps"`
	SpamLoversMaps         lookup.Maps `toml:"spam_lovers_maps"`
	BadHeaderLoversMaps    lookup.Maps `toml:"bad_header_lovers_maps"`
	// MessageSizeLimitMaps yields a size in bytes; bigger mail is CC_OVERSIZED for that
	// recipient (never below 64 KiB, RFC 5321).
	MessageSizeLimitMaps lookup.Maps `toml:"message_size_limit_maps"`
	// BannedFilenameMaps yields, per recipient, comma/space separated names of rule sets in
	// banned_rules (default "DEFAULT").
	BannedFilenameMaps lookup.Maps `toml:"banned_filename_maps"`
	// BannedRules are the named banned rule sets: ordered regexp rules matched against the
	// attribute strings of each leaf part's path; the first matching rule decides (a true
	// value bans, false allows). amavis keeps %banned_rules process-wide; here a policy bank
	// may add sets too.
	BannedRules map[string]*lookup.RegexpTable `toml:"banned_rules"`

	// ClientIPAddrPolicy loads policy banks by the client's address (XFORWARD ADDR, else the
	// peer) at MAIL FROM: the first entry whose ip list matches names the banks, comma
	// separated, loaded in order. An entry without ip uses mynetworks; the default is
	// amavis's, one such entry loading MYNETS.
	//
	//	[[client_ipaddr_policy]]
	//	ip = ["!10.9.0.0/16", "10.0.0.0/8"]
	//	banks = "MYNETS, INTERNAL"
	//
	// or, as amavis's list of pairs: client_ipaddr_policy = [[["10.0.0.0/8"], "MYNETS"]].
	ClientIPAddrPolicy ClientIPPolicies `toml:"client_ipaddr_policy"`

	RecipientDelimiter       string `toml:"recipient_delimiter"`
	LocalpartIsCaseSensitive bool   `toml:"localpart_is_case_sensitive"`

	// AllowedHeaderTests enables the bad-header tests by name: other, mime, syntax, empty,
	// long, control, 8bit, utf8, missing, multiple. Keys given in TOML merge over the defaults.
	AllowedHeaderTests map[string]bool `toml:"allowed_header_tests"`
	// AllowedAddedHeaderFields: only header fields whose name is true here are added (names
	// are case-insensitive). Keys given in TOML merge over the defaults.
	AllowedAddedHeaderFields map[string]bool `toml:"allowed_added_header_fields"`
	// RemoveExistingXScannedHeaders deletes incoming X_HEADER_TAG fields before ours is added.
	RemoveExistingXScannedHeaders bool `toml:"remove_existing_x_scanned_headers"`
}

// ClientIPPolicies is client_ipaddr_policy.
type ClientIPPolicies []ClientIPPolicy

// ClientIPPolicy is one pair of client_ipaddr_policy: an IP lookup table (empty: mynetworks)
// and bank names.
type ClientIPPolicy struct {
	IP    lookup.IPList `toml:"ip"`
	Banks string        `toml:"banks"`
}

// UnmarshalTOML builds a new list, so that a policy bank never writes into the list of the
// bank it overlays (the decoder would reuse the slice's array).
func (l *ClientIPPolicies) UnmarshalTOML(v any) error {
	var items []any
	switch x := v.(type) {
	case []map[string]any:
		for _, m := range x {
			items = append(items, m)
		}
	case []any:
		items = x
	default:
		return fmt.Errorf("want [[client_ipaddr_policy]] tables with ip and banks")
	}
	out := ClientIPPolicies{}
	for i, it := range items {
		if pair, ok := it.([]any); ok && len(pair) == 2 { // [[ips], "banks"]
			it = map[string]any{"ip": pair[0], "banks": pair[1]}
		}
		m, ok := it.(map[string]any)
		if !ok {
			return fmt.Errorf("entry %d: want a table with ip and banks, or a pair [[ips], \"banks\"]", i+1)
		}
		var e ClientIPPolicy
		for k, val := range m {
			switch k {
			case "ip":
				if err := e.IP.UnmarshalTOML(val); err != nil {
					return fmt.Errorf("entry %d: ip: %w", i+1, err)
				}
			case "banks":
				s, ok := val.(string)
				if !ok {
					return fmt.Errorf("entry %d: banks: want a string of bank names", i+1)
				}
				e.Banks = s
			default:
				return fmt.Errorf("entry %d: unknown key %q (ip, banks)", i+1, k)
			}
		}
		out = append(out, e)
	}
	*l = out
	return nil
}

// MarshalTOML writes the list of pairs form, which reloads everywhere (for showconfig).
func (l ClientIPPolicies) MarshalTOML() ([]byte, error) {
	parts := make([]string, len(l))
	for i, e := range l {
		ips, err := e.IP.MarshalTOML()
		if err != nil {
			return nil, err
		}
		parts[i] = fmt.Sprintf("[%s, %q]", ips, e.Banks)
	}
	return []byte("[" + strings.Join(parts, ", ") + "]"), nil
}

// BankNames splits Banks at commas.
func (c ClientIPPolicy) BankNames() []string {
	var out []string
	for _, n := range strings.Split(c.Banks, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (p *VerdictPolicy) setDefaults() {
	p.FinalVirusDestiny = D_DISCARD
	p.FinalBannedDestiny = D_DISCARD
	p.FinalUncheckedDestiny = D_PASS
	p.FinalSpamDestiny = D_PASS
	p.FinalBadHeaderDestiny = D_PASS
	p.UndecipherableSubjectTag = "***UNCHECKED*** "
	p.BannedFilenameMaps = lookup.NewMaps(lookup.Const("DEFAULT"))
	p.BannedRules = map[string]*lookup.RegexpTable{}
	p.ClientIPAddrPolicy = ClientIPPolicies{{Banks: "MYNETS"}}
	p.AllowedHeaderTests = map[string]bool{
		"other": true, "mime": true, "syntax": true, "empty": true, "long": true,
		"control": true, "8bit": true, "missing": true, "multiple": true, "utf8": false,
	}
	p.AllowedAddedHeaderFields = map[string]bool{}
	for _, h := range []string{"Received", "DKIM-Signature", "Authentication-Results", "VBR-Info",
		"X-Quarantine-ID", "X-Amavis-Alert", "X-Amavis-Hold", "X-Amavis-Modified",
		"X-Amavis-PenPals", "X-Amavis-OS-Fingerprint", "X-Amavis-PolicyBank", "X-Spam-Status",
		"X-Spam-Level", "X-Spam-Flag", "X-Spam-Score", "X-Spam-Tests", "X-CRM114-Status",
		"X-CRM114-CacheID", "X-DSPAM-Result", "X-DSPAM-Signature", "X-Bogosity"} {
		p.AllowedAddedHeaderFields[strings.ToLower(h)] = true
	}
	for _, h := range []string{"X-Spam-Report", "X-Spam-Checker-Version", "X-Amavis-Category"} {
		p.AllowedAddedHeaderFields[strings.ToLower(h)] = false
	}
}

// headerTests are the names allowed_header_tests knows.
var headerTests = map[string]bool{"other": true, "mime": true, "syntax": true, "empty": true,
	"long": true, "control": true, "8bit": true, "utf8": true, "missing": true, "multiple": true}

func (p *VerdictPolicy) validate() error {
	for k := range p.AllowedHeaderTests {
		if !headerTests[k] {
			return invalid("allowed_header_tests", "unknown test %q (other, mime, syntax, empty, long, control, 8bit, utf8, missing, multiple)", k)
		}
	}
	for name, rules := range p.BannedRules {
		if name == "" || strings.ContainsAny(name, ", ") {
			return invalid("banned_rules", "rule set name %q must not be empty nor contain commas or spaces", name)
		}
		if rules == nil {
			return invalid("banned_rules."+name, "empty rule set")
		}
	}
	// A bare string in an address lookup answers every address: "local_domains_maps =
	// [".example.com"]" would make the whole world local. Such a string is almost always an
	// ACL entry meant as one.
	for name, m := range map[string]lookup.Maps{
		"local_domains_maps": p.LocalDomainsMaps, "bypass_virus_checks_maps": p.BypassVirusChecksMaps,
		"bypass_banned_checks_maps": p.BypassBannedChecksMaps, "bypass_header_checks_maps": p.BypassHeaderChecksMaps,
		"bypass_spam_checks_maps": p.BypassSpamChecksMaps, "virus_lovers_maps": p.VirusLoversMaps,
		"banned_files_lovers_maps": p.BannedFilesLoversMaps, "unchecked_lovers_maps": p.UncheckedLoversMaps,
		"spam_lovers_maps": p.SpamLoversMaps, "bad_header_lovers_maps": p.BadHeaderLoversMaps,
	} {
		for _, c := range m.Constants() {
			if s, ok := c.(string); ok && (strings.HasPrefix(s, ".") || strings.Contains(s, "@")) {
				return invalid(name, "%q would be a constant that answers every address; for a list of domains or addresses write [[%s]] with acl = [%q]", s, name, s)
			}
		}
	}
	for name, d := range map[string]Destiny{
		"final_virus_destiny": p.FinalVirusDestiny, "final_banned_destiny": p.FinalBannedDestiny,
		"final_unchecked_destiny": p.FinalUncheckedDestiny, "final_spam_destiny": p.FinalSpamDestiny,
		"final_bad_header_destiny": p.FinalBadHeaderDestiny,
	} {
		if _, ok := destinyNames[d]; !ok {
			return invalid(name, "unknown destiny %d", int(d))
		}
	}
	return nil
}

// HeaderFieldAllowed tells whether amavis may add a header field of this name
// (allowed_added_header_fields; a key written in any case counts, the user's spelling over
// the default's).
func (p *VerdictPolicy) HeaderFieldAllowed(name string) bool {
	lc := strings.ToLower(name)
	for k, v := range p.AllowedAddedHeaderFields {
		if k != lc && strings.EqualFold(k, name) {
			return v
		}
	}
	return p.AllowedAddedHeaderFields[lc]
}

// LookupOptions are the settings every address lookup of this policy needs.
func (p *VerdictPolicy) LookupOptions() lookup.Options {
	return lookup.Options{RecipientDelimiter: p.RecipientDelimiter, LocalpartCaseSensitive: p.LocalpartIsCaseSensitive}
}
