package conf

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Destiny is amavis's D_* constant for what happens to a blocked recipient.
type Destiny int

// amavis's values of the D_* constants.
const (
	D_PASS     Destiny = 1
	D_DISCARD  Destiny = 0
	D_BOUNCE   Destiny = -2
	D_REJECT   Destiny = -3
	D_TEMPFAIL Destiny = -4
)

var destinyNames = map[Destiny]string{
	D_PASS: "D_PASS", D_DISCARD: "D_DISCARD", D_BOUNCE: "D_BOUNCE", D_REJECT: "D_REJECT", D_TEMPFAIL: "D_TEMPFAIL",
}

func (d Destiny) String() string {
	if s, ok := destinyNames[d]; ok {
		return s
	}
	return strconv.Itoa(int(d))
}

// UnmarshalTOML takes "D_DISCARD" (or "discard") as well as amavis's numeric values.
func (d *Destiny) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		u := strings.ToUpper(x)
		if !strings.HasPrefix(u, "D_") {
			u = "D_" + u
		}
		for k, name := range destinyNames {
			if name == u {
				*d = k
				return nil
			}
		}
		return fmt.Errorf("unknown destiny %q (D_PASS, D_DISCARD, D_BOUNCE, D_REJECT or D_TEMPFAIL)", x)
	case int64:
		if _, ok := destinyNames[Destiny(x)]; ok {
			*d = Destiny(x)
			return nil
		}
		return fmt.Errorf("unknown destiny %d", x)
	}
	return fmt.Errorf("a destiny must be a string such as \"D_DISCARD\"")
}

// MarshalText writes the D_* name (for showconfig).
func (d Destiny) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Sockets is $inet_socket_port: one port or a list, whose elements are port numbers or socket
// specifications ("127.0.0.1:10024", "[::1]:10024", "inet:host:port", "unix:/path").
type Sockets []string

// UnmarshalTOML takes a number, a string, or an array of either.
func (s *Sockets) UnmarshalTOML(v any) error {
	var items []any
	switch x := v.(type) {
	case []any:
		items = x
	default:
		items = []any{x}
	}
	out := Sockets{}
	for _, it := range items {
		switch y := it.(type) {
		case int64:
			out = append(out, strconv.FormatInt(y, 10))
		case string:
			out = append(out, y)
		default:
			return fmt.Errorf("a listen socket must be a port number or a string, found %T", it)
		}
	}
	*s = out
	return nil
}

// Method is a parsed forward_method / notify_method: "smtp:[127.0.0.1]:10025",
// "lmtp:[::1]:24", "smtp:host:port".
type Method struct {
	Proto string // "smtp" or "lmtp"
	Host  string // without brackets
	Port  string
}

// String gives the method back in amavis's form, as it appears in `from MTA(...)` replies.
func (m Method) String() string {
	return m.Proto + ":[" + m.Host + "]:" + m.Port
}

// Addr is the host:port to dial.
func (m Method) Addr() string { return net.JoinHostPort(m.Host, m.Port) }

// ParseMethod parses an amavis delivery method specification of the smtp: and lmtp: kinds.
func ParseMethod(s string) (Method, error) {
	proto, rest, ok := strings.Cut(s, ":")
	proto = strings.ToLower(proto)
	if !ok || (proto != "smtp" && proto != "lmtp") {
		return Method{}, fmt.Errorf("method %q: want smtp:[host]:port or lmtp:[host]:port", s)
	}
	var host, port string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return Method{}, fmt.Errorf("method %q: unclosed [", s)
		}
		host = rest[1:end]
		port = strings.TrimPrefix(rest[end+1:], ":")
	} else {
		i := strings.LastIndex(rest, ":")
		if i < 0 {
			return Method{}, fmt.Errorf("method %q: no port", s)
		}
		host, port = rest[:i], rest[i+1:]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Method{}, fmt.Errorf("method %q: bad port %q", s, port)
	}
	if host == "" {
		return Method{}, fmt.Errorf("method %q: no host", s)
	}
	return Method{Proto: proto, Host: host, Port: port}, nil
}
