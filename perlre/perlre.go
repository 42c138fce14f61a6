// Package perlre compiles the Perl regular expressions that amavis
// configurations contain (virus-name patterns, banned rules, regexp lookup
// tables) with a backtracking engine and a match timeout.
//
// RE2 (Go's regexp) rejects lookahead, which Debian's clamd entry and most
// real banned rules use, so patterns go to github.com/dlclark/regexp2, whose
// default (.NET) syntax is close to Perl's: `$` matches at the end and before
// a final newline, inline modifiers like `(?i)` work mid-pattern. The Perl
// constructs regexp2 lacks and real configs contain are translated first:
// \Q...\E, \h, \H, \R, \N, \g1, POSIX classes such as [[:alpha:]] and the
// `(?^...)` groups of stringified qr//.
package perlre

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// DefaultTimeout bounds one match; a pathological pattern fails instead of
// holding a worker.
const DefaultTimeout = time.Second

// ErrTimeout is wrapped in the error returned when a match exceeds its time.
var ErrTimeout = errors.New("regexp match timeout")

// Regexp is a compiled Perl pattern.
type Regexp struct {
	src string
	re  *regexp2.Regexp
}

// Compile compiles expr, either a bare pattern taking the modifiers in
// defaultFlags, or a Perl literal qr/.../flags (any delimiter, also qr{...},
// qr(...), qr<...>, qr[...]) that carries its own modifiers. Modifiers are
// Perl's i, m, s, x.
func Compile(expr, defaultFlags string) (*Regexp, error) {
	pat, flags, err := splitLiteral(expr, defaultFlags)
	if err != nil {
		return nil, err
	}
	var opt regexp2.RegexOptions
	for _, f := range flags {
		switch f {
		case 'i':
			opt |= regexp2.IgnoreCase
		case 'm':
			opt |= regexp2.Multiline
		case 's':
			opt |= regexp2.Singleline
		case 'x':
			opt |= regexp2.IgnorePatternWhitespace
		default:
			return nil, fmt.Errorf("regexp %q: unsupported modifier %q", expr, f)
		}
	}
	tr, err := translate(pat)
	if err != nil {
		return nil, fmt.Errorf("regexp %q: %w", expr, err)
	}
	re, err := regexp2.Compile(tr, opt)
	if err != nil {
		return nil, fmt.Errorf("regexp %q: %w", expr, err)
	}
	re.MatchTimeout = DefaultTimeout
	return &Regexp{src: expr, re: re}, nil
}

// String returns the expression as written.
func (r *Regexp) String() string { return r.src }

// SetTimeout changes the time limit of one match.
func (r *Regexp) SetTimeout(d time.Duration) { r.re.MatchTimeout = d }

// MatchString reports whether s contains a match.
func (r *Regexp) MatchString(s string) (bool, error) {
	ok, err := r.re.MatchString(s)
	return ok, wrapErr(err)
}

// Captures returns what Perl's `@list = $s =~ /re/g` returns: for every
// match, the text of each capture group that took part in it (groups that
// did not participate are left out, as Perl's grep(defined) would). A
// pattern without groups yields the whole matches.
func (r *Regexp) Captures(s string) ([]string, error) {
	var out []string
	m, err := r.re.FindStringMatch(s)
	for ; m != nil && err == nil; m, err = r.re.FindNextMatch(m) {
		groups := m.Groups()
		if len(groups) == 1 {
			out = append(out, m.String())
			continue
		}
		for _, g := range groups[1:] {
			if len(g.Captures) > 0 {
				out = append(out, g.String())
			}
		}
	}
	return out, wrapErr(err)
}

func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "timeout") {
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}

var closing = map[byte]byte{'{': '}', '(': ')', '<': '>', '[': ']'}

// splitLiteral separates qr/pat/flags; anything else is a bare pattern.
func splitLiteral(expr, defaultFlags string) (pat, flags string, err error) {
	if len(expr) < 4 || !strings.HasPrefix(expr, "qr") {
		return expr, defaultFlags, nil
	}
	open := expr[2]
	if open == ' ' || open == '_' || ('a' <= open && open <= 'z') || ('A' <= open && open <= 'Z') || ('0' <= open && open <= '9') {
		return expr, defaultFlags, nil // a bare pattern that starts with "qr"
	}
	end, ok := closing[open]
	if !ok {
		end = open
	}
	i := strings.LastIndexByte(expr, end)
	if i < 3 {
		return "", "", fmt.Errorf("regexp %q: unterminated qr literal", expr)
	}
	pat, flags = expr[3:i], expr[i+1:]
	if end == open && open != '\\' {
		pat = strings.ReplaceAll(pat, `\`+string(open), string(open))
	}
	return pat, flags, nil
}

var posixClass = map[string]string{
	"alpha": `a-zA-Z`, "digit": `0-9`, "alnum": `a-zA-Z0-9`, "upper": `A-Z`, "lower": `a-z`,
	"space": `\s`, "blank": ` \t`, "xdigit": `0-9A-Fa-f`, "word": `\w`, "cntrl": `\x00-\x1f\x7f`,
	"punct": `!-/:-@\[-` + "`" + `{-~`, "graph": `!-~`, "print": ` -~`,
}

// translate rewrites the Perl constructs regexp2 does not know.
func translate(p string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			n := p[i+1]
			i++
			switch n {
			case 'Q':
				end := strings.Index(p[i+1:], `\E`)
				lit := p[i+1:]
				if end >= 0 {
					lit = p[i+1 : i+1+end]
					i += end + 2
				} else {
					i = len(p)
				}
				if inClass {
					b.WriteString(strings.NewReplacer(`\`, `\\`, `]`, `\]`, `^`, `\^`, `-`, `\-`).Replace(lit))
				} else {
					b.WriteString(regexp2.Escape(lit))
				}
			case 'E':
				// a stray \E ends nothing
			case 'h':
				b.WriteString(wrapClass(`\t \xA0`, inClass))
			case 'H':
				if inClass {
					return "", errors.New(`\H inside a character class is not supported`)
				}
				b.WriteString(`[^\t \xA0]`)
			case 'R':
				if inClass {
					return "", errors.New(`\R inside a character class is not supported`)
				}
				b.WriteString(`(?:\r\n|[\n\v\f\r\x85\u2028\u2029])`)
			case 'N':
				if inClass || (i+1 < len(p) && p[i+1] == '{') {
					return "", errors.New(`\N{...} is not supported`)
				}
				b.WriteString(`[^\n]`)
			case 'g':
				j := i + 1
				brace := j < len(p) && p[j] == '{'
				if brace {
					j++
				}
				k := j
				for k < len(p) && p[k] >= '0' && p[k] <= '9' {
					k++
				}
				if k == j || (brace && (k >= len(p) || p[k] != '}')) {
					return "", errors.New(`only numbered \g back-references are supported`)
				}
				b.WriteString(`\` + p[j:k])
				if brace {
					k++
				}
				i = k - 1
			case 'K':
				return "", errors.New(`\K is not supported`)
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
		case c == '[' && inClass && strings.HasPrefix(p[i:], "[:"):
			end := strings.Index(p[i:], ":]")
			if end < 0 {
				b.WriteString(`\[`)
				continue
			}
			name := p[i+2 : i+end]
			neg := strings.HasPrefix(name, "^")
			cls, ok := posixClass[strings.TrimPrefix(name, "^")]
			if !ok || neg {
				return "", fmt.Errorf("POSIX class [:%s:] is not supported", name)
			}
			b.WriteString(cls)
			i += end + 1
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// a ']' right after '[' or '[^' is a literal
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		case c == '(' && !inClass && strings.HasPrefix(p[i:], "(?^"):
			// (?^flags:...) resets to defaults, then applies flags
			j := i + 3
			for j < len(p) && strings.IndexByte("imsxn", p[j]) >= 0 {
				j++
			}
			on := p[i+3 : j]
			off := ""
			for _, f := range "imsx" {
				if !strings.ContainsRune(on, f) {
					off += string(f)
				}
			}
			b.WriteString("(?" + on + "-" + off)
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func wrapClass(s string, inClass bool) string {
	if inClass {
		return s
	}
	return "[" + s + "]"
}
