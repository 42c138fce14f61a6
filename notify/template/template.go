// Package template expands amavis's notification template language (README.customize), so
// that a site's customised amavis templates keep working: %x and %#x macros, %% and \ escapes,
// the selector [? sel | alt0 | alt1 ...], the iterator [ %x | body | sep ], the regexp
// selector [~ str | re | then ... | else], neutral [: name | args] and active [@ name | args]
// calls, [" quoting "], [= name | body ] definitions, SpamAssassin-style _NAME(arg)_ and the
// # comment that drops everything up to the next newline.
//
// Evaluation works on a token stream: an active call or a chosen selector alternative puts
// its tokens back in front of the input, so that a chosen "#" swallows the newline that
// follows the selector, as in amavis.
package template

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dlclark/regexp2"
)

// Func is a macro computed when called; args[0] is the macro's name. It returns a string or
// a []string (a list: %x joins it with ", ", %#x counts it, an iterator walks it).
type Func func(args ...string) any

// Macros maps names to values: string, []string or Func.
type Macros map[string]any

// Limits bound the work of one expansion; a template that exceeds them (say, a macro that
// calls itself) is an error, not a hang.
const (
	maxSteps   = 200_000
	maxEmitted = 4 << 20 // output and collected arguments together
)

// ErrTooComplex reports a template that exceeded the limits.
var ErrTooComplex = errors.New("template expansion exceeds its limits")

type kind uint8

const (
	kText    kind = iota
	kIter         // [
	kSel          // [?
	kRegexp       // [~
	kActive       // [@
	kNeutral      // [:
	kDefine       // [=
	kQuote        // ["
	kUnquote      // "]
	kClose        // ]
	kSep          // |
	kHash         // #
	kMacro        // %x or %#x
	kSA           // _NAME_ or _NAME(arg)_
)

type token struct {
	k kind
	s string // literal text as it appears (for kText the text itself)
}

func (t token) lit() string { return t.s }

func (t token) isOpen() bool { return t.k >= kIter && t.k <= kQuote }

// Template is a parsed template.
type Template struct {
	toks []token
	at   []int // the offset in the source of each token
}

// Parse splits a template into tokens; it never fails.
func Parse(src string) *Template {
	var toks []token
	var at []int
	i, start := 0, 0
	text := func(s string) {
		if s == "" {
			return
		}
		toks = append(toks, token{kText, s})
	}
	for i < len(src) {
		for len(at) < len(toks) {
			at = append(at, start)
		}
		start = i
		c := src[i]
		switch {
		case c == '#':
			toks = append(toks, token{kHash, "#"})
			i++
		case c == '[':
			k, n := kIter, 1
			if i+1 < len(src) {
				switch src[i+1] {
				case '?':
					k = kSel
				case '~':
					k = kRegexp
				case '@':
					k = kActive
				case ':':
					k = kNeutral
				case '=':
					k = kDefine
				case '"':
					k = kQuote
				}
				if k != kIter {
					n = 2
				}
			}
			toks = append(toks, token{k, src[i : i+n]})
			i += n
		case c == '"' && i+1 < len(src) && src[i+1] == ']':
			toks = append(toks, token{kUnquote, `"]`})
			i += 2
		case c == ']':
			toks = append(toks, token{kClose, "]"})
			i++
		case c == '|':
			toks = append(toks, token{kSep, "|"})
			i++
		case c == '%' && i+1 < len(src):
			if src[i+1] == '%' {
				text("%")
				i += 2
				break
			}
			n := 2
			if src[i+1] == '#' && i+2 < len(src) {
				n = 3
			}
			toks = append(toks, token{kMacro, src[i : i+n]})
			i += n
		case c == '\\' && i+1 < len(src):
			d := src[i+1]
			switch {
			case d == '\n' || d == '_':
				i += 2
			case d >= '0' && d <= '7':
				j := i + 1
				for j < len(src) && j < i+4 && src[j] >= '0' && src[j] <= '7' {
					j++
				}
				v, _ := strconv.ParseUint(src[i+1:j], 8, 16)
				text(string([]byte{byte(v)}))
				i = j
			default:
				if e, ok := escapes[d]; ok {
					text(e)
				} else {
					text(src[i+1 : i+2])
				}
				i += 2
			}
		case c == '_':
			if n := saMacroLen(src[i:]); n > 0 {
				toks = append(toks, token{kSA, src[i : i+n]})
				i += n
			} else {
				text("_")
				i++
			}
		case c == '\n':
			text("\n")
			i++
		default:
			j := i + 1
			if !strings.ContainsRune("[]\\|%\n#\"_", rune(c)) {
				for j < len(src) && !strings.ContainsRune("[]\\|%\n#\"_", rune(src[j])) {
					j++
				}
			}
			text(src[i:j])
			i = j
		}
	}
	for len(at) < len(toks) {
		at = append(at, start)
	}
	return &Template{toks: toks, at: at}
}

var escapes = map[byte]string{'r': "\r", 'n': "\n", 'f': "\f", 'b': "\b", 'e': "\x1b", 'a': "\a", 't': "\t"}

// saMacroLen is the length of a _NAME_ or _NAME(arg)_ token at the start of s, or 0.
func saMacroLen(s string) int {
	j := 1
	for j < len(s) && s[j] >= 'A' && s[j] <= 'Z' {
		j++
	}
	if j == 1 {
		return 0
	}
	if j < len(s) && s[j] == '(' {
		k := strings.IndexByte(s[j:], ')')
		if k < 0 {
			return 0
		}
		j += k + 1
	}
	if j < len(s) && s[j] == '_' {
		return j + 1
	}
	return 0
}

// ParseFile parses the template src read from file and checks that each macro it calls is
// known (known reports the names its user provides; the string helpers every template may
// call and the macros the template defines with [= ...] count too). A call of any other
// macro is an error naming file:line: amavis would silently expand it to nothing.
// A call whose name is itself computed is not checked.
func ParseFile(file, src string, known func(name string) bool) (*Template, error) {
	t := Parse(src)
	defined := map[string]bool{}
	for i, tk := range t.toks {
		switch tk.k {
		case kDefine:
			if name, ok := literalName(t.toks[i+1:]); ok {
				defined[name] = true
			}
		case kIter:
			// [ name | body | sep ] iterates over macro name with %x in the body
			if _, ok := literalName(t.toks[i+1:]); ok {
				defined["x"] = true
			}
		}
	}
	ok := func(name string) bool {
		return defined[name] || Builtin(name) || known(name)
	}
	for i, tk := range t.toks {
		var name string
		switch tk.k {
		case kMacro:
			name = tk.s[len(tk.s)-1:]
			if name[0] >= '0' && name[0] <= '9' {
				continue // an argument of a defined macro or a regexp's group
			}
		case kSA:
			name, _, _ = strings.Cut(strings.Trim(tk.s, "_"), "(")
		case kNeutral, kActive:
			n, lit := literalName(t.toks[i+1:])
			if !lit {
				continue
			}
			name = n
		default:
			continue
		}
		if !ok(name) {
			line := 1 + strings.Count(src[:t.at[i]], "\n")
			return nil, fmt.Errorf("%s:%d: unknown macro %q in %s", file, line, name, strings.TrimSpace(tk.s))
		}
	}
	return t, nil
}

// literalName is the name a call starts with when it is plain text up to the first | or ].
func literalName(ts []token) (string, bool) {
	var b strings.Builder
	for _, t := range ts {
		switch t.k {
		case kText:
			b.WriteString(t.s)
			continue
		case kSep, kClose:
			name := trim(b.String())
			return name, name != ""
		}
		return "", false
	}
	return "", false
}

// Builtin reports whether name is one of the string helpers every template may call
// (amavis's wrap, lc, sprintf, mime_decode ...).
func Builtin(name string) bool {
	_, ok := builtins[name]
	_, more := moreBuiltins[name]
	return ok || more
}

func (e *expander) known(name string) bool {
	_, ok := e.macros[name]
	return ok || Builtin(name)
}

// Expand evaluates t with macros m (which [= definitions extend for this call only).
func (t *Template) Expand(m Macros) (string, error) {
	e := &expander{macros: m, defined: map[string][]token{}}
	e.push(t.toks)
	return e.run()
}

// frame is a macro call whose arguments are being collected.
type frame struct {
	k       kind
	args    [][]token
	implied bool // the call quotes its arguments implicitly (iterator; selector past arg 1)
}

type expander struct {
	macros  Macros
	defined map[string][]token
	in      []token // input still to read, last token first, so that results go back cheaply
	out     strings.Builder
	stack   []*frame
	quote   int    // quoting depth
	emitted int    // bytes emitted to the output and to arguments, bounded by maxEmitted
	opened  []kind // what opened each quoting level
}

// emit sends a token to the argument being collected, or its text to the output.
func (e *expander) emit(t token) {
	e.emitted += len(t.s)
	if n := len(e.stack); n > 0 {
		f := e.stack[n-1]
		f.args[len(f.args)-1] = append(f.args[len(f.args)-1], t)
		return
	}
	e.out.WriteString(t.lit())
}

func (e *expander) emitText(s string) {
	if s != "" {
		e.emit(token{kText, s})
	}
}

func (e *expander) pushQuote(k kind) {
	if k == kQuote {
		e.quote += 2
	} else {
		e.quote++
	}
	e.opened = append(e.opened, k)
}

func (e *expander) popQuote() {
	k := e.opened[len(e.opened)-1]
	e.opened = e.opened[:len(e.opened)-1]
	if k == kQuote {
		e.quote -= 2
	} else {
		e.quote--
	}
}

func (e *expander) run() (string, error) {
	for steps := 0; len(e.in) > 0; steps++ {
		if steps > maxSteps || e.emitted > maxEmitted || len(e.in) > maxSteps {
			return "", ErrTooComplex
		}
		t := e.pop()
		switch {
		case t.k == kText:
			e.emit(t)
		case e.quote > 0 && t.isOpen():
			e.pushQuote(t.k)
			e.emit(t)
		case t.k == kQuote:
			e.pushQuote(kQuote) // the [" itself is dropped: one level of quotes stripped
		case t.isOpen():
			f := &frame{k: t.k, args: [][]token{nil}}
			e.stack = append(e.stack, f)
			if t.k == kIter {
				e.pushQuote(kIter)
				f.implied = true
			}
		case t.k == kSep && e.quote <= 1 && len(e.stack) > 0:
			f := e.stack[len(e.stack)-1]
			f.args = append(f.args, nil)
			if f.k == kSel && len(f.args) == 2 {
				e.pushQuote(kSel)
				f.implied = true
			}
		case (t.k == kClose || t.k == kUnquote) && e.quote > 1:
			e.popQuote()
			if t.k == kClose || e.quote > 0 {
				e.emit(t)
			}
		case (t.k == kClose || t.k == kUnquote) && len(e.stack) > 0:
			if err := e.call(t); err != nil {
				return "", err
			}
		case e.quote > 0:
			e.emit(t)
		case t.k == kHash:
			for len(e.in) > 0 {
				if d := e.pop(); d.k == kText && d.s == "\n" {
					break
				}
			}
		case t.k == kMacro:
			name, count := t.s[1:], false
			if len(t.s) == 3 {
				name, count = t.s[2:], true
			}
			for _, r := range e.value(name, count, []string{name}) {
				e.emit(r)
			}
		case t.k == kSA:
			name, arg, _ := strings.Cut(strings.Trim(t.s, "_"), "(")
			args := []string{name}
			if strings.HasSuffix(arg, ")") {
				args = append(args, strings.TrimSuffix(arg, ")"))
			}
			for _, r := range e.value(name, false, args) {
				e.emit(r)
			}
		default:
			e.emit(t) // a stray | or ] outside any call is text
		}
	}
	return e.out.String(), nil
}

// call ends the innermost call (t is its closing token) and evaluates it.
func (e *expander) call(t token) error {
	f := e.stack[len(e.stack)-1]
	if t.k == kUnquote {
		e.emitText(`"`) // a "] closing a call stands for a quote and a bracket
	}
	if f.implied && e.quote > 0 {
		e.popQuote()
	}
	e.stack = e.stack[:len(e.stack)-1]
	res := e.eval(f)
	if f.k == kNeutral {
		for _, r := range res {
			e.emit(token{kText, r.lit()})
		}
		return nil
	}
	e.push(res)
	return nil
}

// push puts tokens in front of the input.
func (e *expander) push(ts []token) {
	for i := len(ts) - 1; i >= 0; i-- {
		e.in = append(e.in, ts[i])
	}
}

// pop takes the next input token.
func (e *expander) pop() token {
	t := e.in[len(e.in)-1]
	e.in = e.in[:len(e.in)-1]
	return t
}

func str(ts []token) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.lit())
	}
	return b.String()
}

func trim(s string) string { return strings.Trim(s, " \t\n") }

func (e *expander) eval(f *frame) []token {
	switch f.k {
	case kSel:
		sel := 0
		s := strings.TrimSpace(str(f.args[0]))
		if s != "" {
			sel = 1
			if strings.Trim(s, "0123456789") == "" {
				sel = int(^uint(0) >> 1) // beyond any alternative: the last one
				if n, err := strconv.Atoi(s); err == nil {
					sel = n
				}
			}
		}
		alts := f.args[1:]
		if len(alts) >= 2 && sel > len(alts)-1 {
			sel = len(alts) - 1
		}
		if sel < len(alts) {
			return alts[sel]
		}
		return nil
	case kRegexp:
		return e.regexpSel(f.args)
	case kIter:
		return e.iterate(f.args)
	case kDefine:
		name := trim(str(f.args[0]))
		if len(f.args) > 1 {
			e.defined[name] = f.args[1]
		} else {
			e.defined[name] = nil
		}
		return nil
	}
	// [@ and [: calls
	args := make([]string, len(f.args))
	for i, a := range f.args {
		args[i] = str(a)
	}
	args[0] = trim(args[0])
	if body, ok := e.defined[args[0]]; ok {
		return substArgs(body, f.args, args[0])
	}
	return e.value(args[0], false, args)
}

// value evaluates macro name as %x (count=false) or %#x (count=true); args[0] is the name.
func (e *expander) value(name string, count bool, args []string) []token {
	if body, ok := e.defined[name]; ok {
		res := substArgs(body, [][]token{{{kText, name}}}, name)
		if count {
			return []token{{kText, boolDigit(strings.TrimSpace(str(res)) != "")}}
		}
		return res
	}
	v := e.resolve(name, args)
	switch x := v.(type) {
	case []string:
		if count {
			return []token{{kText, strconv.Itoa(len(x))}}
		}
		return []token{{kText, strings.Join(x, ", ")}}
	case string:
		if count {
			return []token{{kText, boolDigit(strings.TrimSpace(x) != "")}}
		}
		return []token{{kText, x}}
	}
	if count {
		return []token{{kText, "0"}}
	}
	return nil
}

// resolve gives the value of a macro, calling it with args when it is a Func; unknown → nil.
func (e *expander) resolve(name string, args []string) any {
	v, ok := e.macros[name]
	if !ok {
		v, ok = builtins[name]
	}
	if !ok {
		if f, found := moreBuiltins[name]; found {
			v, ok = f, true
		}
	}
	if !ok {
		return nil
	}
	if fn, ok := v.(Func); ok {
		return fn(args...)
	}
	if fn, ok := v.(func(args ...string) any); ok {
		return fn(args...)
	}
	return v
}

// substArgs replaces the formal arguments %0..%9 of a defined macro's body.
func substArgs(body []token, actual [][]token, name string) []token {
	var out []token
	for _, t := range body {
		if t.k == kMacro && len(t.s) == 2 && t.s[1] >= '0' && t.s[1] <= '9' {
			i := int(t.s[1] - '0')
			if i == 0 {
				out = append(out, token{kText, name})
			} else if i < len(actual) {
				out = append(out, actual[i]...)
			}
			continue
		}
		out = append(out, t)
	}
	return out
}

func (e *expander) regexpSel(args [][]token) []token {
	s := str(args[0])
	rest := args[1:]
	var groups []string
	for len(rest) >= 2 {
		pat := str(rest[0])
		rest = rest[1:]
		if pat == "" {
			break
		}
		re, err := regexp2.Compile(pat, regexp2.None)
		if err == nil {
			re.MatchTimeout = 100 * time.Millisecond
			if m, err := re.FindStringMatch(s); err == nil && m != nil {
				for _, g := range m.Groups()[1:] {
					groups = append(groups, g.String())
				}
				break
			}
		}
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return nil
	}
	var out []token
	for _, t := range rest[0] {
		if t.k == kMacro && len(t.s) == 2 && t.s[1] >= '0' && t.s[1] <= '9' {
			i := int(t.s[1] - '0')
			switch {
			case i == 0:
				out = append(out, token{kText, s})
			case i <= len(groups):
				out = append(out, token{kText, groups[i-1]})
			}
			continue
		}
		out = append(out, t)
	}
	return out
}

func (e *expander) iterate(args [][]token) []token {
	var cvarArg, body, sep []token
	hasSep := false
	if len(args) >= 3 {
		cvarArg, body, sep, hasSep = args[0], args[1], args[2], true
	} else {
		body = args[0]
		cvarArg = body
		if len(args) == 2 {
			sep, hasSep = args[1], true
		}
	}
	cvar := ""
	for _, t := range cvarArg {
		if t.k == kMacro && len(t.s) == 2 {
			cvar = t.s[1:]
			break
		}
	}
	name := cvar
	if len(args) >= 3 && cvar == "" {
		name = trim(str(cvarArg))
		if name == "" {
			return nil
		}
		cvar = "x"
	}
	if name == "" {
		return nil
	}
	var vals []string
	if d, ok := e.defined[name]; ok {
		vals = []string{str(substArgs(d, nil, name))}
	} else {
		if !e.known(name) {
			return nil
		}
		switch x := e.resolve(name, []string{name}).(type) {
		case []string:
			vals = x
		case string:
			vals = []string{x}
		default:
			vals = []string{""}
		}
	}
	var out []token
	for i, val := range vals {
		if i > 0 && hasSep {
			out = append(out, sep...)
		}
		for _, t := range body {
			if t.k == kMacro && t.s == "%"+cvar {
				out = append(out, token{kText, val})
			} else {
				out = append(out, t)
			}
		}
	}
	return out
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// builtins are the string helpers every template may call (README.customize).
var builtins = map[string]any{
	"wrap": Func(func(a ...string) any {
		width := 78
		if len(a) > 1 {
			width = int(perlNum(a[1]))
		}
		hasIndent := len(a) > 3
		a = pad(a, 5)
		return WrapString(a[4], width, a[2], a[3], hasIndent)
	}),
	"lc": Func(func(a ...string) any { return strings.ToLower(strings.Join(a[1:], "")) }),
	"uc": Func(func(a ...string) any { return strings.ToUpper(strings.Join(a[1:], "")) }),
	"substr": Func(func(a ...string) any {
		a = pad(a, 4)
		off, _ := strconv.Atoi(strings.TrimSpace(a[2]))
		s := a[1]
		if off < 0 {
			off = max(len(s)+off, 0)
		}
		off = min(off, len(s))
		s = s[off:]
		if n, err := strconv.Atoi(strings.TrimSpace(a[3])); err == nil && n >= 0 && n < len(s) {
			s = s[:n]
		}
		return s
	}),
	"len":  Func(func(a ...string) any { return strconv.Itoa(len(pad(a, 2)[1])) }),
	"join": Func(func(a ...string) any { a = pad(a, 2); return strings.Join(a[2:], a[1]) }),
	"limit": Func(func(a ...string) any {
		a = pad(a, 3)
		n, _ := strconv.Atoi(strings.TrimSpace(a[1]))
		if n < 6 || len(a[2]) <= n {
			return a[2]
		}
		return a[2][:n-5] + "[...]"
	}),
	"dquote": Func(func(a ...string) any {
		var b strings.Builder
		for _, s := range a[1:] {
			b.WriteString(`"` + strings.ReplaceAll(s, `"`, `""`) + `"`)
		}
		return b.String()
	}),
	"uquote": Func(func(a ...string) any {
		var b strings.Builder
		for _, s := range a[1:] {
			b.WriteString(strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' }), "_"))
		}
		return b.String()
	}),
	"hexenc": Func(func(a ...string) any { return hex.EncodeToString([]byte(strings.Join(a[1:], ""))) }),
	"b64enc": Func(func(a ...string) any {
		var b strings.Builder
		for _, s := range a[1:] {
			b.WriteString(base64.RawStdEncoding.EncodeToString([]byte(s)))
		}
		return b.String()
	}),
	"b64urlenc": Func(func(a ...string) any {
		var b strings.Builder
		for _, s := range a[1:] {
			b.WriteString(base64.RawURLEncoding.EncodeToString([]byte(s)))
		}
		return b.String()
	}),
	"sprintf": Func(func(a ...string) any { a = pad(a, 2); return perlSprintf(a[1], a[2:]) }),
}

// perlSprintf formats string arguments by a Perl format: numeric verbs take the number the
// string holds (0 when it holds none), %s the string itself.
func perlSprintf(f string, args []string) string {
	var b strings.Builder
	next := func() string {
		if len(args) == 0 {
			return ""
		}
		a := args[0]
		args = args[1:]
		return a
	}
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			b.WriteByte(f[i])
			continue
		}
		j := i + 1
		for j < len(f) && strings.IndexByte("-+ 0#.123456789", f[j]) >= 0 {
			j++
		}
		if j == len(f) {
			b.WriteString(f[i:])
			break
		}
		spec := f[i:j]
		switch v := f[j]; v {
		case '%':
			b.WriteByte('%')
		case 'd', 'i', 'u':
			n, _ := strconv.ParseFloat(strings.TrimSpace(next()), 64)
			fmt.Fprintf(&b, spec+"d", int64(n))
		case 'x', 'X', 'o', 'b':
			n, _ := strconv.ParseFloat(strings.TrimSpace(next()), 64)
			fmt.Fprintf(&b, spec+string(v), int64(n))
		case 'f', 'F', 'e', 'E', 'g', 'G':
			n, _ := strconv.ParseFloat(strings.TrimSpace(next()), 64)
			fmt.Fprintf(&b, spec+string(v), n)
		case 's':
			fmt.Fprintf(&b, spec+"s", next())
		default:
			b.WriteString(f[i : j+1])
		}
		i = j
	}
	return b.String()
}

func pad(a []string, n int) []string {
	for len(a) < n {
		a = append(a, "")
	}
	return a
}
