// Package scanners runs the anti-virus engines of av_scanners and
// av_scanners_backup over a message's working directory with amavis's
// semantics (Amavis::AV's virus_scan): every primary engine runs, the backup
// list only when every primary failed, and all failing makes the message
// UNCHECKED.
package scanners

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"amavisgo/perlre"
)

// DefaultTimeout bounds one engine's scan of one message when the entry
// sets no timeout.
const DefaultTimeout = 60 * time.Second

// Debian's clamd entry patterns; a clamd entry without patterns uses them.
const (
	clamdCleanPattern    = `\bOK$`
	clamdInfectedPattern = `\bFOUND$`
	clamdNamesPattern    = `^.*?: (?!Infected Archive)(.*) FOUND$`
)

// Engine types.
const (
	TypeClamd   = "clamd"
	TypeCommand = "command"
)

// Entry is one element of av_scanners or av_scanners_backup. Debian's two
// ClamAV entries read, in TOML:
//
//	[[av_scanners]]
//	name = "ClamAV-clamd"
//	type = "clamd"
//	sockets = ["/var/run/clamav/clamd.ctl"]
//	query = "CONTSCAN {}\n"
//	clean_pattern = '\bOK$'
//	infected_pattern = '\bFOUND$'
//	names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'
//
//	[[av_scanners_backup]]
//	name = "ClamAV-clamscan"
//	command = ["clamscan"]
//	args = "--stdout --no-summary -r {}"
//	clean_codes = [0]
//	infected_pattern = ':.*\sFOUND$'
//	names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'
//
// Keys:
//   - name: the engine's name in logs and in %W.
//   - type: "clamd" (our clamd client) or "command" (a program run per
//     message); inferred from sockets or command when omitted.
//   - sockets (clamd): a pool of addresses, tried in rotation with failover:
//     "/path" (unix socket), "host:port" or "[v6]:port". amavis's "clamd:"
//     prefix selects INSTREAM for that address; "simple:" is accepted.
//   - query (clamd): "CONTSCAN {}\n", "MULTISCAN {}\n" (the directory is
//     scanned by clamd, which must be able to read it) or "INSTREAM" (also
//     amavis's "*": every file is streamed). Empty: MULTISCAN for a unix
//     socket or loopback address, INSTREAM for any other.
//   - command (command): a program, or a list of alternatives of which the
//     first found wins; a bare name is searched in $path, a name with a slash
//     taken as it is. None found: the entry is disabled.
//   - args (command): a string split on white space, as amavis does, or a
//     list of arguments. "{}" is the message directory (email.txt and
//     parts/), "{}/x" a path below it, and "{}/*" or "*" stand for every file
//     to scan (email.txt and each file under parts/; "*" relative to the
//     message directory, which is the working directory); with those the
//     program runs as often as needed to keep each argument list under 4000
//     bytes.
//   - clean_codes / clean_pattern, infected_codes / infected_pattern: exit
//     codes or a Perl regexp on the output (stdout and stderr). Infected is
//     tested first; output matching neither is a failure. Without any clean
//     criterion a clean-looking result is "inconclusive", which counts as a
//     failure, as in amavis.
//   - names_pattern: a Perl regexp whose capture groups, over all matches,
//     give the virus names.
//   - timeout: the time limit for one message, e.g. "30s" (default 60s).
//
// Patterns are Perl regular expressions (package perlre) applied with /m,
// as every amavis entry is written; a pattern may also be given as a Perl
// literal such as 'qr/\bOK$/m', which then carries its own modifiers.
type Entry struct {
	Name            string        `toml:"name"`
	Type            string        `toml:"type"`
	Sockets         []string      `toml:"sockets"`
	Query           string        `toml:"query"`
	Command         Alternatives  `toml:"command"`
	Args            Args          `toml:"args"`
	CleanCodes      []int         `toml:"clean_codes"`
	InfectedCodes   []int         `toml:"infected_codes"`
	CleanPattern    string        `toml:"clean_pattern"`
	InfectedPattern string        `toml:"infected_pattern"`
	NamesPattern    string        `toml:"names_pattern"`
	Timeout         time.Duration `toml:"timeout"`
}

// Args holds a command's arguments. In TOML it is a string, split on white
// space like amavis's argument template (no quoting), or a list of strings
// taken as they are.
type Args []string

// UnmarshalTOML implements toml.Unmarshaler.
func (a *Args) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*a = strings.Fields(v)
	case []any:
		out := make(Args, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("args: %v is not a string", x)
			}
			out = append(out, s)
		}
		*a = out
	default:
		return fmt.Errorf("args: want a string or a list of strings, got %T", v)
	}
	return nil
}

// Alternatives are the program names of a command-line entry, tried in
// order. In TOML a string (one program) or a list of strings.
type Alternatives []string

// UnmarshalTOML implements toml.Unmarshaler.
func (a *Alternatives) UnmarshalTOML(v any) error {
	if s, ok := v.(string); ok {
		*a = Alternatives{s}
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		return fmt.Errorf("command: want a string or a list of strings, got %T", v)
	}
	out := make(Alternatives, 0, len(l))
	for _, x := range l {
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("command: %v is not a string", x)
		}
		out = append(out, s)
	}
	*a = out
	return nil
}

// kind returns the entry's engine type, inferring it when omitted.
func (e Entry) kind() string {
	if e.Type != "" {
		return e.Type
	}
	if len(e.Sockets) > 0 {
		return TypeClamd
	}
	if len(e.Command) > 0 {
		return TypeCommand
	}
	return ""
}

// Validate checks one entry; the error names the offending key.
func (e Entry) Validate() error {
	if strings.TrimSpace(e.Name) == "" {
		return errors.New("name: missing")
	}
	if e.Timeout < 0 {
		return fmt.Errorf("timeout: %v is negative", e.Timeout)
	}
	for _, p := range []struct{ key, re string }{
		{"clean_pattern", e.CleanPattern}, {"infected_pattern", e.InfectedPattern}, {"names_pattern", e.NamesPattern},
	} {
		if p.re == "" {
			continue
		}
		if _, err := perlre.Compile(p.re, "m"); err != nil {
			return fmt.Errorf("%s: %v", p.key, err)
		}
	}
	switch e.kind() {
	case TypeClamd:
		if len(e.Command) > 0 || len(e.Args) > 0 {
			return errors.New(`command, args: not used by type "clamd"`)
		}
		if len(e.CleanCodes) > 0 || len(e.InfectedCodes) > 0 {
			return errors.New(`clean_codes, infected_codes: type "clamd" has no exit codes; use clean_pattern, infected_pattern`)
		}
		if len(e.Sockets) == 0 {
			return errors.New("sockets: missing")
		}
		for _, s := range e.Sockets {
			if _, err := parseSocket(s); err != nil {
				return fmt.Errorf("sockets: %v", err)
			}
		}
		if _, err := parseQuery(e.Query); err != nil {
			return fmt.Errorf("query: %v", err)
		}
	case TypeCommand:
		if len(e.Sockets) > 0 || e.Query != "" {
			return errors.New(`sockets, query: not used by type "command"`)
		}
		if len(e.Command) == 0 {
			return errors.New("command: missing")
		}
		for _, c := range e.Command {
			if c == "" {
				return errors.New("command: empty program name")
			}
		}
		if len(e.CleanCodes) > 0 && e.CleanPattern != "" {
			return errors.New("clean_codes, clean_pattern: give one of them")
		}
		if len(e.InfectedCodes) > 0 && e.InfectedPattern != "" {
			return errors.New("infected_codes, infected_pattern: give one of them")
		}
		if len(e.InfectedCodes) == 0 && e.InfectedPattern == "" {
			return errors.New("infected_codes or infected_pattern: missing")
		}
	case "":
		return errors.New("type: missing, and neither sockets nor command is set")
	default:
		return fmt.Errorf("type: %q is not one of %q, %q", e.Type, TypeClamd, TypeCommand)
	}
	return nil
}

// ValidateList checks a whole list; key is its configuration name
// ("av_scanners" or "av_scanners_backup") and errors read
// `av_scanners[1] "ClamAV-clamd": sockets: ...` (the index counts from 0).
func ValidateList(key string, entries []Entry) error {
	for i, e := range entries {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("%s[%d] %q: %w", key, i, e.Name, err)
		}
	}
	return nil
}

// socketAddr is one parsed element of an entry's sockets.
type socketAddr struct {
	network, addr string
	stream        bool // amavis "clamd:" prefix: INSTREAM
}

func (s socketAddr) String() string { return s.addr }

// local reports whether clamd runs on this host and can read our files.
func (s socketAddr) local() bool {
	if s.network == "unix" {
		return true
	}
	host, _, _ := net.SplitHostPort(s.addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseSocket(spec string) (socketAddr, error) {
	var sa socketAddr
	s := spec
	if rest, ok := strings.CutPrefix(s, "clamd:"); ok {
		s, sa.stream = rest, true
	} else if rest, ok := strings.CutPrefix(s, "simple:"); ok {
		s = rest
	}
	if strings.HasPrefix(s, "/") {
		sa.network, sa.addr = "unix", s
		return sa, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" {
		return sa, fmt.Errorf("%q is neither /path nor host:port", spec)
	}
	sa.network, sa.addr = "tcp", s
	return sa, nil
}

// scanMode is how a clamd entry hands the message to clamd.
type scanMode string

const (
	modeAuto      scanMode = ""
	modeContscan  scanMode = "CONTSCAN"
	modeMultiscan scanMode = "MULTISCAN"
	modeInstream  scanMode = "INSTREAM"
)

// parseQuery reads amavis's query template of a clamd entry.
func parseQuery(q string) (scanMode, error) {
	f := strings.Fields(q)
	if len(f) == 0 {
		return modeAuto, nil
	}
	switch strings.ToUpper(f[0]) {
	case "CONTSCAN":
		if len(f) == 2 && f[1] == "{}" {
			return modeContscan, nil
		}
	case "MULTISCAN":
		if len(f) == 2 && f[1] == "{}" {
			return modeMultiscan, nil
		}
	case "INSTREAM", "*":
		if len(f) == 1 {
			return modeInstream, nil
		}
	}
	return "", fmt.Errorf(`%q: want "CONTSCAN {}", "MULTISCAN {}" or "INSTREAM"`, q)
}
