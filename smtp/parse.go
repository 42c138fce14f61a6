package smtp

import (
	"regexp"
	"strconv"
	"strings"
)

// ParseCommand splits a command line (without its CRLF) into an upper-cased verb and its
// arguments, trimmed of surrounding blanks. ok is false for a line amavis calls "bad syntax":
// no verb of letters and digits starting with a letter, or the verb not followed by a blank.
func ParseCommand(line string) (verb, args string, ok bool) {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	start := i
	if i >= len(line) || !isAlpha(line[i]) {
		return "", "", false
	}
	for i < len(line) && (isAlpha(line[i]) || (line[i] >= '0' && line[i] <= '9')) {
		i++
	}
	verb = strings.ToUpper(line[start:i])
	if i < len(line) && line[i] != ' ' && line[i] != '\t' {
		return "", "", false
	}
	return verb, strings.Trim(line[i:], " \t"), true
}

func isAlpha(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// A path as amavis accepts it in MAIL FROM and RCPT TO: angle brackets around a local part
// (quoted strings allowed) and an optional domain or address literal, then parameters.
// amavis bounds quoted strings and literals to 999 characters; here the command line is
// bounded instead, which keeps the compiled program (and each match) small.
const pathRE = `(<(?:"(?:\\.|[^\\"])*"|[^"@ \t])*(?:@(?:\[(?:\\.|[^\]\\])*\]|[^\[\]\\> \t])*)?>)(?:[ \t]+(.+))?$`

// pathSyntax is the syntax of MAIL's or RCPT's arguments: the keyword and the whole pattern.
type pathSyntax struct {
	keyword string
	re      *regexp.Regexp
}

var (
	mailArgs = pathSyntax{"FROM:", regexp.MustCompile(`(?is)^FROM:[ \t]*` + pathRE)}
	rcptArgs = pathSyntax{"TO:", regexp.MustCompile(`(?is)^TO:[ \t]*` + pathRE)}
)

// parsePath matches "FROM:<addr> params" (or TO:) and returns the path with its brackets and
// the parameter text. The usual plain path is taken without the pattern, which is a tenth of
// the cost of a whole 2 KB message's parsing; anything else goes to the pattern.
func parsePath(syn pathSyntax, args string) (path, params string, ok bool) {
	if path, params, ok := plainPath(syn.keyword, args); ok {
		return path, params, true
	}
	m := syn.re.FindStringSubmatch(args)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// plainPath takes "<local@domain>" followed by nothing or by blanks and parameters, when
// nothing in it needs the pattern: no quotes, literals, backslashes, blanks or angle brackets
// inside, at most one "@". The pattern gives the same for such a path: its local part could
// run past the first ">" only up to a blank, and none follows before the parameters.
func plainPath(keyword, args string) (path, params string, ok bool) {
	if len(args) < len(keyword) || !strings.EqualFold(args[:len(keyword)], keyword) {
		return "", "", false
	}
	rest := strings.TrimLeft(args[len(keyword):], " \t")
	if rest == "" || rest[0] != '<' {
		return "", "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 || strings.ContainsAny(rest[1:end], "\"[]\\ \t<") || strings.Count(rest[1:end], "@") > 1 {
		return "", "", false
	}
	path, after := rest[:end+1], rest[end+1:]
	if after == "" {
		return path, "", true
	}
	params = strings.TrimLeft(after, " \t")
	if params == "" || len(params) == len(after) {
		return "", "", false
	}
	return path, params, true
}

// param is one ESMTP parameter of MAIL or RCPT: NAME or NAME=VALUE.
type param struct {
	Name     string // upper-cased
	Value    string
	HasValue bool
}

// parseParams splits MAIL/RCPT parameters; ok is false when one is not NAME[=VALUE] with
// a value of printable characters other than "=".
func parseParams(s string) (ps []param, ok bool) {
	for _, f := range strings.Fields(s) {
		name, val, has := strings.Cut(f, "=")
		if !validParamName(name) || (has && !validParamValue(val)) {
			return nil, false
		}
		ps = append(ps, param{Name: strings.ToUpper(name), Value: val, HasValue: has})
	}
	return ps, true
}

func validParamName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func validParamValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c == 0x7f || c == '=' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }

// XtextDecode decodes RFC 3461 xtext ("+2B" is "+"); malformed escapes are kept as they are.
func XtextDecode(s string) string {
	if strings.IndexByte(s, '+') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// XtextEncode encodes s as RFC 3461 xtext: "+", "=" and characters outside "!".."~" become +XX.
func XtextEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			b.WriteByte('+')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Unquote turns a path as received ("<\"a b\"@x>") into the bare address ("a b@x"): brackets
// removed, a quoted local part unquoted.
func Unquote(path string) string {
	a := strings.TrimSuffix(strings.TrimPrefix(path, "<"), ">")
	if !strings.HasPrefix(a, `"`) {
		return a
	}
	at := strings.LastIndexByte(a, '@')
	local, domain := a, ""
	if at >= 0 {
		local, domain = a[:at], a[at:]
	}
	if len(local) < 2 || !strings.HasSuffix(local, `"`) {
		return a
	}
	var b strings.Builder
	q := local[1 : len(local)-1]
	for i := 0; i < len(q); i++ {
		if q[i] == '\\' && i+1 < len(q) {
			i++
		}
		b.WriteByte(q[i])
	}
	return b.String() + domain
}

// Quote is the inverse of Unquote: the address in angle brackets, its local part quoted when
// it is not a dot-atom (RFC 5321).
func Quote(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr, ""
	if at >= 0 {
		local, domain = addr[:at], addr[at:]
	}
	if local == "" || isDotAtom(local) {
		return "<" + addr + ">"
	}
	var b strings.Builder
	b.WriteString(`<"`)
	for i := 0; i < len(local); i++ {
		if local[i] == '"' || local[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteString(`"`)
	b.WriteString(domain)
	b.WriteString(">")
	return b.String()
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || c >= 0x80 || c == '.' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
