package perlconf

import (
	"fmt"
	"strings"
)

// Pos is a place in a configuration file, reported as FILE:LINE:COL.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is a configuration error at a position: one line, FILE:LINE:COL: message.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

type tokKind int

const (
	tEOF      tokKind = iota
	tNum              // 12, 6.31, 0x1f, 1_000
	tStr              // '...', q(...): no interpolation
	tIStr             // "...", qq(...), <<"EOD": interpolated parts
	tQW               // qw(...)
	tQR               // qr/.../flags
	tBacktick         // `...`
	tVar              // $x @x %x &x (sigil in text[0]), also $x::y
	tIdent            // bareword
	tOp               // punctuation and operators
)

// token is one lexeme. For tIStr and tBacktick, parts holds the interpolated pieces.
type token struct {
	kind        tokKind
	text        string // operator, identifier, variable (with sigil), literal value
	flags       string // qr flags
	parts       []strPart
	words       []string // qw
	match       bool     // a /pattern/ rather than qr/pattern/
	pos         Pos
	spaceBefore bool
}

// strPart is a piece of an interpolated string: literal text, or a variable ($x, @x, $h{k}, $a[i]).
type strPart struct {
	lit  string
	v    string // variable with sigil; "" for a literal
	key  string // element key (hash: $h{key}) or index (array: $a[i])
	elem byte   // '{' or '[' when the part is an element
}

// lexer turns a file into tokens. Perl's grammar decides between a term and an operator by
// what came before (a '/' is division after a term); we keep the previous token for that.
type lexer struct {
	file     string
	src      string
	off      int
	line     int
	lineOff  int // offset of the current line's start
	prev     *token
	heredocs []heredoc // bodies to read at the next newline
}

type heredoc struct {
	tag    string
	interp bool
	tok    *token
}

func newLexer(file, src string) *lexer {
	return &lexer{file: file, src: src, line: 1}
}

func (l *lexer) pos() Pos { return Pos{l.file, l.line, l.off - l.lineOff + 1} }

func (l *lexer) errf(p Pos, format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// newline advances over the '\n' at l.off, reading pending here-doc bodies.
func (l *lexer) newline() error {
	l.off++
	l.line++
	l.lineOff = l.off
	for len(l.heredocs) > 0 {
		h := l.heredocs[0]
		l.heredocs = l.heredocs[1:]
		var body strings.Builder
		for {
			if l.off >= len(l.src) {
				return l.errf(h.tok.pos, "here-document <<%s has no terminating line %q", h.tag, h.tag)
			}
			end := strings.IndexByte(l.src[l.off:], '\n')
			var ln string
			if end < 0 {
				ln = l.src[l.off:]
				l.off = len(l.src)
			} else {
				ln = l.src[l.off : l.off+end]
				l.off += end + 1
			}
			l.line++
			l.lineOff = l.off
			if ln == h.tag {
				break
			}
			body.WriteString(ln)
			body.WriteByte('\n')
		}
		if h.interp {
			parts, err := l.interpolate(body.String(), h.tok.pos)
			if err != nil {
				return err
			}
			h.tok.parts = parts
		} else {
			h.tok.text = body.String()
		}
	}
	return nil
}

// skipSpace skips blanks, newlines, comments, POD and __END__; it reports whether it skipped any.
func (l *lexer) skipSpace() (bool, error) {
	start := l.off
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == '\n':
			if err := l.newline(); err != nil {
				return true, err
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			l.off++
		case c == '#':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.off++
			}
		case l.off == l.lineOff && c == '=' && l.off+1 < len(l.src) && isIdentStart(l.src[l.off+1]):
			// POD: from a line starting with =word to the line starting with =cut
			for l.off < len(l.src) {
				cut := strings.HasPrefix(l.src[l.off:], "=cut")
				end := strings.IndexByte(l.src[l.off:], '\n')
				if end < 0 {
					l.off = len(l.src)
					break
				}
				l.off += end
				if err := l.newline(); err != nil {
					return true, err
				}
				if cut {
					break
				}
			}
		default:
			if l.off == l.lineOff && (strings.HasPrefix(l.src[l.off:], "__END__") || strings.HasPrefix(l.src[l.off:], "__DATA__")) {
				l.off = len(l.src)
				continue
			}
			return l.off > start, nil
		}
	}
	return l.off > start, nil
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdent(c byte) bool      { return isIdentStart(c) || c >= '0' && c <= '9' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// expectTerm reports whether the next token starts a term (after an operator or at the start),
// as opposed to an operator (after a term).
func (l *lexer) expectTerm() bool {
	p := l.prev
	if p == nil {
		return true
	}
	switch p.kind {
	case tNum, tStr, tIStr, tQW, tQR, tBacktick, tVar:
		return false
	case tIdent:
		return true // a function name or keyword: its argument follows
	case tOp:
		return p.text != ")" && p.text != "]" && p.text != "}"
	}
	return true
}

var ops = []string{"<=>", "**=", "||=", "//=", "&&=", "...", "=>", "->", "==", "!=", "<=", ">=", "&&", "||", "//", "..",
	"+=", "-=", "*=", "/=", ".=", "x=", "=~", "!~", "++", "--", "**", "<<", ">>", "::"}

// next returns the next token.
func (l *lexer) next() (*token, error) {
	sp, err := l.skipSpace()
	if err != nil {
		return nil, err
	}
	t, err := l.scan()
	if err != nil {
		return nil, err
	}
	t.spaceBefore = sp
	l.prev = t
	return t, nil
}

func (l *lexer) scan() (*token, error) {
	p := l.pos()
	if l.off >= len(l.src) {
		if len(l.heredocs) > 0 {
			return nil, l.errf(l.heredocs[0].tok.pos, "here-document <<%s has no terminating line %q", l.heredocs[0].tag, l.heredocs[0].tag)
		}
		return &token{kind: tEOF, pos: p}, nil
	}
	c := l.src[l.off]
	term := l.expectTerm()
	switch {
	case isDigit(c) || c == '.' && l.off+1 < len(l.src) && isDigit(l.src[l.off+1]) && term:
		return l.number(p)
	case c == '\'':
		l.off++
		s, err := l.delimited('\'', p)
		if err != nil {
			return nil, err
		}
		return &token{kind: tStr, text: unescapeSingle(s, '\''), pos: p}, nil
	case c == '"':
		l.off++
		s, err := l.delimited('"', p)
		if err != nil {
			return nil, err
		}
		parts, err := l.interpolate(s, p)
		return &token{kind: tIStr, parts: parts, pos: p}, err
	case c == '`':
		l.off++
		s, err := l.delimited('`', p)
		if err != nil {
			return nil, err
		}
		parts, err := l.interpolate(s, p)
		return &token{kind: tBacktick, parts: parts, pos: p}, err
	case (c == '$' || c == '@' || c == '%' || c == '&') && (term || c == '$' || c == '@'):
		return l.variable(p)
	case isIdentStart(c):
		return l.word(p)
	case c == '/' && term:
		// a /pattern/ where a value is expected: split's first argument
		l.off++
		body, err := l.delimited('/', p)
		if err != nil {
			return nil, err
		}
		fs := l.off
		for l.off < len(l.src) && isIdentStart(l.src[l.off]) {
			l.off++
		}
		return &token{kind: tQR, text: body, flags: l.src[fs:l.off], match: true, pos: p}, nil
	case c == '<' && term && strings.HasPrefix(l.src[l.off:], "<<") && l.off+2 < len(l.src) && (l.src[l.off+2] == '\'' || l.src[l.off+2] == '"' || isIdentStart(l.src[l.off+2])):
		return l.heredoc(p)
	}
	for _, op := range ops {
		if strings.HasPrefix(l.src[l.off:], op) {
			l.off += len(op)
			return &token{kind: tOp, text: op, pos: p}, nil
		}
	}
	if strings.ContainsRune("=+-*/.,;()[]{}<>?:!\\~|^%&", rune(c)) {
		l.off++
		return &token{kind: tOp, text: string(c), pos: p}, nil
	}
	return nil, l.errf(p, "syntax error: unexpected character %q", c)
}

func (l *lexer) number(p Pos) (*token, error) {
	start := l.off
	if strings.HasPrefix(l.src[l.off:], "0x") || strings.HasPrefix(l.src[l.off:], "0X") {
		l.off += 2
		for l.off < len(l.src) && (isIdent(l.src[l.off])) {
			l.off++
		}
		return &token{kind: tNum, text: l.src[start:l.off], pos: p}, nil
	}
	for l.off < len(l.src) && (isDigit(l.src[l.off]) || l.src[l.off] == '_') {
		l.off++
	}
	// a '.' followed by a digit is a decimal point; '..' is the range operator
	if l.off+1 < len(l.src) && l.src[l.off] == '.' && l.src[l.off+1] != '.' {
		l.off++
		for l.off < len(l.src) && (isDigit(l.src[l.off]) || l.src[l.off] == '_') {
			l.off++
		}
	}
	if l.off < len(l.src) && (l.src[l.off] == 'e' || l.src[l.off] == 'E') {
		e := l.off + 1
		if e < len(l.src) && (l.src[e] == '+' || l.src[e] == '-') {
			e++
		}
		if e < len(l.src) && isDigit(l.src[e]) {
			l.off = e
			for l.off < len(l.src) && isDigit(l.src[l.off]) {
				l.off++
			}
		}
	}
	return &token{kind: tNum, text: l.src[start:l.off], pos: p}, nil
}

// variable reads $name, ${name}, @name, %name, &name, $Pkg::name, and the special $_.
func (l *lexer) variable(p Pos) (*token, error) {
	sigil := l.src[l.off]
	l.off++
	if l.off < len(l.src) && l.src[l.off] == '{' && sigil != '&' {
		end := strings.IndexByte(l.src[l.off:], '}')
		if end > 0 {
			name := strings.TrimSpace(l.src[l.off+1 : l.off+end])
			if isWord(name) {
				l.off += end + 1
				return &token{kind: tVar, text: string(sigil) + name, pos: p}, nil
			}
		}
		return nil, l.errf(p, "unsupported Perl: dereference %c{...}; name the variable directly", sigil)
	}
	start := l.off
	for l.off < len(l.src) && (isIdent(l.src[l.off]) || l.src[l.off] == ':' && l.off+1 < len(l.src) && l.src[l.off+1] == ':') {
		if l.src[l.off] == ':' {
			l.off++
		}
		l.off++
	}
	name := l.src[start:l.off]
	if name == "" {
		if sigil == '$' && l.off < len(l.src) && l.src[l.off] == '$' {
			return nil, l.errf(p, "unsupported Perl: dereference $$...; name the variable directly")
		}
		if sigil == '%' || sigil == '&' {
			l.off = start
			return &token{kind: tOp, text: string(sigil), pos: p}, nil
		}
		return nil, l.errf(p, "syntax error: %c not followed by a variable name", sigil)
	}
	return &token{kind: tVar, text: string(sigil) + name, pos: p}, nil
}

func isWord(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdent(s[i]) {
			return false
		}
	}
	return true
}

// word reads a bareword, or a quote-like operator (q qq qw qr) with its body.
func (l *lexer) word(p Pos) (*token, error) {
	start := l.off
	for l.off < len(l.src) && (isIdent(l.src[l.off]) || l.src[l.off] == ':' && l.off+2 < len(l.src) && l.src[l.off+1] == ':' && isIdentStart(l.src[l.off+2])) {
		if l.src[l.off] == ':' {
			l.off++
		}
		l.off++
	}
	w := l.src[start:l.off]
	switch w {
	case "q", "qq", "qw", "qr", "m", "s", "tr", "y":
		// a quote-like operator, unless followed by => (a hash key) or a comma
		j := l.off
		for j < len(l.src) && (l.src[j] == ' ' || l.src[j] == '\t') {
			j++
		}
		if j >= len(l.src) || strings.HasPrefix(l.src[j:], "=>") || l.src[j] == ',' || l.src[j] == ';' || l.src[j] == ')' || l.src[j] == '=' && w != "s" {
			break
		}
		if w == "m" || w == "s" || w == "tr" || w == "y" {
			return nil, l.errf(p, "unsupported Perl: %s/// (pattern matching and substitution); write the value directly, or a qr'...' pattern", w)
		}
		l.off = j
		if l.off >= len(l.src) || isIdent(l.src[l.off]) || l.src[l.off] == '#' && j > start+len(w) {
			return nil, l.errf(p, "syntax error: %s needs a delimiter", w)
		}
		open := l.src[l.off]
		l.off++
		body, err := l.delimited(open, p)
		if err != nil {
			return nil, err
		}
		switch w {
		case "q":
			return &token{kind: tStr, text: unescapeSingle(body, closer(open)), pos: p}, nil
		case "qq":
			parts, err := l.interpolate(body, p)
			return &token{kind: tIStr, parts: parts, pos: p}, err
		case "qw":
			return &token{kind: tQW, words: strings.Fields(body), pos: p}, nil
		case "qr":
			fs := l.off
			for l.off < len(l.src) && isIdentStart(l.src[l.off]) {
				l.off++
			}
			flags := l.src[fs:l.off]
			for _, f := range flags {
				if !strings.ContainsRune("imsxnpaul", f) {
					return nil, l.errf(p, "unknown regular expression modifier %q", f)
				}
			}
			return &token{kind: tQR, text: body, flags: flags, pos: p}, nil
		}
	}
	return &token{kind: tIdent, text: w, pos: p}, nil
}

func closer(open byte) byte {
	switch open {
	case '(':
		return ')'
	case '[':
		return ']'
	case '{':
		return '}'
	case '<':
		return '>'
	}
	return open
}

// delimited reads up to the closing delimiter (nesting bracket pairs, skipping backslash
// escapes) and returns the raw body; l.off is past the opening delimiter.
func (l *lexer) delimited(open byte, p Pos) (string, error) {
	cl := closer(open)
	depth := 0
	start := l.off
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == '\\' && l.off+1 < len(l.src):
			if l.src[l.off+1] == '\n' {
				l.line++
				l.lineOff = l.off + 2
			}
			l.off += 2
			continue
		case c == '\n':
			l.line++
			l.lineOff = l.off + 1
		case c == cl && depth == 0:
			body := l.src[start:l.off]
			l.off++
			return body, nil
		case c == cl:
			depth--
		case c == open && open != cl:
			depth++
		}
		l.off++
	}
	return "", l.errf(p, "unterminated string: no closing %q", cl)
}

// unescapeSingle applies the two escapes of a single-quoted string: \\ and \delimiter.
func unescapeSingle(s string, delim byte) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '\\' || s[i+1] == delim) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (l *lexer) heredoc(p Pos) (*token, error) {
	l.off += 2
	interp := true
	var tag string
	switch q := l.src[l.off]; q {
	case '\'', '"':
		l.off++
		end := strings.IndexByte(l.src[l.off:], q)
		if end < 0 {
			return nil, l.errf(p, "unterminated here-document tag")
		}
		tag = l.src[l.off : l.off+end]
		l.off += end + 1
		interp = q == '"'
	default:
		s := l.off
		for l.off < len(l.src) && isIdent(l.src[l.off]) {
			l.off++
		}
		tag = l.src[s:l.off]
	}
	t := &token{kind: tStr, pos: p}
	if interp {
		t.kind = tIStr
	}
	l.heredocs = append(l.heredocs, heredoc{tag: tag, interp: interp, tok: t})
	return t, nil
}

// interpolate splits the body of a double-quoted string into literal text and variables,
// applying Perl's backslash escapes.
func (l *lexer) interpolate(s string, p Pos) ([]strPart, error) {
	var parts []strPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, strPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case 'r':
				lit.WriteByte('\r')
			case 'f':
				lit.WriteByte('\f')
			case 'a':
				lit.WriteByte('\a')
			case 'e':
				lit.WriteByte(0x1b)
			case '0', '1', '2', '3', '4', '5', '6', '7':
				n, j := 0, i
				for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
					n = n*8 + int(s[j]-'0')
					j++
				}
				lit.WriteRune(rune(n))
				i = j - 1
			case 'x':
				n, j := 0, i+1
				brace := j < len(s) && s[j] == '{'
				if brace {
					j++
				}
				for j < len(s) && strings.IndexByte("0123456789abcdefABCDEF", s[j]) >= 0 && (brace || j < i+3) {
					n = n*16 + hexVal(s[j])
					j++
				}
				if brace && j < len(s) && s[j] == '}' {
					j++
				}
				lit.WriteRune(rune(n))
				i = j - 1
			default:
				lit.WriteByte(e)
			}
		case (c == '$' || c == '@') && i+1 < len(s) && (isIdentStart(s[i+1]) || s[i+1] == '{' || c == '$' && s[i+1] == '_'):
			j := i + 1
			var name string
			if s[j] == '{' {
				end := strings.IndexByte(s[j:], '}')
				if end < 0 || !isWord(strings.TrimSpace(s[j+1:j+end])) {
					return nil, l.errf(p, "unsupported Perl: expression interpolated in a string; assign it to a variable first")
				}
				name = strings.TrimSpace(s[j+1 : j+end])
				j += end + 1
			} else {
				k := j
				for k < len(s) && (isIdent(s[k]) || s[k] == ':' && k+2 < len(s) && s[k+1] == ':' && isIdentStart(s[k+2])) {
					if s[k] == ':' {
						k++
					}
					k++
				}
				name = s[j:k]
				j = k
			}
			part := strPart{v: string(c) + name}
			if c == '$' && j < len(s) && (s[j] == '{' || s[j] == '[') {
				cl := closer(s[j])
				end := strings.IndexByte(s[j:], cl)
				if end > 0 {
					key := strings.TrimSpace(s[j+1 : j+end])
					key = strings.Trim(key, `'"`)
					part.key, part.elem = key, s[j]
					j += end + 1
				}
			}
			flush()
			parts = append(parts, part)
			i = j - 1
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return parts, nil
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	default:
		return int(c-'A') + 10
	}
}
