package conf

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Listener is one socket to listen on, resolved from inet_socket_port, inet_socket_bind and
// unix_socketname.
type Listener struct {
	Network string // "tcp" or "unix"
	Address string // "127.0.0.1:10024" or "/path/to/socket"
	Port    string // the port, for interface_policy; "" for unix sockets
}

// Listeners expands the configured sockets as amavis does: a bare port is combined with every
// address of inet_socket_bind.
func (g *Global) Listeners() []Listener {
	var out []Listener
	for _, s := range g.InetSocketPort {
		switch {
		case strings.HasPrefix(s, "unix:") || strings.HasPrefix(s, "/"):
			out = append(out, Listener{Network: "unix", Address: strings.TrimPrefix(s, "unix:")})
		case isPort(s):
			for _, b := range g.InetSocketBind {
				host := strings.TrimSuffix(strings.TrimPrefix(b, "["), "]")
				out = append(out, Listener{Network: "tcp", Address: net.JoinHostPort(host, s), Port: s})
			}
		default:
			hp := strings.TrimPrefix(strings.TrimPrefix(s, "inet6:"), "inet:")
			host, port, _ := net.SplitHostPort(hp)
			out = append(out, Listener{Network: "tcp", Address: net.JoinHostPort(host, port), Port: port})
		}
	}
	if g.UnixSocketname != "" {
		out = append(out, Listener{Network: "unix", Address: g.UnixSocketname})
	}
	return out
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func checkSocket(s string) error {
	switch {
	case strings.HasPrefix(s, "unix:") || strings.HasPrefix(s, "/"):
		return nil
	case isPort(s):
		return nil
	}
	hp := strings.TrimPrefix(strings.TrimPrefix(s, "inet6:"), "inet:")
	_, port, err := net.SplitHostPort(hp)
	if err != nil || !isPort(port) {
		return fmt.Errorf("bad listen socket %q (a port, host:port, [v6]:port or unix:/path)", s)
	}
	return nil
}
