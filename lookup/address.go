package lookup

import (
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// Options are the settings that shape address lookups: $recipient_delimiter and
// $localpart_is_case_sensitive.
type Options struct {
	RecipientDelimiter     string // "" disables extension handling; "+" or "+-" splits user+ext
	LocalpartCaseSensitive bool
}

// SplitAddress splits an address into its local part and its domain (with the leading "@"),
// as amavis's split_address does: at the first "@" after which only a domain follows, where
// a domain is made of characters other than "[" and "@", and [...] literals (with \-escapes,
// possibly unterminated). An address without such an "@" is all local part.
func SplitAddress(addr string) (local, domain string) {
	for i := 0; i < len(addr); i++ {
		if addr[i] == '@' && isDomain(addr[i+1:]) {
			return addr[:i], addr[i:]
		}
	}
	return addr, ""
}

// isDomain tells whether s is a sequence of [...] literals and characters other than "["
// and "@".
func isDomain(s string) bool {
	for i := 0; i < len(s); {
		switch s[i] {
		case '@':
			return false
		case '[':
			i++
			for n := 0; i < len(s) && s[i] != ']'; n++ {
				if n == 1000 { // amavis allows 999 characters in a literal
					return false
				}
				if s[i] == '\\' {
					if i+1 == len(s) {
						return false // a backslash escapes a character, and none follows
					}
					i++
				}
				i++
			}
			if i < len(s) {
				i++ // the "]"
			}
		default:
			i++
		}
	}
	return true
}

// SplitLocalpart splits user+ext at the first delimiter character; the extension keeps its
// delimiter. Reserved names are never split, nor owner-x or x-request when "-" delimits.
func SplitLocalpart(local, delim string) (user, ext string) {
	if delim == "" {
		return local, ""
	}
	switch strings.ToLower(local) {
	case "postmaster", "mailer-daemon", "double-bounce":
		return local, ""
	}
	if strings.Contains(delim, "-") {
		l := strings.ToLower(local)
		if (strings.HasPrefix(l, "owner-") && len(l) > 6) || (strings.HasSuffix(l, "-request") && len(l) > 8) {
			return local, ""
		}
	}
	// the user part must not become empty: the search starts after the first character
	if len(local) < 2 {
		return local, ""
	}
	if i := strings.IndexAny(local[1:], delim); i >= 0 {
		return local[:i+1], local[i+1:]
	}
	return local, ""
}

// normDomain strips a leading "@" and trailing dots and converts to lower-case ASCII (IDN to
// ACE), as amavis does before a lookup.
func normDomain(domain string) string {
	domain = strings.TrimPrefix(domain, "@")
	domain = strings.TrimRight(domain, ".")
	if domain == "" {
		return ""
	}
	if strings.HasPrefix(domain, "[") || isASCII(domain) {
		return strings.ToLower(domain)
	}
	if a, err := idna.Lookup.ToASCII(domain); err == nil {
		return strings.ToLower(a)
	}
	return strings.ToLower(domain)
}

// NormDomain is normDomain for the SQL log's addresses (maddr.email, maddr.domain).
func NormDomain(domain string) string { return normDomain(domain) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// maxDomainKeys bounds the ".parent" keys of a long domain, as amavis does (20).
const maxDomainKeys = 20

// QueryKeys returns the keys a hash lookup tries for addr, in amavis's order: the address as
// given, user+ext@domain, user@domain, user+ext@, user@, domain, .domain, .parent, ..., "."
// (duplicates removed), and the $1..$5 replacement strings of the right-hand side: the
// address, the full local part, the user, the +extension and the domain.
func QueryKeys(addr string, o Options) (keys []string, rhs [5]string) {
	return MakeQueryKeys(addr, o, true, true)
}

// MakeQueryKeys is amavis's make_query_keys (Amavis::rfc2821_2822_Tools), which hash, SQL
// and LDAP lookups share: the address as given, user+ext@domain, user@domain, with bareUser
// also user+ext and user, then the domain, .domain, .parent, ... and "." (at most 20 of those),
// duplicates removed. atWithUser puts the "@" after the bare user keys (user@) rather than
// before the domain keys (@domain, @.domain): hash lookups set it, SQL and LDAP lookups as
// their *_lookups_no_at_means_domain says. rhs is as for QueryKeys.
func MakeQueryKeys(addr string, o Options, atWithUser, bareUser bool) (keys []string, rhs [5]string) {
	local, domain := SplitAddress(addr)
	fullLocal := local
	if !o.LocalpartCaseSensitive {
		local = strings.ToLower(local)
	}
	domain = normDomain(domain)
	user, ext := SplitLocalpart(local, o.RecipientDelimiter)
	toUser, toDomain := "", "@"
	if atWithUser {
		toUser, toDomain = "@", ""
	}

	keys = make([]string, 0, 8+strings.Count(domain, "."))
	keys = append(keys, addr)
	if ext != "" {
		keys = append(keys, user+ext+"@"+domain)
	}
	keys = append(keys, user+"@"+domain)
	if bareUser {
		if ext != "" {
			keys = append(keys, user+ext+toUser)
		}
		keys = append(keys, user+toUser)
	}
	keys = append(keys, toDomain+domain)
	if strings.HasPrefix(domain, "[") {
		keys = append(keys, toDomain+".") // an address literal is not split
	} else {
		var dkeys []string
		for d := domain; ; {
			dkeys = append(dkeys, toDomain+"."+d)
			if d == "" {
				break
			}
			if _, rest, ok := strings.Cut(d, "."); ok {
				d = rest
			} else {
				d = ""
			}
		}
		if len(dkeys) > maxDomainKeys {
			dkeys = dkeys[len(dkeys)-maxDomainKeys:]
		}
		keys = append(keys, dkeys...)
	}
	out := keys[:0]
	for _, k := range keys { // a few dozen keys at most: a linear search beats a map
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, [5]string{addr, fullLocal, user, ext, domain}
}

// dollarRE finds $n, ${n} and $(n) in a right-hand side.
var dollarRE = regexp.MustCompile(`\$(?:(\d+)|\{(\d+)\}|\((\d+)\))`)

// substitute replaces $n, ${n} and $(n) in s by groups[n-1] ("" when absent, as Perl's undef).
func substitute(s string, groups []string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	return dollarRE.ReplaceAllStringFunc(s, func(m string) string {
		sm := dollarRE.FindStringSubmatch(m)
		n := 0
		for _, g := range sm[1:] {
			if g != "" {
				for _, c := range g {
					n = n*10 + int(c-'0')
					if n > 1000 {
						return ""
					}
				}
			}
		}
		if n < 1 || n > len(groups) {
			return ""
		}
		return groups[n-1]
	})
}
