package ldapdb

import (
	"regexp"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"amavisgo/lookup"
)

// QueryKeys are the keys of an LDAP search for addr, in amavis's order (make_query_keys as
// Amavis::Lookup::LDAP calls it, README.ldap): the address as given, user+ext@domain,
// user@domain, for a local address also user+ext and user, then @domain, @.domain,
// @.parent... and @. ; with noAtMeansDomain the user keys end in "@" and the domain keys lose
// theirs. The null address is searched as "<>" first.
func QueryKeys(addr string, o lookup.Options, noAtMeansDomain, local bool) []string {
	keys, _ := lookup.MakeQueryKeys(addr, o, noAtMeansDomain, local)
	if addr == "" {
		keys = append([]string{"<>"}, keys...)
	}
	return keys
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
