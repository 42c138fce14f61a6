package perlconf

import (
	"fmt"
	"strings"
)

// node is an expression or statement of the subset of Perl that amavis configurations use
// (docs/perl-config.md lists it).
type node interface{ position() Pos }

type (
	numLit struct {
		pos  Pos
		text string
	}
	strLit struct { // '...', q(...), <<'EOD' (text filled when the here-doc body is read)
		pos Pos
		tok *token
	}
	interpStr struct { // "...", qq(...), <<"EOD", `...`
		pos      Pos
		tok      *token
		backtick bool
	}
	qwLit struct {
		pos   Pos
		words []string
	}
	qrLit struct {
		pos          Pos
		pattern, flg string
		match        bool // /pattern/: only split's first argument
	}
	varRef struct { // $x @x %x
		pos  Pos
		name string // with sigil
	}
	elemRef struct { // $h{key} (hash) or $a[i] (array); name is the container with its sigil
		pos  Pos
		name string
		key  node
	}
	refOf struct { // \$x \@x \%x \&f \(...)
		pos Pos
		x   node
	}
	codeRef struct { // \&name
		pos  Pos
		name string
	}
	listExpr struct { // (a, b, ...)
		pos   Pos
		items []node
	}
	anonArray struct {
		pos   Pos
		items []node
	}
	anonHash struct {
		pos   Pos
		items []node
	}
	binOp struct {
		pos  Pos
		op   string
		l, r node
	}
	unOp struct {
		pos Pos
		op  string
		x   node
	}
	ternary struct {
		pos           Pos
		cond, yes, no node
	}
	call struct { // a helper or builtin
		pos   Pos
		name  string
		args  []node
		paren bool
	}
	subLit struct { // sub { ... }: kept as source, never run
		pos Pos
		src string
	}
	mapExpr struct { // map { EXPR } LIST / grep
		pos  Pos
		name string
		body node
		list []node
	}
	assign struct {
		pos  Pos
		op   string // "=", ".=", "+=", "||=", ...
		l, r node
	}
	// statements
	forStmt struct { // for (LIST) { STMTS } and STMT for LIST; binds $_
		pos  Pos
		list []node
		body []node
	}
	ifStmt struct { // STMT if COND / unless
		pos    Pos
		cond   node
		negate bool
		body   []node
	}
	useStmt struct{ pos Pos }
)

func (n *numLit) position() Pos    { return n.pos }
func (n *strLit) position() Pos    { return n.pos }
func (n *interpStr) position() Pos { return n.pos }
func (n *qwLit) position() Pos     { return n.pos }
func (n *qrLit) position() Pos     { return n.pos }
func (n *varRef) position() Pos    { return n.pos }
func (n *elemRef) position() Pos   { return n.pos }
func (n *refOf) position() Pos     { return n.pos }
func (n *codeRef) position() Pos   { return n.pos }
func (n *listExpr) position() Pos  { return n.pos }
func (n *anonArray) position() Pos { return n.pos }
func (n *anonHash) position() Pos  { return n.pos }
func (n *binOp) position() Pos     { return n.pos }
func (n *unOp) position() Pos      { return n.pos }
func (n *ternary) position() Pos   { return n.pos }
func (n *call) position() Pos      { return n.pos }
func (n *subLit) position() Pos    { return n.pos }
func (n *mapExpr) position() Pos   { return n.pos }
func (n *assign) position() Pos    { return n.pos }
func (n *forStmt) position() Pos   { return n.pos }
func (n *ifStmt) position() Pos    { return n.pos }
func (n *useStmt) position() Pos   { return n.pos }

// parser is a recursive-descent parser over the lexer, with one token of look-ahead.
type parser struct {
	lx   *lexer
	tok  *token
	peek *token
}

// parse reads a whole file into statements.
func parse(file, src string) ([]node, error) {
	p := &parser{lx: newLexer(file, src)}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var stmts []node
	for p.tok.kind != tEOF {
		s, err := p.statement()
		if err != nil {
			return nil, err
		}
		if s != nil {
			stmts = append(stmts, s)
		}
	}
	return stmts, nil
}

func (p *parser) advance() error {
	if p.peek != nil {
		p.tok, p.peek = p.peek, nil
		return nil
	}
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) lookahead() (*token, error) {
	if p.peek == nil {
		t, err := p.lx.next()
		if err != nil {
			return nil, err
		}
		p.peek = t
	}
	return p.peek, nil
}

func (p *parser) is(op string) bool { return p.tok.kind == tOp && p.tok.text == op }
func (p *parser) isWord(w string) bool {
	return p.tok.kind == tIdent && p.tok.text == w
}

func (p *parser) expect(op string) error {
	if !p.is(op) {
		return p.unexpected("expected " + quoteOp(op))
	}
	return p.advance()
}

func quoteOp(op string) string { return "'" + op + "'" }

// expectClose is expect for a closing bracket; the error says where the bracket was opened,
// which is where a forgotten one is to be found.
func (p *parser) expectClose(cl string, open Pos) error {
	if !p.is(cl) {
		return p.unexpected(fmt.Sprintf("expected %s to close the one at %d:%d", quoteOp(cl), open.Line, open.Col))
	}
	return p.advance()
}

func (p *parser) errf(pos Pos, format string, args ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) unexpected(what string) error {
	t := p.tok
	switch t.kind {
	case tEOF:
		return p.errf(t.pos, "syntax error: %s, found the end of the file", what)
	case tIdent, tOp, tVar, tNum:
		return p.errf(t.pos, "syntax error: %s, found %q", what, t.text)
	}
	return p.errf(t.pos, "syntax error: %s", what)
}

// unsupported names a construct outside the subset and what to write instead.
func (p *parser) unsupported(pos Pos, construct, instead string) error {
	return p.errf(pos, "unsupported Perl: %s; %s (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)", construct, instead)
}

// statement parses one statement, with its statement modifier and ';'.
func (p *parser) statement() (node, error) {
	t := p.tok
	if p.is(";") {
		return nil, p.advance()
	}
	if t.kind == tIdent {
		switch t.text {
		case "use", "no":
			return p.use()
		case "sub":
			nt, err := p.lookahead()
			if err != nil {
				return nil, err
			}
			if nt.kind == tIdent {
				return nil, p.unsupported(t.pos, "named subroutine definition 'sub "+nt.text+"'", "a configuration cannot define functions; set the variables directly")
			}
		case "my", "our", "local", "state":
			return nil, p.unsupported(t.pos, "'"+t.text+"' variable declaration", "assign to amavis's own variables (a temporary variable can be replaced by repeating its value)")
		case "package":
			return nil, p.unsupported(t.pos, "'package'", "configuration files run in amavis's own package; remove the package statement and the code that needs it")
		case "eval":
			return nil, p.unsupported(t.pos, "'eval'", "write the settings without eval")
		case "require":
			// require 'FILE' reads another configuration file once; a module name is refused
			nt, err := p.lookahead()
			if err != nil {
				return nil, err
			}
			if nt.kind != tStr && nt.kind != tIStr {
				return nil, p.unsupported(t.pos, "'require' of a module", "only require 'FILE' of a configuration file is read; modules cannot be loaded")
			}
		case "do":
			return nil, p.unsupported(t.pos, "'do' of a file or block", "use include_config_files('FILE') for another configuration file")
		case "if", "unless", "while", "until":
			return nil, p.unsupported(t.pos, "'"+t.text+"' block", "write the settings unconditionally, or use a statement modifier on a simple assignment")
		case "BEGIN", "END":
			return nil, p.unsupported(t.pos, t.text+" block", "write the settings at top level")
		case "for", "foreach":
			return p.forBlock()
		}
	}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	s := e
	if p.tok.kind == tIdent {
		switch p.tok.text {
		case "if", "unless":
			pos, neg := p.tok.pos, p.tok.text == "unless"
			if err := p.advance(); err != nil {
				return nil, err
			}
			c, err := p.expr()
			if err != nil {
				return nil, err
			}
			s = &ifStmt{pos: pos, cond: c, negate: neg, body: []node{e}}
		case "for", "foreach":
			pos := p.tok.pos
			if err := p.advance(); err != nil {
				return nil, err
			}
			l, err := p.expr()
			if err != nil {
				return nil, err
			}
			s = &forStmt{pos: pos, list: []node{l}, body: []node{e}}
		}
	}
	if p.tok.kind == tEOF || p.is("}") {
		return s, nil // Perl allows the last statement of a block or file without ';'
	}
	if !p.is(";") {
		return nil, p.unexpected("expected ';' after the statement")
	}
	return s, p.advance()
}

// use accepts the pragmas real files carry (strict, warnings, vars, utf8); any other module
// is outside the subset.
func (p *parser) use() (node, error) {
	pos := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tIdent && p.tok.kind != tNum {
		return nil, p.unexpected("expected a module name after use")
	}
	mod := p.tok.text
	switch mod {
	case "strict", "warnings", "vars", "utf8", "integer", "bytes":
	default:
		if p.tok.kind != tNum {
			return nil, p.unsupported(pos, "'use "+mod+"'", "only use strict, use warnings and use vars are accepted; the helpers of Amavis::Conf need no module")
		}
	}
	for !p.is(";") {
		if p.tok.kind == tEOF {
			return nil, p.unexpected("expected ';'")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	return &useStmt{pos: pos}, p.advance()
}

// forBlock parses for (LIST) { STATEMENTS }, whose loop variable is $_.
func (p *parser) forBlock() (node, error) {
	pos := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tVar || p.isWord("my") {
		return nil, p.unsupported(pos, "a named loop variable", "write 'for (LIST) { ... $_ ... }'")
	}
	if !p.is("(") {
		return nil, p.unexpected("expected '(' after for")
	}
	l, err := p.primary()
	if err != nil {
		return nil, err
	}
	if !p.is("{") {
		return nil, p.unexpected("expected '{' after for (...)")
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var body []node
	for !p.is("}") {
		if p.tok.kind == tEOF {
			return nil, p.errf(pos, "syntax error: the block of this for has no closing '}'")
		}
		s, err := p.statement()
		if err != nil {
			return nil, err
		}
		if s != nil {
			body = append(body, s)
		}
	}
	return &forStmt{pos: pos, list: []node{l}, body: body}, p.advance()
}

// expr parses a comma list (the lowest precedence above statement modifiers).
func (p *parser) expr() (node, error) {
	first, err := p.assignment()
	if err != nil {
		return nil, err
	}
	if !p.is(",") && !p.is("=>") {
		return first, nil
	}
	items := []node{first}
	for p.is(",") || p.is("=>") {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.endOfList() {
			break
		}
		e, err := p.assignment()
		if err != nil {
			return nil, err
		}
		items = append(items, e)
	}
	return &listExpr{pos: first.position(), items: items}, nil
}

func (p *parser) endOfList() bool {
	return p.tok.kind == tEOF || p.is(")") || p.is("]") || p.is("}") || p.is(";") ||
		p.tok.kind == tIdent && (p.tok.text == "if" || p.tok.text == "unless" || p.tok.text == "for" || p.tok.text == "foreach")
}

var assignOps = map[string]bool{"=": true, ".=": true, "+=": true, "-=": true, "*=": true, "/=": true, "||=": true, "//=": true, "&&=": true, "x=": true, "**=": true}

func (p *parser) assignment() (node, error) {
	l, err := p.ternary()
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tOp && assignOps[p.tok.text] {
		op, pos := p.tok.text, l.position() // errors and warnings point at the assigned variable
		switch l := l.(type) {
		case *varRef, *elemRef, *listExpr:
		case *call:
			return nil, p.errf(pos, "syntax error: cannot assign to %s(...)", l.name)
		default:
			return nil, p.errf(pos, "syntax error: the left side of %s is not a variable", op)
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.assignment()
		if err != nil {
			return nil, err
		}
		return &assign{pos: pos, op: op, l: l, r: r}, nil
	}
	return l, nil
}

func (p *parser) ternary() (node, error) {
	c, err := p.binary(0)
	if err != nil {
		return nil, err
	}
	if !p.is("?") {
		return c, nil
	}
	pos := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	y, err := p.assignment()
	if err != nil {
		return nil, err
	}
	if err := p.expect(":"); err != nil {
		return nil, err
	}
	n, err := p.assignment()
	if err != nil {
		return nil, err
	}
	return &ternary{pos: pos, cond: c, yes: y, no: n}, nil
}

// binary operators by Perl's precedence, loosest first
var precedence = [][]string{
	{"or", "xor"}, {"and"}, {"not"}, // word forms are handled as identifiers below
	{"..", "..."},
	{"||", "//"},
	{"&&"},
	{"|", "^"},
	{"&"},
	{"==", "!=", "<=>", "eq", "ne", "cmp"},
	{"<", ">", "<=", ">=", "lt", "gt", "le", "ge"},
	{"<<", ">>"},
	{"+", "-", "."},
	{"*", "/", "%", "x"},
	{"=~", "!~"},
}

func (p *parser) binOpAt(level int) (string, bool) {
	for _, op := range precedence[level] {
		if (p.tok.kind == tOp || p.tok.kind == tIdent) && p.tok.text == op {
			return op, true
		}
	}
	return "", false
}

func (p *parser) binary(level int) (node, error) {
	if level == len(precedence) {
		return p.unary()
	}
	if level == 2 { // 'not' is a prefix at this level
		return p.binary(level + 1)
	}
	l, err := p.binary(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.binOpAt(level)
		if !ok {
			return l, nil
		}
		pos := p.tok.pos
		if op == "=~" || op == "!~" {
			return nil, p.unsupported(pos, "pattern match "+op, "write the value directly")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.binary(level + 1)
		if err != nil {
			return nil, err
		}
		if op == ".." || op == "..." {
			return &binOp{pos: pos, op: "..", l: l, r: r}, nil
		}
		l = &binOp{pos: pos, op: op, l: l, r: r}
	}
}

func (p *parser) unary() (node, error) {
	t := p.tok
	if t.kind == tOp {
		switch t.text {
		case "-", "+", "!", "~":
			if err := p.advance(); err != nil {
				return nil, err
			}
			x, err := p.unary()
			if err != nil {
				return nil, err
			}
			if t.text == "-" {
				if id, ok := x.(*call); ok && !id.paren && len(id.args) == 0 && !isConstName(id.name) {
					return &strLit{pos: t.pos, tok: &token{text: "-" + id.name}}, nil // -bareword is "-bareword"
				}
				if id, ok := x.(*call); ok && !id.paren && len(id.args) == 1 && strings.Contains("efdrs", id.name) && len(id.name) == 1 {
					// a file test: -e 'FILE' (ClearOS: require 'f' if -e 'f')
					return &call{pos: t.pos, name: "-" + id.name, args: id.args}, nil
				}
			}
			return &unOp{pos: t.pos, op: t.text, x: x}, nil
		case "\\":
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.tok.kind == tVar && p.tok.text[0] == '&' {
				n := &codeRef{pos: t.pos, name: p.tok.text[1:]}
				if err := p.advance(); err != nil {
					return nil, err
				}
				return n, nil
			}
			x, err := p.unary()
			if err != nil {
				return nil, err
			}
			return &refOf{pos: t.pos, x: x}, nil
		case "++", "--":
			return nil, p.unsupported(t.pos, "'"+t.text+"'", "write the value directly")
		}
	}
	if t.kind == tIdent && t.text == "not" {
		if err := p.advance(); err != nil {
			return nil, err
		}
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &unOp{pos: t.pos, op: "!", x: x}, nil
	}
	x, err := p.postfix()
	if err != nil {
		return nil, err
	}
	if p.is("**") {
		pos := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &binOp{pos: pos, op: "**", l: x, r: r}, nil
	}
	return x, nil
}

func (p *parser) postfix() (node, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	if p.is("->") {
		return nil, p.unsupported(p.tok.pos, "'->' (method call or dereference)", "write the value directly, or name the element as $hash{key}")
	}
	if p.is("++") || p.is("--") {
		return nil, p.unsupported(p.tok.pos, "'"+p.tok.text+"'", "write the value directly")
	}
	if e, ok := x.(*elemRef); ok && (p.is("{") || p.is("[")) && !p.tok.spaceBefore {
		return nil, p.unsupported(p.tok.pos, "nested element "+e.name[1:]+"{...}{...}", "assign the whole inner hash, e.g. $policy_bank{'NAME'} = { key => value }")
	}
	return x, nil
}

// key parses the subscript of $h{...}: a lone bareword (optionally -word) is a string.
func (p *parser) key() (node, error) {
	if p.tok.kind == tIdent {
		nt, err := p.lookahead()
		if err != nil {
			return nil, err
		}
		if nt.kind == tOp && nt.text == "}" {
			n := &strLit{pos: p.tok.pos, tok: &token{text: p.tok.text}}
			return n, p.advance()
		}
	}
	return p.expr()
}

func (p *parser) primary() (node, error) {
	t := p.tok
	switch t.kind {
	case tNum:
		return &numLit{pos: t.pos, text: t.text}, p.advance()
	case tStr:
		return &strLit{pos: t.pos, tok: t}, p.advance()
	case tIStr:
		return &interpStr{pos: t.pos, tok: t}, p.advance()
	case tBacktick:
		return &interpStr{pos: t.pos, tok: t, backtick: true}, p.advance()
	case tQW:
		return &qwLit{pos: t.pos, words: t.words}, p.advance()
	case tQR:
		return &qrLit{pos: t.pos, pattern: t.text, flg: t.flags, match: t.match}, p.advance()
	case tVar:
		return p.variable()
	case tIdent:
		return p.bareword()
	case tOp:
		switch t.text {
		case "(":
			if err := p.advance(); err != nil {
				return nil, err
			}
			if p.is(")") {
				return &listExpr{pos: t.pos}, p.advance()
			}
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectClose(")", t.pos); err != nil {
				return nil, err
			}
			if l, ok := e.(*listExpr); ok {
				return l, nil
			}
			if p.is("[") {
				return nil, p.unsupported(p.tok.pos, "list slice (...)[...]", "write the element directly")
			}
			return &listExpr{pos: t.pos, items: []node{e}}, nil
		case "[":
			items, err := p.items("]")
			return &anonArray{pos: t.pos, items: items}, err
		case "{":
			items, err := p.items("}")
			return &anonHash{pos: t.pos, items: items}, err
		case "<":
			return nil, p.unsupported(t.pos, "reading a file handle <...>", "use read_text('FILE') or read_array('FILE')")
		}
	}
	return nil, p.unexpected("expected a value")
}

// items parses the elements of [...] or {...} up to the closer.
func (p *parser) items(closer string) ([]node, error) {
	open := p.tok.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.is(closer) {
		return nil, p.advance()
	}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if err := p.expectClose(closer, open); err != nil {
		return nil, err
	}
	if l, ok := e.(*listExpr); ok {
		return l.items, nil
	}
	return []node{e}, nil
}

func (p *parser) variable() (node, error) {
	t := p.tok
	name := t.text
	if strings.Contains(name, "::") {
		return nil, p.unsupported(t.pos, "package variable "+name, "use amavis's own variable without a package name")
	}
	if name[0] == '&' && isConstName(name[1:]) {
		// &CC_UNCHECKED calls the constant (iRedMail writes it as a hash key)
		return &call{pos: t.pos, name: name[1:]}, p.advance()
	}
	if name[0] == '&' {
		return nil, p.unsupported(t.pos, "call through "+name, "call the helper by name, or take a code reference with \\"+name)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if name[0] == '$' && (p.is("{") || p.is("[")) && !p.tok.spaceBefore {
		open := p.tok.text
		pos := t.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		var k node
		var err error
		if open == "{" {
			k, err = p.key()
		} else {
			k, err = p.expr()
		}
		if err != nil {
			return nil, err
		}
		cl := "}"
		cont := "%" + name[1:]
		if open == "[" {
			cl, cont = "]", "@"+name[1:]
		}
		if err := p.expect(cl); err != nil {
			return nil, err
		}
		return &elemRef{pos: pos, name: cont, key: k}, nil
	}
	if name[0] == '@' && (p.is("{") || p.is("[")) && !p.tok.spaceBefore {
		return nil, p.unsupported(p.tok.pos, "slice "+name+p.tok.text+"...", "assign the elements one by one")
	}
	return &varRef{pos: t.pos, name: name}, nil
}

// listOps are the named operators and helpers that take a list without parentheses.
func (p *parser) bareword() (node, error) {
	t := p.tok
	name := t.text
	if strings.Contains(name, "::") {
		return nil, p.unsupported(t.pos, "call of "+name, "modules other than amavis's configuration helpers cannot be called; write the value directly")
	}
	nt, err := p.lookahead()
	if err != nil {
		return nil, err
	}
	if nt.kind == tOp && nt.text == "=>" {
		// a bareword before => is a string
		return &strLit{pos: t.pos, tok: &token{text: name}}, p.advance()
	}
	switch name {
	case "sub":
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.is("{") {
			return nil, p.unexpected("expected '{' after sub")
		}
		start := p.lx.off // the lexer is past '{'
		depth := 1
		for depth > 0 {
			if err := p.advance(); err != nil {
				return nil, err
			}
			switch {
			case p.tok.kind == tEOF:
				return nil, p.errf(t.pos, "syntax error: sub { has no closing '}'")
			case p.is("{"):
				depth++
			case p.is("}"):
				depth--
			}
		}
		src := strings.TrimSpace(p.lx.src[start : p.lx.off-1])
		return &subLit{pos: t.pos, src: src}, p.advance()
	case "map", "grep":
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.is("{") {
			return nil, p.unsupported(p.tok.pos, name+" EXPR, LIST", "write "+name+" { EXPR } LIST")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		body, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expect("}"); err != nil {
			return nil, err
		}
		if p.is(",") {
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		l, err := p.expr()
		if err != nil {
			return nil, err
		}
		return &mapExpr{pos: t.pos, name: name, body: body, list: []node{l}}, nil
	case "undef", "__FILE__", "__LINE__", "wantarray", "time":
		c := &call{pos: t.pos, name: name}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if name == "undef" && p.is("(") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if !p.is(")") {
				return nil, p.unsupported(t.pos, "undef(VARIABLE)", "assign undef to the variable")
			}
			c.paren = true
			return c, p.advance()
		}
		return c, nil
	}
	if isConstName(name) {
		c := &call{pos: t.pos, name: name}
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.is("(") && !p.tok.spaceBefore {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	c := &call{pos: t.pos, name: name}
	if p.is("(") {
		c.paren = true
		open := p.tok.pos
		if err := p.advance(); err != nil {
			return nil, err
		}
		if !p.is(")") {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if l, ok := e.(*listExpr); ok {
				c.args = l.items
			} else {
				c.args = []node{e}
			}
		}
		return c, p.expectClose(")", open)
	}
	if unaryNamed[name] {
		if p.endOfList() || p.is(",") || p.is("=>") || p.tok.kind == tOp && !startsTerm(p.tok) {
			return c, nil
		}
		a, err := p.binary(len(precedence) - 3) // binds tighter than comparison, as Perl's named unary operators
		if err != nil {
			return nil, err
		}
		c.args = []node{a}
		return c, nil
	}
	if p.endOfList() || p.is(",") || p.is("=>") || p.tok.kind == tOp && !startsTerm(p.tok) {
		return c, nil // a bareword alone: a call without arguments (or a string, decided later)
	}
	e, err := p.expr()
	if err != nil {
		return nil, err
	}
	if l, ok := e.(*listExpr); ok {
		c.args = l.items
	} else {
		c.args = []node{e}
	}
	return c, nil
}

// unaryNamed are Perl's named unary operators: they take one argument without parentheses.
var unaryNamed = map[string]bool{"require": true, "e": true, "f": true, "d": true, "r": true, "s": true, "lc": true, "uc": true, "lcfirst": true, "ucfirst": true, "defined": true, "length": true, "chomp": true, "chop": true, "exists": true, "delete": true, "scalar": true, "int": true, "abs": true, "hex": true, "oct": true}

func startsTerm(t *token) bool {
	switch t.text {
	case "(", "[", "{", "\\", "-", "+", "!", "<<":
		return true
	}
	return false
}

func isConstName(name string) bool {
	_, ok := constants[name]
	return ok
}
