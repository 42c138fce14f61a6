// Package perlconf reads amavis's own Perl configuration (amavisd.conf, Debian's conf.d) without
// Perl: a lexer, a parser with FILE:LINE:COL positions and an evaluator over amavis's variables
// for the subset of Perl that real configurations use (docs/perl-config.md). The variables'
// values are then written as conf's TOML keys and decoded by conf itself, so a Perl and a TOML
// configuration are validated alike and give the same conf.Config.
package perlconf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"amavisgo/conf"
)

// Options change how a configuration is loaded.
type Options struct {
	// AllowUnimplemented loads a configuration that switches on a feature amavisgo lacks
	// (also set by allow_unimplemented = true in a TOML file of the list).
	AllowUnimplemented bool
}

// Result is a loaded configuration.
type Result struct {
	Config *conf.Config
	// TOML is the configuration as conf read it (the Perl variables written as TOML keys).
	TOML []byte
	// Warnings name each setting read but not used, FILE:LINE:COL first.
	Warnings []string
	// Commands lists the commands backticks ran.
	Commands []string
	// Files are the files read, in order: the list given and the files it included.
	Files  []string
	Interp *Interp
}

// tomlFirstLine matches the first meaningful line of a TOML file: a table header or key = value.
var tomlFirstLine = regexp.MustCompile(`^(\[|[A-Za-z0-9_"'-][A-Za-z0-9_."' -]*=)`)

// IsPerl tells a Perl configuration file from a TOML one by its content: the first line that
// is not blank or a comment is a TOML table header or key = value, or it is Perl.
func IsPerl(text []byte) bool {
	for _, ln := range strings.Split(string(text), "\n") {
		t := strings.TrimSpace(ln)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		return !tomlFirstLine.MatchString(t) || strings.HasSuffix(t, ";")
	}
	return false
}

type source struct {
	file string
	pos  Pos
	idx  int
}

// Load reads the files in order, Perl and TOML mixed (a TOML file overrides what came before
// it), and returns the configuration conf decodes from them.
func Load(files []string, opt Options) (*Result, error) {
	in := NewInterp()
	type tomlFile struct {
		file string
		idx  int
		data map[string]any
	}
	var tomls []tomlFile
	for i, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, &Error{Pos: Pos{File: f}, Msg: "Error reading config file: " + unwrapPathErr(err).Error()}
		}
		if !IsPerl(text) {
			var data map[string]any
			if _, err := toml.Decode(string(text), &data); err != nil {
				// conf's own loader reports the error with the line
				if _, cerr := conf.Parse(f, text); cerr != nil {
					return nil, cerr
				}
				return nil, &Error{Pos: Pos{File: f}, Msg: err.Error()}
			}
			if v, ok := data["allow_unimplemented"].(bool); ok && v {
				opt.AllowUnimplemented = true
			}
			tomls = append(tomls, tomlFile{f, i, data})
			continue
		}
		in.source = i
		if err := in.Run(f, string(text)); err != nil {
			return nil, err
		}
	}
	gen, src, err := in.toTOML(opt, files)
	if err != nil {
		return nil, err
	}
	for _, t := range tomls {
		for k, v := range t.data {
			if k == "policy_bank" {
				banks, _ := gen["policy_bank"].(map[string]any)
				if banks == nil {
					banks = map[string]any{}
					gen["policy_bank"] = banks
				}
				tb, _ := v.(map[string]any)
				for name, bv := range tb {
					cur, _ := banks[name].(map[string]any)
					nb, _ := bv.(map[string]any)
					if cur == nil {
						banks[name] = nb
						continue
					}
					for bk, bval := range nb {
						if s, ok := src["policy_bank."+name+"."+bk]; !ok || s.idx < t.idx {
							cur[bk] = bval
							src["policy_bank."+name+"."+bk] = source{file: t.file, idx: t.idx}
						}
					}
				}
				continue
			}
			if s, ok := src[k]; !ok || s.idx < t.idx {
				gen[k] = v
				src[k] = source{file: t.file, idx: t.idx}
			}
		}
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(gen); err != nil {
		return nil, fmt.Errorf("perlconf: writing the configuration as TOML: %w", err)
	}
	c, err := conf.Parse(strings.Join(files, " "), buf.Bytes())
	if err != nil {
		return nil, locate(err, src, files)
	}
	read := append([]string(nil), in.Files...)
	for _, t := range tomls {
		read = append(read, t.file)
	}
	return &Result{Config: c, TOML: buf.Bytes(), Warnings: in.Warnings, Commands: in.Commands, Files: read, Interp: in}, nil
}

// locate turns conf's error about the generated TOML into one about the file that set the key.
func locate(err error, src map[string]source, files []string) error {
	var ce *conf.Error
	if !errors.As(err, &ce) {
		return err
	}
	k := ce.Key
	for k != "" {
		if s, ok := src[k]; ok {
			if s.pos.File != "" {
				return &Error{Pos: s.pos, Msg: fmt.Sprintf("%s: %s", perlName(ce.Key), ce.Msg)}
			}
			// a TOML file's key: conf finds its line in that file
			if text, err := os.ReadFile(s.file); err == nil {
				if _, err := conf.Parse(s.file, text); err != nil {
					var fe *conf.Error
					if errors.As(err, &fe) && fe.Key == ce.Key {
						return fe
					}
				}
			}
			return &conf.Error{File: s.file, Key: ce.Key, Msg: ce.Msg}
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return &Error{Pos: Pos{File: strings.Join(files, " ")}, Msg: fmt.Sprintf("%s: %s", perlName(ce.Key), ce.Msg)}
}

// perlName names a conf key by its amavis variable in messages.
func perlName(key string) string {
	if strings.HasPrefix(key, "policy_bank.") {
		parts := strings.SplitN(key, ".", 3)
		if len(parts) == 3 {
			return fmt.Sprintf("$policy_bank{'%s'}{%s}", parts[1], parts[2])
		}
	}
	for name, b := range bindings {
		if b.key == key && name != "$banned_filename_re" {
			return name
		}
	}
	return key
}

// toTOML writes the variables a file changed (directly or through a variable they refer to)
// as conf's keys; the others keep conf's defaults, which are amavis's.
func (in *Interp) toTOML(opt Options, files []string) (map[string]any, map[string]source, error) {
	in.allow = opt.AllowUnimplemented
	names := in.cellNames()
	gen := map[string]any{}
	src := map[string]source{}
	reach := map[string]bool{}
	for _, name := range sortedNames(bindings) {
		b := bindings[name]
		if b.conv == cBannedRules {
			continue
		}
		vs, isArray := in.valueOf(name)
		used := map[string]bool{name: true}
		for _, v := range vs {
			in.reachable(v, names, used, 0)
		}
		var last Pos
		lastIdx, lastSeq, dirty := -1, 0, false
		for n := range used {
			reach[n] = true
			if p, ok := in.written[n]; ok {
				dirty = true
				if in.writtenSeq[n] > lastSeq {
					lastIdx, lastSeq, last = in.writtenIn[n], in.writtenSeq[n], p
				}
			}
		}
		if !dirty && !(name == "@spam_scanners" && spamOn(in)) {
			// amavis's default engine runs once spam checking is on; conf's default is none
			continue
		}
		c := &converter{in: in, pos: last}
		v, ok, err := c.convert(b, vs, isArray)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			gen[b.key] = v
			src[b.key] = source{pos: last, idx: lastIdx}
		}
	}
	// banned_rules: %banned_rules, with $banned_filename_re as DEFAULT unless the hash has one
	reach["%banned_rules"], reach["$banned_filename_re"] = true, true
	pr, okR := in.written["%banned_rules"]
	pd, okD := in.written["$banned_filename_re"]
	if okR || okD {
		deflt := in.Scalar("banned_filename_re")
		h := in.hashes["banned_rules"]
		if _, has := h.M["DEFAULT"]; has {
			deflt = undef()
		}
		p := pr
		if !okR || okD && in.writtenSeq["$banned_filename_re"] > in.writtenSeq["%banned_rules"] {
			p = pd
		}
		c := &converter{in: in, pos: p}
		rules, err := c.bannedRules(h, deflt)
		if err != nil {
			return nil, nil, err
		}
		gen["banned_rules"] = rules
		src["banned_rules"] = source{pos: p, idx: max(in.writtenIn["%banned_rules"], in.writtenIn["$banned_filename_re"])}
	}
	if len(in.dkimCalls) > 0 {
		keys, err := in.dkimKeys()
		if err != nil {
			return nil, nil, err
		}
		gen["dkim_key"] = keys
		src["dkim_key"] = source{pos: in.dkimCalls[0].pos, idx: in.dkimCalls[len(in.dkimCalls)-1].idx}
	}
	if err := in.banks(gen, src, names, reach); err != nil {
		return nil, nil, err
	}
	if err := in.checkUnimplemented(opt, reach, files); err != nil {
		return nil, nil, err
	}
	return gen, src, nil
}

// valueOf returns a variable's value: the elements of an array, or the one scalar or hash.
func (in *Interp) valueOf(name string) ([]Value, bool) {
	switch name[0] {
	case '@':
		return in.Array(name[1:]), true
	case '%':
		return []Value{{Kind: HashRef, H: in.hashes[name[1:]]}}, false
	}
	return []Value{in.Scalar(name[1:])}, false
}

// cellNames maps each variable's cell to its name, to tell which variables a reference reaches.
func (in *Interp) cellNames() map[any]string {
	m := map[any]string{}
	for n, c := range in.scalars {
		m[c] = canonical("$" + n)
	}
	for n, c := range in.arrays {
		m[c] = "@" + n
	}
	for n, c := range in.hashes {
		m[c] = canonical("%" + n)
	}
	return m
}

func (in *Interp) reachable(v Value, names map[any]string, used map[string]bool, depth int) {
	if depth > 8 {
		return
	}
	var cell any
	switch v.Kind {
	case ScalarRef:
		cell = v.R
	case ArrayRef, ReList:
		cell = v.A
	case HashRef:
		cell = v.H
	default:
		return
	}
	if n, ok := names[cell]; ok {
		if used[n] {
			return
		}
		used[n] = true
	}
	switch v.Kind {
	case ScalarRef:
		in.reachable(v.R.V, names, used, depth+1)
	case ArrayRef, ReList:
		for _, e := range v.A.E {
			in.reachable(e, names, used, depth+1)
		}
	case HashRef:
		for _, k := range v.H.Keys {
			in.reachable(v.H.M[k], names, used, depth+1)
		}
	}
}

// banks writes %policy_bank's banks as [policy_bank.NAME] tables.
func (in *Interp) banks(gen map[string]any, src map[string]source, names map[any]string, reach map[string]bool) error {
	h := in.hashes["policy_bank"]
	out := map[string]any{}
	for _, name := range h.Keys {
		bank := h.M[name]
		p := in.bankPos[name]
		if p.File == "" {
			p = in.written["%policy_bank"]
		}
		if name == "" {
			continue // the built-in bank: its values are the base configuration's
		}
		if !bank.Defined() {
			continue
		}
		if bank.Kind != HashRef {
			return &Error{Pos: p, Msg: fmt.Sprintf("$policy_bank{'%s'} must be a hash: { key => value, ... }", name)}
		}
		tbl := map[string]any{}
		for _, k := range bank.H.Keys {
			v := bank.H.M[k]
			b, ok := bankBindings[k]
			if !ok {
				in.bankKeyUnknown(p, name, k)
				continue
			}
			c := &converter{in: in, pos: p}
			vs, isArray := []Value{v}, false
			if sig := bankSigil(k); sig == "@" && v.Kind == ArrayRef {
				vs, isArray = v.A.E, true
			}
			used := map[string]bool{}
			for _, x := range vs {
				in.reachable(x, names, used, 0)
			}
			for n := range used {
				reach[n] = true
			}
			tv, ok, err := c.convert(b, vs, isArray)
			if err != nil {
				return err
			}
			if ok {
				tbl[b.key] = tv
				src["policy_bank."+name+"."+b.key] = source{pos: p, idx: in.writtenIn["%policy_bank"]}
			}
		}
		out[name] = tbl
		src["policy_bank."+name] = source{pos: p, idx: in.writtenIn["%policy_bank"]}
	}
	if len(out) > 0 {
		gen["policy_bank"] = out
	}
	return nil
}

// bankSigil is the sigil of the variable a bank key names.
func bankSigil(k string) string {
	for _, s := range []string{"@", "%", "$"} {
		if _, ok := bindings[s+k]; ok {
			return s
		}
	}
	return "$"
}

// bankKeyUnknown handles a policy bank key conf lacks: amavis itself only logs an unknown
// field when the bank is loaded; a known but unimplemented one follows the variable's class.
func (in *Interp) bankKeyUnknown(p Pos, bank, k string) {
	for _, s := range []string{"$", "@", "%"} {
		if _, ok := declared[s+k]; ok {
			in.warn(p, fmt.Sprintf("policy bank '%s': %s is not implemented by amavisgo; it is ignored", bank, k))
			return
		}
	}
	in.warn(p, fmt.Sprintf("policy bank '%s': unknown field '%s' (amavis ignores it too)", bank, k))
}

// checkUnimplemented refuses a configuration that switches on a feature amavisgo lacks, and
// warns once about every other variable that was set but is not used.
func (in *Interp) checkUnimplemented(opt Options, reach map[string]bool, files []string) error {
	for i := range features {
		f := &features[i]
		by, on := f.active(in)
		if !on {
			continue
		}
		p, ok := in.written[by]
		if !ok && len(files) > 0 {
			p = Pos{File: files[0], Line: 1, Col: 1}
		}
		msg := fmt.Sprintf("%s is switched on (%s) but amavisgo does not implement it yet", f.name, by)
		if !opt.AllowUnimplemented {
			return &Error{Pos: p, Msg: msg + "; switch it off, or set allow_unimplemented = true in a TOML file to run without it"}
		}
		in.warn(p, msg+"; running without it (allow_unimplemented)")
	}
	for _, name := range sortedNames(in.written) {
		if reach[name] || name == "%policy_bank" || retired[name] {
			continue
		}
		if _, ok := declared[name]; !ok {
			continue
		}
		why := "is not implemented by amavisgo; its setting is ignored"
		if f := featureOf(name); f != nil {
			why = "belongs to " + f.name + ", which amavisgo does not implement; its setting is ignored"
		}
		in.warn(in.first[name], fmt.Sprintf("%s %s", name, why))
	}
	return nil
}

// DebianDirs are the directories Debian's amavisd-new reads, in order (Amavis.pm's
// find_config_files).
var DebianDirs = []string{"/usr/share/amavis/conf.d", "/etc/amavis/conf.d"}

// Expand replaces each directory in paths by the files run-parts --list gives for it (names
// of letters, digits, '_' and '-' only, in order), as Debian's start-up does.
func Expand(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			out = append(out, p)
			continue
		}
		list, err := exec.Command("run-parts", "--list", p).Output()
		if err != nil {
			return nil, fmt.Errorf("run-parts --list %s: %v", p, err)
		}
		out = append(out, strings.Fields(string(list))...)
	}
	return out, nil
}
