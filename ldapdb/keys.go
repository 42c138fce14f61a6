package ldapdb

import (
	"regexp"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"amavisgo/lookup"
)

// maxDomainKeys bounds the parent-domain keys of a long domain, as make_query_keys does.
const maxDomainKeys = 20

// QueryKeys are the keys of an LDAP search for addr, in amavis's order (make_query_keys as
// Amavis::Lookup::LDAP calls it, README.ldap): the address as given, user+ext@domain,
// user@domain, for a local address also user+ext and user, then @domain, @.domain,
// @.parent... and @. ; with noAtMeansDomain the user keys end in "@" and the domain keys lose
// theirs. The null address is searched as "<>" first.
func QueryKeys(addr string, o lookup.Options, noAtMeansDomain, local bool) []string {
	lp, dom := lookup.SplitAddress(addr)
	if !o.LocalpartCaseSensitive {
		lp = strings.ToLower(lp)
	}
	domain := lookup.NormDomain(dom)
	user, ext := lookup.SplitLocalpart(lp, o.RecipientDelimiter)
	toUser, toDomain := "", "@"
	if noAtMeansDomain {
		toUser, toDomain = "@", ""
	}
	var keys []string
	if addr == "" {
		keys = append(keys, "<>")
	}
	keys = append(keys, addr)
	if ext != "" {
		keys = append(keys, user+ext+"@"+domain)
	}
	keys = append(keys, user+"@"+domain)
	if local {
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
	for _, k := range keys {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// mTokenRE finds the (attr=%m) items of a query filter, as lookup_ldap's scan does; a %m
// elsewhere stays as it is.
var mTokenRE = regexp.MustCompile(`\(([^(=]+)=%m\)`)

// expandFilter replaces each (attr=%m) of filter by (|(attr=key1)(attr=key2)...) with the keys
// escaped for a filter (RFC 4515), and returns the attributes so named.
func expandFilter(filter string, keys []string) (string, []string) {
	esc := make([]string, len(keys))
	for i, k := range keys {
		esc[i] = ldap.EscapeFilter(k)
	}
	var attrs []string
	out := mTokenRE.ReplaceAllStringFunc(filter, func(item string) string {
		attr := mTokenRE.FindStringSubmatch(item)[1]
		attrs = append(attrs, attr)
		var b strings.Builder
		b.WriteString("(|")
		for _, k := range esc {
			b.WriteString("(" + attr + "=" + k + ")")
		}
		b.WriteString(")")
		return b.String()
	})
	return out, attrs
}

// expandBase replaces %d in base by addr's domain, escaped for a DN; an address without a
// domain leaves base as it is, as lookup_ldap does.
func expandBase(base, addr string) string {
	if !strings.Contains(base, "%d") {
		return base
	}
	_, dom := lookup.SplitAddress(addr)
	domain := lookup.NormDomain(dom)
	if domain == "" {
		return base
	}
	return strings.ReplaceAll(base, "%d", ldap.EscapeDN(domain))
}
