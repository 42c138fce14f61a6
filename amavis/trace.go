package amavis

import (
	"net/netip"
	"regexp"
	"strings"

	"amavisgo/hdr"
	"amavisgo/lookup"
)

// publicNetworks is amavis's @public_networks_maps: what is not loopback, link-local,
// private, shared, multicast or reserved.
var publicNetworks = lookup.MustIPList("!127.0.0.0/8", "!::1", "!0.0.0.0/8", "!::", "!169.254.0.0/16",
	"!fe80::/10", "!10.0.0.0/8", "!172.16.0.0/12", "!192.168.0.0/16", "!fc00::/7", "!100.64.0.0/10",
	"!240.0.0.0/4", "!224.0.0.0/4", "!ff00::/8", "0.0.0.0/0", "::/0")

var (
	receivedBracketIP = regexp.MustCompile(`\[(?:IPv6:|ipv6:)?([0-9A-Fa-f:.]+)(?:%[A-Za-z0-9_-]+)?\]`)
	receivedBareIPv4  = regexp.MustCompile(`(?:^|\D)(\d{1,3}(?:\.\d{1,3}){3})(?:[^0-9.]|$)`)
)

// oldestPublicIP is amavis's %e: the oldest public IP address of the trace made of our
// client, the original client (XFORWARD ADDR) unless it is the newest Received hop, and the
// "from" part of every Received field, newest first.
func oldestPublicIP(m *Message) string {
	trace := []string{m.Conn.PeerIP}
	received := receivedIPs(m.Header)
	if c := trimIPv6Tag(m.Client.Addr); c != "" && (len(received) == 0 || !strings.EqualFold(received[0], c)) {
		trace = append(trace, c)
	}
	trace = append(trace, received...)
	oldest := ""
	for _, s := range trace {
		if ip, err := netip.ParseAddr(s); err == nil && publicNetworks.Contains(ip) {
			oldest = s
		}
	}
	return oldest
}

// receivedIPs returns the client IP of each Received field, top (newest) first; "" where a
// field names none.
func receivedIPs(header []byte) []string {
	var out []string
	for fl := range hdr.Fields(header) {
		// "Received" right before the colon: "Received :" is not taken
		const name = "Received"
		if len(fl) <= len(name) || fl[len(name)] != ':' || !strings.EqualFold(string(fl[:len(name)]), name) {
			continue
		}
		f := strings.TrimSpace(hdr.Unfold(fl[len(name)+1:]))
		from, lower := "", strings.ToLower(f)
		if strings.HasPrefix(lower, "from") {
			from = f
			if i := strings.Index(lower, " by "); i >= 0 {
				from = f[:i]
			}
		}
		ip := ""
		if from != "" {
			ip = fromIP(from) // received.go
		}
		out = append(out, ip)
	}
	return out
}
