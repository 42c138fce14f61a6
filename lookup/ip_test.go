package lookup

import (
	"net/netip"
	"testing"
)

// IP lists compare as amavis's lookup_ip_acl does: IPv4 as IPv4-mapped IPv6, first
// containing entry decides, "!" negates.
func TestIPList(t *testing.T) {
	l, err := ParseIPList([]string{"!10.1.2.3", "10/8", "!192.168.1.66", "192.168.0.0/255.255.0.0", "[::1]", "[fe80::]/10", "[::ffff:172.16.0.0]/108"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip           string
		match, found bool
	}{
		{"10.9.8.7", true, true},
		{"10.1.2.3", false, true}, // the negated entry comes first
		{"192.168.1.66", false, true},
		{"192.168.200.1", true, true},
		{"::ffff:10.9.8.7", true, true}, // an IPv4-mapped client is the IPv4 one
		{"::1", true, true},
		{"fe80::1234", true, true},
		{"172.17.0.1", true, true}, // an IPv6 entry in IPv4-mapped form covers IPv4
		{"172.32.0.1", false, false},
		{"127.0.0.1", false, false},
		{"2001:db8::1", false, false},
	} {
		m, f := l.Match(netip.MustParseAddr(tc.ip))
		if m != tc.match || f != tc.found {
			t.Errorf("Match(%s) = %v, %v; want %v, %v", tc.ip, m, f, tc.match, tc.found)
		}
	}
	for _, tc := range []struct {
		entry    string
		v4, v6   bool
		v4Mapped bool // ::ffff:1.2.3.4
	}{
		{"::/0", true, true, true},   // everything
		{"0/0", true, false, true},   // IPv4 only
		{"[::]/0", true, true, true}, // brackets
		{"!!0.0.0.0/0", true, false, true},
	} {
		l, err := ParseIPList([]string{tc.entry})
		if err != nil {
			t.Fatalf("%s: %v", tc.entry, err)
		}
		for ip, want := range map[string]bool{"1.2.3.4": tc.v4, "2001:db8::1": tc.v6, "::ffff:1.2.3.4": tc.v4Mapped} {
			if got := l.Contains(netip.MustParseAddr(ip)); got != want {
				t.Errorf("%s contains %s: %v, want %v", tc.entry, ip, got, want)
			}
		}
	}
	for _, bad := range []string{"nonsense", "10", "10.0.0.0/33", "10.0.0.0/255.0.255.0", "::1/129", "1.2.3.4/-1"} {
		if _, err := ParseIPList([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseIPList(f *testing.F) {
	for _, s := range []string{"10/8", "!192.168.0.0/255.255.0.0", "[::1]", "::/0", "[::ffff:10.0.0.0]/104", "!!0/0"} {
		f.Add(s, "10.1.2.3")
	}
	f.Fuzz(func(t *testing.T, entry, addr string) {
		l, err := ParseIPList([]string{entry})
		ip, perr := netip.ParseAddr(addr)
		if err != nil || perr != nil {
			return
		}
		m, found := l.Match(ip)
		if m && !found {
			t.Errorf("%q matches %s without an entry", entry, addr)
		}
		// IPv4 and its mapped form answer alike.
		if ip.Is4() {
			m2, f2 := l.Match(netip.AddrFrom16(ip.As16()))
			if m2 != m || f2 != found {
				t.Errorf("%q: %s and its IPv4-mapped form differ", entry, addr)
			}
		}
	})
}
