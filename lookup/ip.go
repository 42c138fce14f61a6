// Package lookup implements amavis's lookup tables (Amavis::Lookup, Amavis::Lookup::IP;
// docs/lookup-tables.md): IP lists such as @inet_acl and @mynetworks, and the address lookups
// behind every *_maps setting.
package lookup

import (
	"fmt"
	"net/netip"
	"strings"
)

// IPList is an amavis IP lookup table: CIDR entries ("10.0.0.0/8", "[::1]", "127.0.0.1",
// "192.168.0.0/255.255.0.0"), each optionally negated by a leading "!"; the first entry that
// contains the address decides. As in amavis, everything is compared as IPv6 with IPv4 as
// IPv4-mapped addresses: "::/0" matches every address, "0/0" every IPv4 one, and
// "::ffff:0:0/96" the IPv4 ones too. It decodes from a TOML array of strings.
type IPList struct {
	entries []ipEntry
	src     []string
}

type ipEntry struct {
	prefix netip.Prefix
	negate bool
}

// ParseIPList parses the entries of an IP list.
func ParseIPList(src []string) (IPList, error) {
	l := IPList{src: append([]string(nil), src...)}
	for _, s := range src {
		e, err := parseIPEntry(s)
		if err != nil {
			return IPList{}, err
		}
		l.entries = append(l.entries, e)
	}
	return l, nil
}

// MustIPList is ParseIPList for built-in defaults.
func MustIPList(src ...string) IPList {
	l, err := ParseIPList(src)
	if err != nil {
		panic(err)
	}
	return l
}

func parseIPEntry(s string) (ipEntry, error) {
	var e ipEntry
	t := strings.TrimSpace(s)
	for strings.HasPrefix(t, "!") {
		e.negate = !e.negate
		t = strings.TrimSpace(t[1:])
	}
	addr, bits, hasBits := strings.Cut(t, "/")
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	bits = strings.TrimSuffix(strings.TrimPrefix(bits, "["), "]")
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		// amavis accepts classful shorthands such as "10/8" and "172.16/12", but only
		// with a prefix length: a bare "10" is an error there too.
		if ip, err = classful(addr); err != nil || !hasBits {
			return e, fmt.Errorf("bad IP address %q in IP list", s)
		}
	}
	n := ip.BitLen()
	if hasBits {
		if m, err := netip.ParseAddr(bits); err == nil && m.Is4() && ip.Is4() {
			n = maskBits(m)
			if n < 0 {
				return e, fmt.Errorf("bad netmask %q in IP list", s)
			}
		} else if _, err := fmt.Sscanf(bits, "%d", &n); err != nil || n < 0 || n > ip.BitLen() {
			return e, fmt.Errorf("bad prefix length %q in IP list", s)
		}
	}
	if ip.Is4() {
		n += 96 // the IPv4-mapped form, as amavis compares
	}
	e.prefix = netip.PrefixFrom(netip.AddrFrom16(ip.As16()), n).Masked()
	return e, nil
}

func classful(s string) (netip.Addr, error) {
	octets := strings.Split(s, ".")
	if len(octets) == 0 || len(octets) > 4 {
		return netip.Addr{}, fmt.Errorf("bad address")
	}
	for len(octets) < 4 {
		octets = append(octets, "0")
	}
	return netip.ParseAddr(strings.Join(octets, "."))
}

func maskBits(m netip.Addr) int {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for n < 32 && v&(1<<(31-n)) != 0 {
		n++
	}
	if n < 32 && v<<n != 0 {
		return -1 // ones after a zero: not a netmask
	}
	return n
}

// Match reports whether ip is in the list: the first containing entry decides, and a negated
// entry answers false. found is false when no entry contains ip.
func (l IPList) Match(ip netip.Addr) (match, found bool) {
	ip = netip.AddrFrom16(ip.As16())
	for _, e := range l.entries {
		if e.prefix.Contains(ip) {
			return !e.negate, true
		}
	}
	return false, false
}

// Contains is Match without the distinction between "no entry" and "negated entry".
func (l IPList) Contains(ip netip.Addr) bool {
	m, _ := l.Match(ip)
	return m
}

// Strings returns the entries as configured.
func (l IPList) Strings() []string { return l.src }

// UnmarshalTOML decodes a TOML array of strings.
func (l *IPList) UnmarshalTOML(v any) error {
	arr, ok := v.([]any)
	if !ok {
		return fmt.Errorf("an IP list must be an array of strings")
	}
	src := make([]string, 0, len(arr))
	for _, x := range arr {
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("an IP list must be an array of strings, found %T", x)
		}
		src = append(src, s)
	}
	parsed, err := ParseIPList(src)
	if err != nil {
		return err
	}
	*l = parsed
	return nil
}

// MarshalTOML writes the list back as configured (for showconfig).
func (l IPList) MarshalTOML() ([]byte, error) {
	var b strings.Builder
	b.WriteString("[")
	for i, s := range l.src {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", s)
	}
	b.WriteString("]")
	return []byte(b.String()), nil
}
