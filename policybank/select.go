// Package policybank chooses the policy bank of a message the way amavis does (Amavis.pm's
// access_is_allowed, Amavis::In::SMTP at MAIL FROM; docs/lookup-tables.md): the bank named by
// interface_policy for the socket the message came in on, then MYNETS on top of it when the client
// is in mynetworks. Lookup tables live in the lookup subpackage.
package policybank

import (
	"net"
	"net/netip"
	"strings"

	"amavisgo/conf"
)

// ForSocket loads the interface_policy bank of a listening socket over the base policy; amavis
// does this when the connection is accepted. Keys are tried as amavis does: the port, then
// "addr:port"; for Unix sockets "SOCK", then the socket path.
func ForSocket(cfg *conf.Config, port string) (*conf.Policy, error) {
	for _, key := range socketKeys(port) {
		if name, ok := cfg.InterfacePolicy[key]; ok {
			return cfg.Bank(&cfg.Policy, name)
		}
	}
	return &cfg.Policy, nil
}

func socketKeys(s string) []string {
	switch {
	case strings.HasPrefix(s, "unix:") || strings.HasPrefix(s, "/"):
		return []string{"SOCK", strings.TrimPrefix(s, "unix:")}
	case strings.Contains(s, ":"):
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return []string{s}
		}
		addr := host
		if strings.Contains(host, ":") {
			addr = "[" + host + "]"
		}
		return []string{port, addr + ":" + port}
	}
	return []string{s}
}

// ForClient loads the banks of client_ipaddr_policy over cur, as amavis does at MAIL FROM:
// the first entry whose IP list contains client names them (an entry without a list uses
// mynetworks: by default clients in mynetworks load MYNETS). An unknown client counts as
// 0.0.0.0. Loading MYNETS makes the mail originating only if a MYNETS bank is defined.
func ForClient(cfg *conf.Config, cur *conf.Policy, client netip.Addr) (*conf.Policy, error) {
	if !client.IsValid() {
		client = netip.IPv4Unspecified()
	}
	for _, e := range cur.ClientIPAddrPolicy {
		list := e.IP
		if len(list.Strings()) == 0 {
			list = cfg.Mynetworks
		}
		if !list.Contains(client) {
			continue
		}
		p := cur
		for _, name := range e.BankNames() {
			var err error
			if p, err = cfg.Bank(p, name); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	return cur, nil
}
