package perlconf

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"amavisgo/internal/privdrop"
)

// constants are amavis's D_* and CC_* (Amavis::Conf); a minor category is a string: CC_BADH.",3".
var constants = map[string]float64{
	"D_TEMPFAIL": -4, "D_REJECT": -3, "D_BOUNCE": -2, "D_DISCARD": 0, "D_PASS": 1,
	"CC_CATCHALL": 0, "CC_CLEAN": 1, "CC_MTA": 2, "CC_OVERSIZED": 3, "CC_BADH": 4, "CC_SPAMMY": 5,
	"CC_SPAM": 6, "CC_UNCHECKED": 7, "CC_BANNED": 8, "CC_VIRUS": 9,
}

// codeNames are the functions a configuration may take a reference to (\&name): the scanner
// interfaces of Amavis::AV and the decoders of Amavis::Unpackers that Amavis::Conf aliases.
var codeNames = map[string]bool{
	"ask_daemon": true, "ask_clamav": true, "ask_av": true, "sophos_savi": true,
	"do_mime_decode": true, "do_ascii": true, "do_uncompress": true, "do_gunzip": true,
	"do_pax_cpio": true, "do_tar": true, "do_ar": true, "do_unzip": true, "do_unrar": true,
	"do_7zip": true, "do_unarj": true, "do_arc": true, "do_zoo": true,
	"do_doc": true, "do_lha": true, "do_ole": true, "do_cabextract": true, "do_tnef": true,
	"do_tnef_ext": true, "do_unstuff": true, "do_executable": true,
}

// BacktickTimeout bounds a command run by backticks.
var BacktickTimeout = 5 * time.Second

// maxIncludeDepth is amavis's limit on nested include_config_files.
const maxIncludeDepth = 100

// Bounds on what a configuration may build, so that a broken or hostile file fails instead of
// exhausting memory or time: real files stay far below them.
const (
	maxListLen = 1 << 16  // elements of one list (a long list of domains belongs in read_array's file)
	maxStrLen  = 16 << 20 // bytes of one string
	maxSteps   = 2000000  // expressions evaluated in one load
)

// Interp evaluates configuration files over amavis's variables.
type Interp struct {
	scalars map[string]*Scalar
	arrays  map[string]*Array
	hashes  map[string]*Hash

	// written records where each variable (with its sigil) was last assigned; bankPos where
	// each policy bank was.
	written map[string]Pos
	first   map[string]Pos
	bankPos map[string]Pos
	// Files are the configuration files read, includes too, in order.
	Files []string
	// Commands logs each backtick command run, with its position.
	Commands []string
	// Warnings are the settings read but not used, once each, FILE:LINE:COL first.
	Warnings  []string
	warned    map[string]bool
	depth     int
	dkimCalls []dkimKeyCall
	// source numbers the file being read (Load's position in its list); writtenIn records it
	// per variable, so that a TOML file later in the list overrides only what came before it.
	source    int
	writtenIn map[string]int
	// writtenSeq orders the assignments of all files: the last one of a value's variables
	// names where the value was set.
	writtenSeq map[string]int
	seq        int
	allow      bool // Options.AllowUnimplemented, while the values are converted
	// sealed refuses everything that reaches outside the interpreter (commands, files), for
	// fuzzing arbitrary input.
	sealed   bool
	steps    int
	required map[string]bool // files read by require, which reads a file once
}

// step counts one evaluated expression against maxSteps.
func (in *Interp) step(p Pos) error {
	in.steps++
	if in.steps > maxSteps {
		return errAt(p, "the configuration takes too long to evaluate (more than %d steps)", maxSteps)
	}
	return nil
}

// outside is the error of a sealed interpreter asked to run a command or read a file.
func (in *Interp) outside(p Pos, what string) error {
	if in.sealed {
		return errAt(p, "%s: not allowed here", what)
	}
	return nil
}

// NewInterp returns an interpreter whose variables hold amavis's built-in defaults.
func NewInterp() *Interp {
	in := &Interp{
		scalars: map[string]*Scalar{}, arrays: map[string]*Array{}, hashes: map[string]*Hash{},
		written: map[string]Pos{}, first: map[string]Pos{}, bankPos: map[string]Pos{},
	}
	for name := range declared {
		in.cell(name)
	}
	// typeglob aliases of Amavis::Conf: both names are one variable
	in.hashes["final_destiny_by_ccat"] = in.hashes["final_destiny_maps_by_ccat"]
	in.hashes["defang_by_ccat"] = in.hashes["defang_maps_by_ccat"]
	in.scalars["sql_partition_tag"] = in.scalars["partition_tag"]
	in.scalars["DO_SYSLOG"] = in.scalars["do_syslog"]
	in.scalars["LOGFILE"] = in.scalars["logfile"]
	env := newHash()
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env.Set(k, str(v))
	}
	in.hashes["ENV"] = env
	in.scalars["_"] = &Scalar{}
	setDefaults(in)
	return in
}

// cell makes sure the variable exists (name with sigil).
func (in *Interp) cell(name string) {
	switch name[0] {
	case '$':
		if in.scalars[name[1:]] == nil {
			in.scalars[name[1:]] = &Scalar{}
		}
	case '@':
		if in.arrays[name[1:]] == nil {
			in.arrays[name[1:]] = &Array{}
		}
	case '%':
		if in.hashes[name[1:]] == nil {
			in.hashes[name[1:]] = newHash()
		}
	}
}

// Scalar returns the value of $name.
func (in *Interp) Scalar(name string) Value {
	if s := in.scalars[name]; s != nil {
		return s.V
	}
	return undef()
}

// Array returns @name.
func (in *Interp) Array(name string) []Value {
	if a := in.arrays[name]; a != nil {
		return a.E
	}
	return nil
}

func (in *Interp) markWritten(name string, p Pos) {
	name = canonical(name)
	if retired[name] {
		in.warn(p, fmt.Sprintf("Variable %s was retired, changing its value has no effect", name))
	}
	in.written[name] = p
	if in.writtenIn == nil {
		in.writtenIn = map[string]int{}
	}
	in.writtenIn[name] = in.source
	in.seq++
	if in.writtenSeq == nil {
		in.writtenSeq = map[string]int{}
	}
	in.writtenSeq[name] = in.seq
	if _, ok := in.first[name]; !ok {
		in.first[name] = p
	}
}

// known reports whether a variable may be named under use strict.
func known(name string) bool {
	if _, ok := declared[name]; ok {
		return true
	}
	switch name {
	case "%ENV", "$ENV", "$_", "@_", "@ARGV", "$0":
		return true
	}
	return false
}

func errAt(p Pos, format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// undeclared is use strict's error, with the closest amavis variable as a suggestion.
func undeclared(p Pos, name string) error {
	msg := fmt.Sprintf("Global symbol %q requires explicit package name: %s is not one of amavis's variables", name, name)
	if s := suggest(name); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return errAt(p, "%s", msg)
}

func suggest(name string) string {
	best, bestD := "", 4
	for n := range declared {
		if len(name) > 4 && strings.HasPrefix(n, name) && (best == "" || len(n) < len(best) || bestD > 0) {
			best, bestD = n, 0 // a name cut short: %dkim_signing_keys for %dkim_signing_keys_by_domain
			continue
		}
		if d := editDistance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if d := len(a) - len(b); d > 4 || d < -4 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// RunFile evaluates one configuration file, as amavis's read_config_file does with do FILE.
func (in *Interp) RunFile(file string) error {
	if err := in.outside(Pos{File: file}, "reading a file"); err != nil {
		return err
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return &Error{Pos: Pos{File: file}, Msg: "Error reading config file: " + err.Error()}
	}
	return in.Run(file, string(text))
}

// Run evaluates text as the configuration file named file.
func (in *Interp) Run(file, text string) error {
	if in.depth >= maxIncludeDepth {
		return &Error{Pos: Pos{File: file}, Msg: fmt.Sprintf("config files nested too deeply (%d)", maxIncludeDepth)}
	}
	in.depth++
	defer func() { in.depth-- }()
	in.Files = append(in.Files, file)
	stmts, err := parse(file, text)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if err := in.exec(s); err != nil {
			return err
		}
	}
	return nil
}

func (in *Interp) exec(s node) error {
	switch s := s.(type) {
	case *useStmt:
		return nil
	case *ifStmt:
		c, err := in.scalar(s.cond)
		if err != nil {
			return err
		}
		if c.Truth() != s.negate {
			for _, b := range s.body {
				if err := in.exec(b); err != nil {
					return err
				}
			}
		}
		return nil
	case *forStmt:
		items, err := in.list(s.list...)
		if err != nil {
			return err
		}
		u := in.scalars["_"]
		saved := u.V
		defer func() { u.V = saved }()
		for _, it := range items {
			u.V = it
			for _, b := range s.body {
				if err := in.exec(b); err != nil {
					return err
				}
			}
		}
		return nil
	}
	switch n := s.(type) {
	case *strLit, *interpStr:
		if b, ok := n.(*interpStr); !ok || !b.backtick {
			// Hermes's stray ' ORDER BY ...'; after a ';' too many: the text is lost
			in.warn(s.position(), "a string on its own is not used (a ';' too many before it?)")
		}
	}
	_, err := in.list(s)
	return err
}

// list evaluates nodes in list context.
func (in *Interp) list(ns ...node) ([]Value, error) {
	var out []Value
	for _, n := range ns {
		vs, err := in.listOne(n)
		if err != nil {
			return nil, err
		}
		if len(out)+len(vs) > maxListLen {
			return nil, errAt(n.position(), "list longer than %d elements", maxListLen)
		}
		out = append(out, vs...)
	}
	return out, nil
}

func (in *Interp) listOne(n node) ([]Value, error) {
	if err := in.step(n.position()); err != nil {
		return nil, err
	}
	switch n := n.(type) {
	case *listExpr:
		return in.list(n.items...)
	case *qwLit:
		out := make([]Value, len(n.words))
		for i, w := range n.words {
			out[i] = str(w)
		}
		return out, nil
	case *varRef:
		switch n.name[0] {
		case '@':
			a, err := in.array(n)
			if err != nil {
				return nil, err
			}
			return append([]Value(nil), a.E...), nil
		case '%':
			h, err := in.hash(n)
			if err != nil {
				return nil, err
			}
			var out []Value
			for _, k := range h.Keys {
				out = append(out, str(k), h.M[k])
			}
			return out, nil
		}
	case *binOp:
		if n.op == ".." {
			l, err := in.scalar(n.l)
			if err != nil {
				return nil, err
			}
			r, err := in.scalar(n.r)
			if err != nil {
				return nil, err
			}
			lo, hi := int64(l.Number()), int64(r.Number())
			if hi-lo >= maxListLen {
				return nil, errAt(n.pos, "range %d..%d is too large", lo, hi)
			}
			if hi > lo {
				in.steps += int(hi - lo) // each element is work, as an expression is
				if err := in.step(n.pos); err != nil {
					return nil, err
				}
			}
			var out []Value
			for i := lo; i <= hi; i++ {
				out = append(out, num(float64(i)))
			}
			return out, nil
		}
	case *assign:
		if v, ok := n.l.(*varRef); ok && v.name[0] != '$' {
			if err := in.assign(n); err != nil {
				return nil, err
			}
			return in.listOne(v)
		}
	case *call:
		return in.call(n, true)
	case *mapExpr:
		return in.mapList(n)
	case *ternary:
		c, err := in.scalar(n.cond)
		if err != nil {
			return nil, err
		}
		if c.Truth() {
			return in.listOne(n.yes)
		}
		return in.listOne(n.no)
	}
	v, err := in.scalar(n)
	if err != nil {
		return nil, err
	}
	return []Value{v}, nil
}

func (in *Interp) array(n *varRef) (*Array, error) {
	if !known(n.name) {
		return nil, undeclared(n.pos, n.name)
	}
	in.cell(n.name)
	return in.arrays[n.name[1:]], nil
}

func (in *Interp) hash(n *varRef) (*Hash, error) {
	if !known(n.name) {
		return nil, undeclared(n.pos, n.name)
	}
	in.cell(n.name)
	return in.hashes[n.name[1:]], nil
}

func (in *Interp) scalarCell(n *varRef) (*Scalar, error) {
	if !known(n.name) {
		return nil, undeclared(n.pos, n.name)
	}
	in.cell(n.name)
	return in.scalars[n.name[1:]], nil
}

// scalar evaluates n in scalar context.
func (in *Interp) scalar(n node) (Value, error) {
	if err := in.step(n.position()); err != nil {
		return undef(), err
	}
	switch n := n.(type) {
	case *valueNode:
		return n.v, nil
	case *numLit:
		return parseNumLit(n)
	case *strLit:
		return str(n.tok.text), nil
	case *interpStr:
		s, err := in.interpolate(n.tok.parts, n.pos)
		if err != nil {
			return undef(), err
		}
		if n.backtick {
			return in.backtick(s, n.pos)
		}
		return str(s), nil
	case *qwLit:
		if len(n.words) == 0 {
			return undef(), nil
		}
		return str(n.words[len(n.words)-1]), nil
	case *qrLit:
		if n.match {
			return undef(), errAt(n.pos, "unsupported Perl: pattern match /.../; write the value directly, or a qr'...' pattern")
		}
		flags := n.flg
		// Perl reports a leading (?x) group's modifiers as the regexp's own (re::regexp_pattern)
		if m := leadingFlags.FindStringSubmatch(n.pattern); m != nil {
			flags += m[1]
		}
		return Value{Kind: Regexp, S: n.pattern, Flags: normFlags(flags), Pos: n.pos}, nil
	case *varRef:
		switch n.name[0] {
		case '$':
			c, err := in.scalarCell(n)
			if err != nil {
				return undef(), err
			}
			return c.V, nil
		case '@':
			a, err := in.array(n)
			if err != nil {
				return undef(), err
			}
			return num(float64(len(a.E))), nil
		default:
			h, err := in.hash(n)
			if err != nil {
				return undef(), err
			}
			return num(float64(len(h.Keys))), nil
		}
	case *elemRef:
		return in.elem(n)
	case *refOf:
		return in.ref(n)
	case *codeRef:
		if !codeNames[n.name] {
			return undef(), errAt(n.pos, "unknown function \\&%s: a configuration may refer to amavis's scanner and decoder functions only (ask_daemon, ask_clamav, do_*)", n.name)
		}
		return Value{Kind: CodeRef, S: n.name, Pos: n.pos}, nil
	case *subLit:
		return Value{Kind: CodeRef, S: n.src, Flags: "sub", Pos: n.pos}, nil
	case *listExpr:
		// the comma operator in scalar context: the last value
		var last Value
		for _, it := range n.items {
			v, err := in.scalar(it)
			if err != nil {
				return undef(), err
			}
			last = v
		}
		return last, nil
	case *anonArray:
		vs, err := in.list(n.items...)
		if err != nil {
			return undef(), err
		}
		return Value{Kind: ArrayRef, A: &Array{E: vs}}, nil
	case *anonHash:
		vs, err := in.list(n.items...)
		if err != nil {
			return undef(), err
		}
		return Value{Kind: HashRef, H: pairs(vs)}, nil
	case *binOp:
		return in.binop(n)
	case *unOp:
		x, err := in.scalar(n.x)
		if err != nil {
			return undef(), err
		}
		switch n.op {
		case "-":
			if x.Kind == Str && x.S != "" && isIdentStart(x.S[0]) {
				return str("-" + x.S), nil
			}
			return num(-x.Number()), nil
		case "+":
			return x, nil
		case "!":
			return boolv(!x.Truth()), nil
		}
		return num(float64(^int64(x.Number()))), nil
	case *ternary:
		c, err := in.scalar(n.cond)
		if err != nil {
			return undef(), err
		}
		if c.Truth() {
			return in.scalar(n.yes)
		}
		return in.scalar(n.no)
	case *call:
		vs, err := in.call(n, false)
		if err != nil || len(vs) == 0 {
			return undef(), err
		}
		return vs[len(vs)-1], nil
	case *mapExpr:
		vs, err := in.mapList(n)
		return num(float64(len(vs))), err
	case *assign:
		if err := in.assign(n); err != nil {
			return undef(), err
		}
		return in.scalar(n.l)
	}
	return undef(), errAt(n.position(), "unsupported Perl expression")
}

var leadingFlags = regexp.MustCompile(`^\(\?([imsx]+)\)`)

func normFlags(f string) string {
	var out []byte
	for _, c := range "msixpn" {
		if strings.ContainsRune(f, c) {
			out = append(out, byte(c))
		}
	}
	return string(out)
}

func parseNumLit(n *numLit) (Value, error) {
	t := strings.ReplaceAll(n.text, "_", "")
	if strings.HasPrefix(t, "0x") || strings.HasPrefix(t, "0X") {
		i, err := strconv.ParseInt(t[2:], 16, 64)
		if err != nil {
			return undef(), errAt(n.pos, "bad number %q", n.text)
		}
		return num(float64(i)), nil
	}
	if len(t) > 1 && t[0] == '0' && !strings.ContainsAny(t, ".eE") {
		i, err := strconv.ParseInt(t[1:], 8, 64)
		if err != nil {
			return undef(), errAt(n.pos, "bad octal number %q", n.text)
		}
		return num(float64(i)), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil {
		return undef(), errAt(n.pos, "bad number %q", n.text)
	}
	return num(f), nil
}

// pairs builds a hash from a flat key, value list.
func pairs(vs []Value) *Hash {
	h := newHash()
	for i := 0; i < len(vs); i += 2 {
		v := undef()
		if i+1 < len(vs) {
			v = vs[i+1]
		}
		h.Set(vs[i].String(), v)
	}
	return h
}

func (in *Interp) elem(n *elemRef) (Value, error) {
	k, err := in.scalar(n.key)
	if err != nil {
		return undef(), err
	}
	vr := &varRef{pos: n.pos, name: n.name}
	if n.name[0] == '%' {
		h, err := in.hash(vr)
		if err != nil {
			return undef(), err
		}
		return h.M[k.String()], nil
	}
	a, err := in.array(vr)
	if err != nil {
		return undef(), err
	}
	i := int(k.Number())
	if i < 0 {
		i += len(a.E)
	}
	if i < 0 || i >= len(a.E) {
		return undef(), nil
	}
	return a.E[i], nil
}

func (in *Interp) ref(n *refOf) (Value, error) {
	switch x := n.x.(type) {
	case *varRef:
		switch x.name[0] {
		case '$':
			c, err := in.scalarCell(x)
			return Value{Kind: ScalarRef, R: c}, err
		case '@':
			a, err := in.array(x)
			return Value{Kind: ArrayRef, A: a}, err
		default:
			h, err := in.hash(x)
			return Value{Kind: HashRef, H: h}, err
		}
	case *call:
		// \func(...): a reference to the value the helper returns (NethServer's \new_RE(...))
		v, err := in.scalar(x)
		if err != nil {
			return undef(), err
		}
		return Value{Kind: ScalarRef, R: &Scalar{V: v}}, nil
	case *listExpr:
		return undef(), errAt(n.pos, "unsupported Perl: reference to a list \\(...); write [ ... ] for an array reference")
	}
	v, err := in.scalar(n.x)
	if err != nil {
		return undef(), err
	}
	return Value{Kind: ScalarRef, R: &Scalar{V: v}}, nil
}

func (in *Interp) binop(n *binOp) (Value, error) {
	l, err := in.scalar(n.l)
	if err != nil {
		return undef(), err
	}
	switch n.op { // short-circuit operators
	case "||", "or":
		if l.Truth() {
			return l, nil
		}
		return in.scalar(n.r)
	case "//":
		if l.Defined() {
			return l, nil
		}
		return in.scalar(n.r)
	case "&&", "and":
		if !l.Truth() {
			return l, nil
		}
		return in.scalar(n.r)
	}
	r, err := in.scalar(n.r)
	if err != nil {
		return undef(), err
	}
	a, b := l.Number(), r.Number()
	switch n.op {
	case ".":
		if len(l.String())+len(r.String()) > maxStrLen {
			return undef(), errAt(n.pos, "string longer than %d bytes", maxStrLen)
		}
		return str(l.String() + r.String()), nil
	case "x":
		c := 0
		if b > 0 {
			c = int(min(b, maxStrLen+1))
		}
		if c > maxStrLen || len(l.String())*c > maxStrLen {
			return undef(), errAt(n.pos, "string repetition too large")
		}
		return str(strings.Repeat(l.String(), c)), nil
	case "+":
		return num(a + b), nil
	case "-":
		return num(a - b), nil
	case "*":
		return num(a * b), nil
	case "/":
		if b == 0 {
			return undef(), errAt(n.pos, "Illegal division by zero")
		}
		return num(a / b), nil
	case "%":
		if int64(b) == 0 {
			return undef(), errAt(n.pos, "Illegal modulus zero")
		}
		return num(float64(int64(a) % int64(b))), nil
	case "**":
		return num(math.Pow(a, b)), nil
	case "==":
		return boolv(a == b), nil
	case "!=":
		return boolv(a != b), nil
	case "<":
		return boolv(a < b), nil
	case ">":
		return boolv(a > b), nil
	case "<=":
		return boolv(a <= b), nil
	case ">=":
		return boolv(a >= b), nil
	case "<=>":
		return num(float64(cmpF(a, b))), nil
	case "eq":
		return boolv(l.String() == r.String()), nil
	case "ne":
		return boolv(l.String() != r.String()), nil
	case "lt":
		return boolv(l.String() < r.String()), nil
	case "gt":
		return boolv(l.String() > r.String()), nil
	case "le":
		return boolv(l.String() <= r.String()), nil
	case "ge":
		return boolv(l.String() >= r.String()), nil
	case "cmp":
		return num(float64(strings.Compare(l.String(), r.String()))), nil
	case "|":
		return num(float64(int64(a) | int64(b))), nil
	case "&":
		return num(float64(int64(a) & int64(b))), nil
	case "^":
		return num(float64(int64(a) ^ int64(b))), nil
	case "<<":
		return num(float64(int64(a) << uint(b))), nil
	case ">>":
		return num(float64(int64(a) >> uint(b))), nil
	case "..":
		return undef(), errAt(n.pos, "unsupported Perl: range .. outside a list")
	}
	return undef(), errAt(n.pos, "unsupported Perl operator %s", n.op)
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// interpolate builds a double-quoted string's value.
func (in *Interp) interpolate(parts []strPart, p Pos) (string, error) {
	var b strings.Builder
	for _, part := range parts {
		if part.v == "" {
			b.WriteString(part.lit)
			continue
		}
		if strings.Contains(part.v, "::") {
			return "", errAt(p, "unsupported Perl: package variable %s in a string; use amavis's own variables", part.v)
		}
		switch {
		case part.elem == '{':
			h, err := in.hash(&varRef{pos: p, name: "%" + part.v[1:]})
			if err != nil {
				return "", err
			}
			b.WriteString(h.M[part.key].String())
		case part.elem == '[':
			a, err := in.array(&varRef{pos: p, name: "@" + part.v[1:]})
			if err != nil {
				return "", err
			}
			i, _ := strconv.Atoi(part.key)
			if i < 0 {
				i += len(a.E)
			}
			if i >= 0 && i < len(a.E) {
				b.WriteString(a.E[i].String())
			}
		case part.v[0] == '@':
			a, err := in.array(&varRef{pos: p, name: part.v})
			if err != nil {
				return "", err
			}
			for i, e := range a.E {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(e.String())
			}
		default:
			c, err := in.scalarCell(&varRef{pos: p, name: part.v})
			if err != nil {
				return "", err
			}
			b.WriteString(c.V.String())
		}
		if b.Len() > maxStrLen {
			return "", errAt(p, "string longer than %d bytes", maxStrLen)
		}
	}
	return b.String(), nil
}

// backtick runs a command as Perl's `...` does, but without a shell: the command line is split
// on white space and the program found in $ENV{PATH} as set so far. The output is returned with
// its trailing newline (chomp removes it).
func (in *Interp) backtick(cmdline string, p Pos) (Value, error) {
	if err := in.outside(p, "backticks"); err != nil {
		return undef(), err
	}
	if strings.ContainsAny(cmdline, "|&;<>()$`\\\"'*?[]{}~") {
		return undef(), errAt(p, "unsupported Perl: backticks with shell syntax `%s`; amavisgo runs commands without a shell: write a plain command and its arguments", cmdline)
	}
	args := strings.Fields(cmdline)
	if len(args) == 0 {
		return str(""), nil
	}
	prog := args[0]
	if !strings.Contains(prog, "/") {
		path := in.hashes["ENV"].M["PATH"].String()
		found := ""
		for _, d := range filepath.SplitList(path) {
			if d == "" {
				continue
			}
			cand := filepath.Join(d, prog)
			if st, err := os.Stat(cand); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				found = cand
				break
			}
		}
		if found == "" {
			return undef(), errAt(p, "`%s`: %s not found in $ENV{PATH} (%s)", cmdline, prog, path)
		}
		prog = found
	}
	ctx, cancel := context.WithTimeout(context.Background(), BacktickTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args[1:]...)
	env := make([]string, 0, len(in.hashes["ENV"].Keys))
	for _, k := range in.hashes["ENV"].Keys {
		env = append(env, k+"="+in.hashes["ENV"].M[k].String())
	}
	cmd.Env = env
	if os.Geteuid() == 0 {
		// Started as root: the command runs as the daemon_user the files named so far (Debian's
		// 10-debian_scripts names it before 05-node_id runs hostname), not as root.
		if u := in.Scalar("daemon_user").String(); u != "" {
			if id, err := privdrop.Lookup(u, in.Scalar("daemon_group").String()); err == nil {
				gs := make([]uint32, len(id.Groups))
				for i, g := range id.Groups {
					gs[i] = uint32(g)
				}
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: gs}}
			}
		}
	}
	out, err := cmd.Output()
	in.Commands = append(in.Commands, fmt.Sprintf("%s: ran `%s`", p, cmdline))
	if ctx.Err() != nil {
		return undef(), errAt(p, "`%s` did not finish within %s", cmdline, BacktickTimeout)
	}
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			return undef(), errAt(p, "`%s`: %v", cmdline, err)
		}
		// Perl returns the output whatever the exit status
	}
	return str(string(out)), nil
}

func (in *Interp) mapList(n *mapExpr) ([]Value, error) {
	items, err := in.list(n.list...)
	if err != nil {
		return nil, err
	}
	u := in.scalars["_"]
	saved := u.V
	defer func() { u.V = saved }()
	var out []Value
	for _, it := range items {
		u.V = it
		if n.name == "grep" {
			v, err := in.scalar(n.body)
			if err != nil {
				return nil, err
			}
			if v.Truth() {
				out = append(out, it)
			}
			continue
		}
		vs, err := in.listOne(n.body)
		if err != nil {
			return nil, err
		}
		if len(out)+len(vs) > maxListLen {
			return nil, errAt(n.pos, "list longer than %d elements", maxListLen)
		}
		out = append(out, vs...)
	}
	return out, nil
}

// assign carries out an assignment; Perl's list assignment copies, a reference keeps the cell.
func (in *Interp) assign(n *assign) error {
	if _, ok := n.l.(*listExpr); ok {
		return errAt(n.pos, "unsupported Perl: list assignment (...) = ...; assign each variable on its own")
	}
	var target string
	switch l := n.l.(type) {
	case *varRef:
		target = l.name
	case *elemRef:
		target = l.name
	}
	if n.op != "=" {
		return in.compound(n)
	}
	switch l := n.l.(type) {
	case *varRef:
		switch l.name[0] {
		case '$':
			c, err := in.scalarCell(l)
			if err != nil {
				return err
			}
			v, err := in.scalar(n.r)
			if err != nil {
				return err
			}
			c.V = v
		case '@':
			a, err := in.array(l)
			if err != nil {
				return err
			}
			vs, err := in.list(n.r)
			if err != nil {
				return err
			}
			a.E = vs
		case '%':
			h, err := in.hash(l)
			if err != nil {
				return err
			}
			vs, err := in.list(n.r)
			if err != nil {
				return err
			}
			if len(vs)%2 != 0 {
				return errAt(n.pos, "Odd number of elements in hash assignment to %s", l.name)
			}
			nh := pairs(vs)
			h.Keys, h.M = nh.Keys, nh.M
		}
	case *elemRef:
		k, err := in.scalar(l.key)
		if err != nil {
			return err
		}
		v, err := in.scalar(n.r)
		if err != nil {
			return err
		}
		vr := &varRef{pos: l.pos, name: l.name}
		if l.name[0] == '%' {
			h, err := in.hash(vr)
			if err != nil {
				return err
			}
			h.Set(k.String(), v)
			if l.name == "%policy_bank" {
				in.bankPos[k.String()] = n.pos
			}
		} else {
			a, err := in.array(vr)
			if err != nil {
				return err
			}
			i := int(k.Number())
			if i < 0 {
				i += len(a.E)
			}
			if i < 0 || i > 1<<16 {
				return errAt(n.pos, "array index %d out of range", i)
			}
			for len(a.E) <= i {
				a.E = append(a.E, undef())
			}
			a.E[i] = v
		}
	}
	if target != "%ENV" {
		in.markWritten(target, n.pos)
	}
	return nil
}

// compound carries out .= += -= *= /= ||= //= &&= x= **= on a scalar or an element.
func (in *Interp) compound(n *assign) error {
	op := strings.TrimSuffix(n.op, "=")
	cur, err := in.scalar(n.l)
	if err != nil {
		return err
	}
	var v Value
	switch op {
	case "||":
		if cur.Truth() {
			return nil
		}
	case "//":
		if cur.Defined() {
			return nil
		}
	case "&&":
		if !cur.Truth() {
			return nil
		}
	}
	switch op {
	case "||", "//", "&&":
		v, err = in.scalar(n.r)
	default:
		v, err = in.binop(&binOp{pos: n.pos, op: op, l: &valueNode{pos: n.pos, v: cur}, r: n.r})
	}
	if err != nil {
		return err
	}
	return in.assign(&assign{pos: n.pos, op: "=", l: n.l, r: &valueNode{pos: n.pos, v: v}})
}

// valueNode is an already evaluated value inside an expression.
type valueNode struct {
	pos Pos
	v   Value
}

func (n *valueNode) position() Pos { return n.pos }

// sortedKeys returns h's keys sorted (for deterministic output).
func sortedKeys(h *Hash) []string {
	ks := append([]string(nil), h.Keys...)
	sort.Strings(ks)
	return ks
}
