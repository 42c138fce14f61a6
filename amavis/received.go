package amavis

import (
	"regexp"
	"strings"
)

// receivedBarePort is an IPv4 literal with a port, "[192.0.2.1.2525]", as some MTAs write it.
var receivedBarePort = regexp.MustCompile(`^(\d{1,3}(?:\.\d{1,3}){3})\.\d{4,5}$`)

// fromIP is the client address of a Received field's "from" clause (from its "from" to its
// "by"), as Amavis::rfc2821_2822_Tools's fish_out_ip_from_received takes it: first the address
// literal of the TCP-info in parentheses after the HELO name, which the receiving MTA saw on the
// connection ("from [HELO] (host [real.ip])" gives real.ip), then the HELO name itself, then any
// other comment.
func fromIP(from string) string {
	rest := from[len("from"):]
	helo, tcp, comments := rest, "", ""
	if open := strings.IndexByte(rest, '('); open >= 0 {
		helo = rest[:open]
		groups, tail := parenGroups(rest[open:])
		if len(groups) > 0 && receivedBracketIP.MatchString(groups[0]) {
			tcp, groups = groups[0], groups[1:]
		}
		comments = strings.Join(groups, " ") + " " + tail
	}
	for _, part := range []string{tcp, helo, comments} {
		if ip := literalIP(part); ip != "" {
			return ip
		}
	}
	return ""
}

// parenGroups splits s, which starts with "(", into its top-level parenthesized groups (nested
// ones stay inside) and the text outside them.
func parenGroups(s string) (groups []string, outside string) {
	var out strings.Builder
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			if depth == 0 {
				start = i + 1
			}
			depth++
		case ')':
			if depth > 0 {
				depth--
				if depth == 0 {
					groups = append(groups, s[start:i])
				}
			}
		default:
			if depth == 0 {
				out.WriteByte(s[i])
			}
		}
	}
	if depth > 0 { // unbalanced: the rest is one group
		groups = append(groups, s[start:])
	}
	return groups, out.String()
}

// literalIP is the first address literal of s ("[192.0.2.1]", "[IPv6:2001:db8::1]"), else the
// first bare IPv4 address, else "".
func literalIP(s string) string {
	if m := receivedBracketIP.FindStringSubmatch(s); m != nil {
		if p := receivedBarePort.FindStringSubmatch(m[1]); p != nil {
			return p[1]
		}
		return m[1]
	}
	if m := receivedBareIPv4.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}
