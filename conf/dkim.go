package conf

import (
	"fmt"
	"strings"
)

// DKIMGlobal holds the process-wide DKIM settings: the signing keys (amavis's dkim_key() calls)
// and the authserv-id of our Authentication-Results fields.
type DKIMGlobal struct {
	// DKIMKeys are amavis's dkim_key('example.com', 'sel', '/path/key.pem', tag => value...)
	// calls, one [[dkim_key]] each, in order: the first compatible key wins (Amavis::DKIM).
	DKIMKeys []DKIMKey `toml:"dkim_key"`
	// Myauthservid names us in Authentication-Results; "" means myhostname.
	Myauthservid string `toml:"myauthservid"`
}

// DKIMKey is one signing key. Domain may be a wildcard ("*.example.com") as in amavis.
// Options are the tags of the published key record (v, g, h, k, n, s, t), which constrain its
// use and which showkeys prints.
type DKIMKey struct {
	Domain   string            `toml:"domain"`
	Selector string            `toml:"selector"`
	KeyFile  string            `toml:"key_file"`
	Options  map[string]string `toml:"options"`
}

// DKIMPolicy holds the DKIM settings a policy bank may override.
type DKIMPolicy struct {
	EnableDKIMSigning      bool `toml:"enable_dkim_signing"`
	EnableDKIMVerification bool `toml:"enable_dkim_verification"`
	// DKIMMinimumKeyBits: valid signatures by shorter keys are logged as such.
	DKIMMinimumKeyBits int `toml:"dkim_minimum_key_bits"`
	// DKIMSignatureOptionsBysenderMaps: tables of address keys (amavis's hash lookup keys:
	// "user@example.com", "example.com", ".example.com", ".") to signature options (a c d i q
	// s ttl x, and h: the fields to sign, colon-separated, which amavis does not take); for each
	// option the most specific key of the first table that has it wins.
	//
	//	[[dkim_signature_options_bysender_maps]]
	//	"example.com" = { d = "example.com", ttl = 864000 }
	//	"." = { c = "relaxed/simple" }
	DKIMSignatureOptionsBysenderMaps DKIMOptionsMaps `toml:"dkim_signature_options_bysender_maps"`
	// SignedHeaderFields: the header fields signed (1), not signed (0) or signed with one
	// extra occurrence so that none can be added (2), by lower-case name; keys given in TOML
	// merge over amavis's defaults.
	SignedHeaderFields map[string]int `toml:"signed_header_fields"`
}

// DKIMOptionsMaps is dkim_signature_options_bysender_maps: a list of tables.
type DKIMOptionsMaps []map[string]DKIMSigOptions

// UnmarshalTOML builds new tables, so that a policy bank never writes into the base bank's.
func (m *DKIMOptionsMaps) UnmarshalTOML(v any) error {
	var list []any
	switch x := v.(type) {
	case []map[string]any:
		for _, t := range x {
			list = append(list, t)
		}
	case []any:
		list = x
	case map[string]any:
		list = []any{x}
	default:
		return fmt.Errorf("dkim_signature_options_bysender_maps: want tables of address = { option = value }")
	}
	out := DKIMOptionsMaps{}
	for i, t := range list {
		tbl, ok := t.(map[string]any)
		if !ok {
			return fmt.Errorf("dkim_signature_options_bysender_maps: table %d: want address = { option = value }", i+1)
		}
		m := map[string]DKIMSigOptions{}
		for key, o := range tbl {
			opts, ok := o.(map[string]any)
			if !ok {
				return fmt.Errorf("dkim_signature_options_bysender_maps: table %d, %q: want a table of signature options", i+1, key)
			}
			// amavis's query keys are lower-case
			m[strings.ToLower(key)] = DKIMSigOptions(opts)
		}
		out = append(out, m)
	}
	*m = out
	return nil
}

// DKIMSigOptions are signature tags; ttl (seconds from reception) sets x.
type DKIMSigOptions map[string]any

// String returns the option as text ("" when absent).
func (o DKIMSigOptions) String(k string) (string, bool) {
	v, ok := o[k]
	if !ok {
		return "", false
	}
	return fmt.Sprint(v), true
}

func (p *DKIMPolicy) setDefaults() {
	p.DKIMMinimumKeyBits = 1024
	p.SignedHeaderFields = map[string]int{}
	// RFC 6376's list and the fields amavis adds to it (Amavis::Conf)
	for _, h := range []string{"From", "Sender", "Reply-To", "Subject", "Date", "Message-ID", "To", "Cc",
		"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
		"Content-ID", "Content-Description", "Resent-Date", "Resent-From", "Resent-Sender",
		"Resent-To", "Resent-Cc", "Resent-Message-ID", "List-Id", "List-Post", "List-Owner",
		"List-Subscribe", "List-Unsubscribe", "List-Help", "List-Archive",
		"Received", "Precedence", "Original-Message-ID", "Message-Context", "PICS-Label",
		"Sensitivity", "Solicitation", "Content-Location", "Content-Features",
		"Content-Disposition", "Content-Language", "Content-Alternative", "Content-Base",
		"Content-MD5", "Content-Duration", "Content-Class", "Accept-Language", "Auto-Submitted",
		"Archived-At", "VBR-Info", "Organization", "Organisation", "User-Agent", "X-Mailer"} {
		p.SignedHeaderFields[strings.ToLower(h)] = 1
	}
	// mailing lists replace Sender, and mailers garble address lists
	for _, h := range []string{"sender", "to", "cc", "resent-to", "resent-cc"} {
		p.SignedHeaderFields[h] = 0
	}
	for _, h := range []string{"from", "date", "subject", "content-type"} {
		p.SignedHeaderFields[h] = 2
	}
}

func (p *DKIMPolicy) validate() error {
	for i, t := range p.DKIMSignatureOptionsBysenderMaps {
		for key, o := range t {
			for k, v := range o {
				switch k {
				case "a", "c", "d", "h", "i", "q", "s":
					if _, ok := v.(string); !ok {
						return invalid("dkim_signature_options_bysender_maps", "table %d, %q: %s must be a string", i+1, key, k)
					}
				case "ttl", "x":
					if _, ok := v.(int64); !ok {
						return invalid("dkim_signature_options_bysender_maps", "table %d, %q: %s must be a number of seconds", i+1, key, k)
					}
				default:
					return invalid("dkim_signature_options_bysender_maps", "table %d, %q: unknown signature option %q (a c d h i q s ttl x)", i+1, key, k)
				}
			}
		}
	}
	return nil
}

func (g *DKIMGlobal) validate() error {
	seen := map[string]bool{}
	for i, k := range g.DKIMKeys {
		if k.Domain == "" || k.Selector == "" || k.KeyFile == "" {
			return invalid("dkim_key", "entry %d: domain, selector and key_file are required", i+1)
		}
		id := strings.ToLower(k.Selector) + "._domainkey." + strings.ToLower(k.Domain)
		if seen[id] {
			return invalid("dkim_key", "selector %s for domain %s already in use", k.Selector, k.Domain)
		}
		seen[id] = true
	}
	return nil
}
