package perlconf

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// call evaluates a builtin or one of Amavis::Conf's helpers; list says whether the caller
// wants a list.
func (in *Interp) call(n *call, list bool) ([]Value, error) {
	if c, ok := constants[n.name]; ok {
		return []Value{num(c)}, nil
	}
	arg := func(i int) (Value, error) {
		if i >= len(n.args) {
			if i == 0 && !n.paren {
				return in.scalars["_"].V, nil
			}
			return undef(), nil
		}
		return in.scalar(n.args[i])
	}
	one := func(v Value, err error) ([]Value, error) {
		if err != nil {
			return nil, err
		}
		return []Value{v}, nil
	}
	strArg := func(i int) (string, error) {
		v, err := arg(i)
		return v.String(), err
	}
	switch n.name {
	case "undef":
		return one(undef(), nil)
	case "lc", "uc", "lcfirst", "ucfirst":
		s, err := strArg(0)
		switch n.name {
		case "lc":
			s = strings.ToLower(s)
		case "uc":
			s = strings.ToUpper(s)
		case "lcfirst":
			if s != "" {
				s = strings.ToLower(s[:1]) + s[1:]
			}
		case "ucfirst":
			if s != "" {
				s = strings.ToUpper(s[:1]) + s[1:]
			}
		}
		return one(str(s), err)
	case "length":
		s, err := strArg(0)
		return one(num(float64(len(s))), err)
	case "int", "abs", "hex", "oct":
		v, err := arg(0)
		switch n.name {
		case "int":
			return one(num(float64(int64(v.Number()))), err)
		case "abs":
			f := v.Number()
			if f < 0 {
				f = -f
			}
			return one(num(f), err)
		case "hex":
			return one(parseNumLit(&numLit{pos: n.pos, text: "0x" + strings.TrimPrefix(v.String(), "0x")}))
		default:
			return one(parseNumLit(&numLit{pos: n.pos, text: "0" + v.String()}))
		}
	case "defined":
		if len(n.args) == 1 {
			if v, ok := n.args[0].(*varRef); ok && v.name[0] != '$' {
				vs, err := in.list(v)
				return one(boolv(len(vs) > 0), err)
			}
		}
		v, err := arg(0)
		return one(boolv(v.Defined()), err)
	case "exists":
		e, ok := firstArg(n).(*elemRef)
		if !ok || e.name[0] != '%' {
			return nil, errAt(n.pos, "exists needs a hash element: exists $h{key}")
		}
		h, err := in.hash(&varRef{pos: e.pos, name: e.name})
		if err != nil {
			return nil, err
		}
		k, err := in.scalar(e.key)
		_, has := h.M[k.String()]
		return one(boolv(has), err)
	case "delete":
		e, ok := firstArg(n).(*elemRef)
		if !ok || e.name[0] != '%' {
			return nil, errAt(n.pos, "unsupported Perl: delete needs a hash element: delete $h{key}")
		}
		h, err := in.hash(&varRef{pos: e.pos, name: e.name})
		if err != nil {
			return nil, err
		}
		k, err := in.scalar(e.key)
		if err != nil {
			return nil, err
		}
		old := h.M[k.String()]
		h.Delete(k.String())
		in.markWritten(e.name, n.pos)
		return one(old, nil)
	case "scalar":
		v, err := arg(0)
		return one(v, err)
	case "chomp", "chop":
		return in.chomp(n)
	case "join":
		vs, err := in.list(n.args...)
		if err != nil || len(vs) == 0 {
			return one(str(""), err)
		}
		parts := make([]string, len(vs)-1)
		size := 0
		for i, v := range vs[1:] {
			parts[i] = v.String()
			size += len(parts[i]) + len(vs[0].String())
			if size > maxStrLen {
				return nil, errAt(n.pos, "string longer than %d bytes", maxStrLen)
			}
		}
		return one(str(strings.Join(parts, vs[0].String())), nil)
	case "split":
		return in.split(n)
	case "push", "unshift":
		return in.pushUnshift(n)
	case "sprintf":
		vs, err := in.list(n.args...)
		if err != nil || len(vs) == 0 {
			return one(str(""), err)
		}
		return one(sprintf(n.pos, vs[0].String(), vs[1:]))
	case "die":
		vs, _ := in.list(n.args...)
		var b strings.Builder
		for _, v := range vs {
			b.WriteString(v.String())
		}
		return nil, errAt(n.pos, "die: %s", strings.TrimSuffix(b.String(), "\n"))
	case "warn":
		return one(num(1), nil)

	// Amavis::Conf's helpers
	case "new_RE":
		vs, err := in.list(n.args...)
		if err != nil {
			return nil, err
		}
		for i, v := range vs {
			if v.Kind == Str || v.Kind == Num {
				vs[i] = Value{Kind: Regexp, S: v.String(), Pos: n.pos}
			}
		}
		return one(Value{Kind: ReList, A: &Array{E: vs}, Pos: n.pos}, nil)
	case "read_hash", "read_array", "read_cidr":
		return in.readTable(n)
	case "read_text":
		f, err := strArg(0)
		if err != nil {
			return nil, err
		}
		if err := in.outside(n.pos, n.name); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, errAt(n.pos, "read_text: Can't open file %s for reading: %v", f, unwrapPathErr(err))
		}
		return one(Value{Kind: Str, S: string(b), File: f}, nil)
	case "read_l10n_templates":
		return nil, in.readL10n(n)
	case "include_config_files", "include_optional_config_files":
		vs, err := in.list(n.args...)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			f := v.String()
			if n.name == "include_optional_config_files" {
				if _, err := os.Stat(f); err != nil {
					continue
				}
			}
			if err := in.RunFile(f); err != nil {
				return nil, err
			}
		}
		return one(num(1), nil)
	case "require":
		f, err := strArg(0)
		if err != nil {
			return nil, err
		}
		if in.required[f] {
			return one(num(1), nil)
		}
		if in.required == nil {
			in.required = map[string]bool{}
		}
		in.required[f] = true
		return one(num(1), in.RunFile(f))
	case "-e", "-f", "-d", "-r", "-s":
		f, err := strArg(0)
		if err != nil {
			return nil, err
		}
		if err := in.outside(n.pos, "file test "+n.name); err != nil {
			return nil, err
		}
		st, err := os.Stat(f)
		switch {
		case err != nil:
			return one(str(""), nil)
		case n.name == "-f":
			return one(boolv(st.Mode().IsRegular()), nil)
		case n.name == "-d":
			return one(boolv(st.IsDir()), nil)
		case n.name == "-s":
			if st.Size() == 0 {
				return one(str(""), nil)
			}
			return one(num(float64(st.Size())), nil)
		}
		return one(num(1), nil)
	case "Opaque", "OpaqueRef":
		v, err := arg(0)
		return one(v, err)
	case "dump_hash", "dump_array":
		return one(num(1), nil)
	case "idn_to_ascii", "idn_to_utf8", "mail_idn_to_ascii":
		s, err := strArg(0)
		if err != nil {
			return nil, err
		}
		for _, r := range s {
			if r > 127 {
				return nil, errAt(n.pos, "%s: internationalised names are not supported here; write the ASCII (xn--) form", n.name)
			}
		}
		if n.name == "idn_to_utf8" {
			return one(str(s), nil)
		}
		if n.name == "mail_idn_to_ascii" {
			if i := strings.LastIndexByte(s, '@'); i >= 0 {
				return one(str(s[:i+1]+strings.ToLower(s[i+1:])), nil)
			}
		}
		return one(str(strings.ToLower(s)), nil)
	case "dkim_key":
		args, err := in.list(n.args...)
		if err != nil {
			return nil, err
		}
		in.dkimCalls = append(in.dkimCalls, dkimKeyCall{pos: n.pos, idx: in.source, args: args})
		return one(num(1), nil)
	case "q_sql_s", "q_sql_n", "q_sql_b", "q_ldap_s", "q_ldap_n", "q_ldap_b", "q_dns_a":
		vs, err := in.list(n.args...)
		if err != nil {
			return nil, err
		}
		if list {
			return vs, nil
		}
		if len(vs) == 0 {
			return one(undef(), nil)
		}
		return one(vs[0], nil)
	case "c", "cr", "ca":
		return nil, errAt(n.pos, "unsupported Perl: %s() looks up a policy setting while mail is processed; it may only appear inside sub { %s('name') } in a *_by_ccat map", n.name, n.name)
	case "__FILE__":
		return one(str(n.pos.File), nil)
	case "__LINE__":
		return one(num(float64(n.pos.Line)), nil)
	case "wantarray", "time":
		return nil, errAt(n.pos, "unsupported Perl: %s; write the value directly", n.name)
	case "eval", "do", "system", "exec", "open", "print", "printf", "qx", "local", "my", "our", "return", "exit", "kill", "unlink", "mkdir", "chdir", "sleep":
		return nil, errAt(n.pos, "unsupported Perl: %s; a configuration only assigns amavis's variables (amavisgo reads a declarative subset of Perl, see docs/perl-config.md)", n.name)
	}
	if n.paren || len(n.args) > 0 {
		return nil, errAt(n.pos, "unknown function %s(): not one of Amavis::Conf's helpers (new_RE, read_hash, read_array, read_cidr, read_text, read_l10n_templates, include_config_files, dkim_key, Opaque, idn_to_ascii, ...) nor a supported builtin", n.name)
	}
	return nil, errAt(n.pos, "Bareword %q not allowed while \"strict subs\" in use: quote the string, or use one of amavis's D_*/CC_* constants", n.name)
}

func firstArg(n *call) node {
	if len(n.args) == 0 {
		return nil
	}
	return n.args[0]
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// chomp removes one trailing newline from each variable (chomp($x = `cmd`) assigns first).
func (in *Interp) chomp(n *call) ([]Value, error) {
	target := firstArg(n)
	if target == nil {
		target = &varRef{pos: n.pos, name: "$_"}
	}
	if a, ok := target.(*assign); ok {
		if err := in.assign(a); err != nil {
			return nil, err
		}
		target = a.l
	}
	cut := func(v Value) Value {
		s := v.String()
		if !v.Defined() {
			return v
		}
		if n.name == "chop" {
			if s != "" {
				s = s[:len(s)-1]
			}
		} else {
			s = strings.TrimSuffix(s, "\n")
		}
		return Value{Kind: Str, S: s, File: v.File}
	}
	switch t := target.(type) {
	case *varRef:
		switch t.name[0] {
		case '$':
			c, err := in.scalarCell(t)
			if err != nil {
				return nil, err
			}
			c.V = cut(c.V)
		case '@':
			a, err := in.array(t)
			if err != nil {
				return nil, err
			}
			for i := range a.E {
				a.E[i] = cut(a.E[i])
			}
		default:
			return nil, errAt(n.pos, "unsupported Perl: %s of a hash", n.name)
		}
	case *elemRef:
		v, err := in.elem(t)
		if err != nil {
			return nil, err
		}
		return nil, in.assign(&assign{pos: n.pos, op: "=", l: t, r: &valueNode{pos: n.pos, v: cut(v)}})
	default:
		return nil, errAt(n.pos, "unsupported Perl: %s of an expression; %s a variable", n.name, n.name)
	}
	return []Value{num(1)}, nil
}

// split implements split(PATTERN, STRING) with a string, ' ' or qr pattern.
func (in *Interp) split(n *call) ([]Value, error) {
	if len(n.args) < 2 {
		return nil, errAt(n.pos, "split needs a pattern and a string: split(/,/, $x) is written split(',', $x) or split(qr/,/, $x)")
	}
	var pat Value
	if q, ok := n.args[0].(*qrLit); ok && q.match {
		pat = Value{Kind: Regexp, S: q.pattern, Flags: normFlags(q.flg)}
	} else {
		var err error
		if pat, err = in.scalar(n.args[0]); err != nil {
			return nil, err
		}
	}
	s, err := in.scalar(n.args[1])
	if err != nil {
		return nil, err
	}
	var parts []string
	switch {
	case pat.Kind != Regexp && pat.String() == " ":
		parts = strings.Fields(s.String())
	default:
		expr := regexp.QuoteMeta(pat.String())
		if pat.Kind == Regexp {
			expr = pat.S
			if pat.Flags != "" {
				expr = "(?" + strings.Trim(pat.Flags, "xpn") + ")" + expr
			}
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, errAt(n.pos, "split: pattern %q: %v", pat.String(), err)
		}
		parts = re.Split(s.String(), -1)
		for len(parts) > 0 && parts[len(parts)-1] == "" { // Perl drops trailing empty fields
			parts = parts[:len(parts)-1]
		}
	}
	out := make([]Value, len(parts))
	for i, p := range parts {
		out[i] = str(p)
	}
	return out, nil
}

func (in *Interp) pushUnshift(n *call) ([]Value, error) {
	v, ok := firstArg(n).(*varRef)
	if !ok || v.name[0] != '@' {
		return nil, errAt(n.pos, "%s needs an array variable: %s(@name, LIST)", n.name, n.name)
	}
	a, err := in.array(v)
	if err != nil {
		return nil, err
	}
	vs, err := in.list(n.args[1:]...)
	if err != nil {
		return nil, err
	}
	if len(a.E)+len(vs) > maxListLen {
		return nil, errAt(n.pos, "list longer than %d elements", maxListLen)
	}
	if n.name == "push" {
		a.E = append(a.E, vs...)
	} else {
		a.E = append(vs, a.E...)
	}
	in.markWritten(v.name, n.pos)
	return []Value{num(float64(len(a.E)))}, nil
}

// readTable implements read_hash, read_array and read_cidr: the file is read now, as amavis
// does, and a missing file is an error.
func (in *Interp) readTable(n *call) ([]Value, error) {
	vs, err := in.list(n.args...)
	if err != nil {
		return nil, err
	}
	var into Value
	if len(vs) > 0 && (vs[0].Kind == HashRef || vs[0].Kind == ArrayRef) {
		into, vs = vs[0], vs[1:]
	}
	if len(vs) == 0 {
		return nil, errAt(n.pos, "%s needs a file name", n.name)
	}
	if err := in.outside(n.pos, n.name); err != nil {
		return nil, err
	}
	file := vs[0].String()
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, errAt(n.pos, "%s: Can't open file %s for reading: %v", n.name, file, unwrapPathErr(err))
	}
	lines := strings.Split(string(b), "\n")
	switch n.name {
	case "read_array":
		a := &Array{}
		if into.Kind == ArrayRef {
			a = into.A
		}
		for _, ln := range lines {
			lhs, _ := splitTableLine(ln, false)
			if lhs != "" {
				a.E = append(a.E, str(unquoteLocal(lhs)))
			}
		}
		return []Value{{Kind: ArrayRef, A: a, File: file}}, nil
	case "read_hash":
		h := newHash()
		if into.Kind == HashRef {
			h = into.H
		}
		for _, ln := range lines {
			lhs, rhs := splitTableLine(ln, true)
			if lhs == "" && rhs == "" {
				continue
			}
			var v Value = num(1)
			if rhs != "" {
				v = str(rhs)
			}
			key := unquoteLocal(lhs)
			if local, domain, ok := strings.Cut(key, "@"); ok && in.Scalar("localpart_is_case_sensitive").Truth() {
				key = local + "@" + strings.ToLower(domain) // as Amavis::Util's read_hash: the domain only
			} else {
				key = strings.ToLower(key)
			}
			h.Set(key, v)
		}
		return []Value{{Kind: HashRef, H: h, File: file}}, nil
	}
	// read_cidr: Postfix cidr_table(5): "network result", continuation lines start with white space
	h := newHash()
	var joined []string
	for _, ln := range lines {
		if strings.HasPrefix(strings.TrimSpace(ln), "#") || strings.TrimSpace(ln) == "" {
			continue
		}
		if (ln[0] == ' ' || ln[0] == '\t') && len(joined) > 0 {
			joined[len(joined)-1] += " " + strings.TrimSpace(ln)
			continue
		}
		joined = append(joined, strings.TrimSpace(ln))
	}
	for _, ln := range joined {
		k, v, _ := strings.Cut(ln, " ")
		h.Set(k, str(strings.TrimSpace(v)))
	}
	return []Value{{Kind: HashRef, H: h, File: file}}, nil
}

// splitTableLine splits a line of a read_hash/read_array file into the key and the rest, as
// Amavis::Util does: a '#' outside "..." starts a comment; the first blank separates the key.
func splitTableLine(ln string, hash bool) (string, string) {
	ln = strings.TrimRight(ln, "\r")
	var lhs, rhs strings.Builder
	atRHS, comment := false, false
	for i := 0; i < len(ln); i++ {
		c := ln[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(ln) && ln[j] != '"' {
				if ln[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(ln) {
				j = len(ln) - 1
			}
			if atRHS {
				rhs.WriteString(ln[i : j+1])
			} else {
				lhs.WriteString(ln[i : j+1])
			}
			i = j
		case c == '#':
			comment = true
			i = len(ln)
		case (c == ' ' || c == '\t') && !atRHS && hash:
			for i+1 < len(ln) && (ln[i+1] == ' ' || ln[i+1] == '\t') {
				i++
			}
			atRHS = true
		case atRHS:
			rhs.WriteByte(c)
		default:
			lhs.WriteByte(c)
		}
	}
	r := rhs.String()
	if comment {
		r = strings.TrimRight(r, " \t")
	}
	return strings.TrimRight(lhs.String(), " \t"), r
}

// unquoteLocal removes the quotes of a quoted local part: "a b"@x is a b@x.
func unquoteLocal(s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	end := strings.LastIndex(s, `"`)
	if end <= 0 {
		return s
	}
	inner := strings.ReplaceAll(s[1:end], `\`, "")
	return inner + s[end+1:]
}

// readL10n implements Debian's read_l10n_templates(LANG, BASE) (or (DIR)): the six notification
// templates are read from DIR, whose charset file must name a character set.
func (in *Interp) readL10n(n *call) error {
	vs, err := in.list(n.args...)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return errAt(n.pos, "read_l10n_templates needs a directory")
	}
	if err := in.outside(n.pos, n.name); err != nil {
		return err
	}
	dir := vs[0].String()
	if len(vs) > 1 {
		dir = vs[1].String() + "/" + vs[0].String()
	}
	cs, err := os.ReadFile(dir + "/charset")
	if err != nil {
		return errAt(n.pos, "read_l10n_templates: Can't open file %s/charset for reading: %v", dir, unwrapPathErr(err))
	}
	if !charsetRE.Match(cs) {
		return errAt(n.pos, "read_l10n_templates: Invalid charset %s", strings.TrimSpace(string(cs)))
	}
	for _, t := range [][2]string{
		{"notify_sender_templ", "template-dsn.txt"},
		{"notify_virus_sender_templ", "template-virus-sender.txt"},
		{"notify_virus_admin_templ", "template-virus-admin.txt"},
		{"notify_virus_recips_templ", "template-virus-recipient.txt"},
		{"notify_spam_sender_templ", "template-spam-sender.txt"},
		{"notify_spam_admin_templ", "template-spam-admin.txt"},
	} {
		f := dir + "/" + t[1]
		b, err := os.ReadFile(f)
		if err != nil {
			return errAt(n.pos, "read_l10n_templates: Can't open file %s for reading: %v", f, unwrapPathErr(err))
		}
		in.scalars[t[0]].V = Value{Kind: Str, S: string(b), File: f}
		in.markWritten("$"+t[0], n.pos)
	}
	return nil
}

// charsetRE is what read_l10n_templates accepts in the charset file: comment lines, then a
// name without dots, slashes or blanks, then an optional comment.
var charsetRE = regexp.MustCompile(`(?s)^(?:#[^\n]*\n)*([^./\n\s]+)(\s*[#\n].*)?$`)

// sprintf supports the conversions configurations use: %s %d %i %f %x %o %%.
func sprintf(p Pos, format string, args []Value) (Value, error) {
	var b strings.Builder
	ai := 0
	next := func() Value {
		if ai < len(args) {
			ai++
			return args[ai-1]
		}
		return undef()
	}
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("-+ 0#.123456789", format[j]) >= 0 {
			j++
		}
		if j >= len(format) {
			return undef(), errAt(p, "sprintf: incomplete format %q", format)
		}
		spec := format[i:j]
		if len(spec) > 6 {
			return undef(), errAt(p, "sprintf: format %q too wide", spec)
		}
		switch format[j] {
		case '%':
			b.WriteByte('%')
		case 's':
			fmt.Fprintf(&b, spec+"s", next().String())
		case 'd', 'i':
			fmt.Fprintf(&b, spec+"d", int64(next().Number()))
		case 'f', 'g', 'e':
			fmt.Fprintf(&b, spec+string(format[j]), next().Number())
		case 'x', 'X', 'o':
			fmt.Fprintf(&b, spec+string(format[j]), int64(next().Number()))
		default:
			return undef(), errAt(p, "sprintf: unsupported conversion %%%c", format[j])
		}
		i = j
	}
	return str(b.String()), nil
}
