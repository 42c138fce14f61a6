package conf

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// MetricsGlobal is where the daemon serves its metrics (amavisgo only: amavis keeps its
// counters in BerkeleyDB for amavisd-agent instead).
type MetricsGlobal struct {
	// MetricsListen is the address of the /metrics listener: "" (the default) for none, a
	// port alone for 127.0.0.1:port, or host:port.
	MetricsListen string `toml:"metrics_listen"`
}

// MetricsAddr is metrics_listen as a host:port to bind ("" for none).
func (g *MetricsGlobal) MetricsAddr() string {
	if g.MetricsListen == "" {
		return ""
	}
	if _, err := strconv.ParseUint(g.MetricsListen, 10, 16); err == nil {
		return net.JoinHostPort("127.0.0.1", g.MetricsListen)
	}
	return g.MetricsListen
}

func (g *MetricsGlobal) validate() error {
	addr := g.MetricsAddr()
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want a port or host:port", g.MetricsListen)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: bad port %q", g.MetricsListen, port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q: the host must be an IP address", g.MetricsListen)
		}
	}
	return nil
}
