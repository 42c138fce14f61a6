package perlconf

import (
	"fmt"
	"reflect"
	"strings"
)

// The conversions of the settings of spam checking, SQL, LDAP and DKIM.

// sqlStatements are the %sql_clause entries amavis 2.13 uses (Amavis::Conf's defaults).
var sqlStatements = map[string]bool{
	"sel_policy": true, "sel_wblist": true, "sel_adr": true, "ins_adr": true, "ins_msg": true,
	"upd_msg": true, "ins_rcp": true, "ins_quar": true, "sel_msg": true, "sel_quar": true,
	"sel_penpals": true, "sel_penpals_msgid": true,
}

// sqlClause reports whether %sql_clause's entry name is one amavis uses; amavis never reads
// any other (a patched amavis's own statement), so such an entry only warns.
func (c *converter) sqlClause(name string) bool {
	if sqlStatements[name] {
		return true
	}
	c.in.warn(c.pos, fmt.Sprintf("%%sql_clause{'%s'} is not a statement amavis uses; it is ignored", name))
	return false
}

// dsns converts @lookup_sql_dsn and @storage_sql_dsn: [dsn, user, password] each, or a DSN.
func (c *converter) dsns(key string, vs []Value) (any, bool, error) {
	out := []any{}
	for i, v := range vs {
		switch v.Kind {
		case Undef:
		case Str:
			out = append(out, v.S)
		case ArrayRef:
			if len(v.A.E) == 0 || len(v.A.E) > 3 {
				return nil, false, c.errf("%s entry %d: want [dsn, user, password]", key, i+1)
			}
			e := []any{}
			for _, x := range v.A.E {
				e = append(e, x.String())
			}
			out = append(out, e)
		default:
			return nil, false, c.errf("%s entry %d: want [dsn, user, password], found a %s", key, i+1, kindName(v))
		}
	}
	return out, true, nil
}

// tomlKeys maps a struct's TOML keys to their field types.
func tomlKeys(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if tag != "" && tag != "-" {
			out[tag] = t.Field(i).Type
		}
	}
	return out
}

// scalarAs converts a Perl scalar to the TOML value a field of type t takes: Perl has no
// booleans, and numbers and strings are one to it.
func scalarAs(t reflect.Type, v Value) (any, bool) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return v.Truth(), true
	case reflect.Int, reflect.Int64, reflect.Int32:
		return int64(v.Number()), true
	case reflect.Float64:
		return v.Number(), true
	case reflect.String:
		return v.String(), true
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return nil, false
		}
		if v.Kind == ArrayRef {
			l := []any{}
			for _, x := range v.A.E {
				l = append(l, x.String())
			}
			return l, true
		}
		return v.String(), true
	}
	return nil, false
}

// table converts a hash of named parameters ($default_ldap) into the keys of the conf struct
// it stands for; a parameter the struct lacks is named in a warning and left out.
func (c *converter) table(b binding, v Value) (any, bool, error) {
	v = v.deref()
	if !v.Defined() {
		return nil, false, nil
	}
	if v.Kind != HashRef {
		return nil, false, c.errf("%s must be a hash: { name => value, ... }, found a %s", b.key, kindName(v))
	}
	keys := tomlKeys(b.typ)
	out := map[string]any{}
	for _, k := range v.H.Keys {
		x := v.H.M[k]
		if !x.Defined() {
			continue // amavis's default applies
		}
		t, ok := keys[k]
		if !ok {
			c.in.warn(c.pos, fmt.Sprintf("%s: parameter %s is not implemented by amavisgo; it is ignored", b.key, k))
			continue
		}
		tv, ok := scalarAs(t, x)
		if !ok || x.Kind != Str && x.Kind != Num && !(x.Kind == ArrayRef && t.Kind() == reflect.Slice) {
			return nil, false, c.errf("%s: parameter %s: want a plain value (%s given)", b.key, k, kindName(x))
		}
		out[k] = tv
	}
	return out, true, nil
}

// dkimOptions converts @dkim_signature_options_bysender_maps: hash tables of sender address
// to a hash of signature options (Amavis::DKIM).
func (c *converter) dkimOptions(vs []Value) (any, bool, error) {
	out := []any{}
	tables, err := c.hashTables(vs, "dkim_signature_options_bysender_maps table", "only a hash { 'address' => { option => value } } is supported")
	if err != nil {
		return nil, false, err
	}
	for i, v := range tables {
		tbl := map[string]any{}
		for _, k := range v.H.Keys {
			o := v.H.M[k].deref()
			if o.Kind != HashRef {
				return nil, false, c.errf("dkim_signature_options_bysender_maps table %d, %q: want a hash of signature options, found a %s", i+1, k, kindName(o))
			}
			opts := map[string]any{}
			for _, name := range o.H.Keys {
				x := o.H.M[name]
				if !x.Defined() {
					continue
				}
				if name == "ttl" || name == "x" {
					opts[name] = int64(x.Number())
				} else {
					opts[name] = x.String()
				}
			}
			tbl[k] = opts
		}
		if len(tbl) > 0 {
			out = append(out, tbl)
		}
	}
	return out, true, nil
}

// spamModules maps amavis's spam engine modules to spam_scanners' types.
var spamModules = map[string]string{
	"Amavis::SpamControl::SpamdClient":  "spamd",
	"Amavis::SpamControl::RspamdClient": "rspamd",
	// amavis runs SpamAssassin inside its own process; amavisgo asks SpamAssassin's daemon,
	// spamd, where SpamdClient does: the same rules give the same score
	"Amavis::SpamControl::SpamAssassin": "spamd",
}

// spamEntryKeys are the TOML keys of a spam_scanners entry.
var spamEntryKeys = tomlKeys(typSpam.Elem())

// spamScanners converts @spam_scanners: [name, module, option => value, ...] each. An engine
// amavisgo lacks (ExtProg's DSPAM, CRM114, bogofilter) changes the score mail gets: while
// spam checking is on it is refused unless allow_unimplemented.
func (c *converter) spamScanners(vs []Value) (any, bool, error) {
	out := []any{}
	for i, v := range vs {
		if !v.Defined() {
			continue
		}
		if v.Kind != ArrayRef || len(v.A.E) < 2 {
			return nil, false, c.errf("spam_scanners entry %d: want [name, module, option => value, ...]", i+1)
		}
		name, module := v.A.E[0].String(), v.A.E[1].String()
		typ, ok := spamModules[module]
		if !ok {
			msg := fmt.Sprintf("spam_scanners entry %q: the engine %s is not implemented by amavisgo (SpamdClient, RspamdClient and SpamAssassin through spamd are)", name, module)
			if by, on := spamActive(c.in); on && !c.in.allow {
				return nil, false, c.errf("%s; spam checking is on (%s): remove the entry, or set allow_unimplemented = true in a TOML file to run without it", msg, by)
			}
			c.in.warn(c.pos, msg+"; the entry is left out")
			continue
		}
		ent := map[string]any{"name": name, "type": typ}
		opts := v.A.E[2:]
		if module == "Amavis::SpamControl::SpamAssassin" {
			c.in.warn(c.pos, fmt.Sprintf("spam_scanners entry %q: amavisgo does not embed SpamAssassin; it asks spamd at 127.0.0.1:783 (then [::1]:783) instead, which must run", name))
			ent["type"] = "spamd"
			opts = nil // Amavis::SpamControl::SpamAssassin's options configure the embedded engine
		}
		if len(opts)%2 != 0 {
			return nil, false, c.errf("spam_scanners entry %q: options must be pairs option => value", name)
		}
		for j := 0; j < len(opts); j += 2 {
			k, x := opts[j].String(), opts[j+1]
			if !x.Defined() {
				continue
			}
			if k == "credentials" && x.Kind == HashRef { // RspamdClient's {username, password, ...}
				for _, ck := range []string{"username", "password"} {
					if cv, ok := x.H.M[ck]; ok && cv.Defined() {
						ent[ck] = cv.String()
					}
				}
				continue
			}
			t, ok := spamEntryKeys[k]
			if !ok || k == "name" || k == "type" {
				c.in.warn(c.pos, fmt.Sprintf("spam_scanners entry %q: option %s is not implemented by amavisgo; it is ignored", name, k))
				continue
			}
			tv, ok := scalarAs(t, x)
			if !ok || x.Kind != Str && x.Kind != Num {
				return nil, false, c.errf("spam_scanners entry %q: option %s: want a plain value (%s given)", name, k, kindName(x))
			}
			ent[k] = tv
		}
		out = append(out, ent)
	}
	return out, true, nil
}

// scoreSender converts @score_sender_maps: hashes of recipient key to a list of sender
// tables whose values are points (amavis's Amavis::Lookup results). conf takes hash tables of
// senders; regular-expression tables have no place there and are left out with a warning.
func (c *converter) scoreSender(vs []Value) (any, bool, error) {
	out := []any{}
	tables, err := c.hashTables(vs, "score_sender_maps entry", "want { recipient => [ sender tables ] }")
	if err != nil {
		return nil, false, err
	}
	for _, v := range tables {
		for _, rcpt := range v.H.Keys {
			tables := v.H.M[rcpt]
			if tables.Kind == ScalarRef {
				tables = tables.R.V
			}
			list := []Value{tables}
			if tables.Kind == ArrayRef {
				list = tables.A.E
			}
			senders := map[string]any{}
			for _, t := range list {
				if t.Kind == ScalarRef {
					t = t.R.V
				}
				switch t.Kind {
				case Undef:
				case HashRef:
					// the first table that knows a sender gives its points, as in amavis
					for _, s := range t.H.Keys {
						k := strings.ToLower(s)
						if _, seen := senders[k]; !seen {
							senders[k] = t.H.M[s].Number()
						}
					}
				case ReList, Regexp:
					n := 1
					if t.Kind == ReList {
						n = len(t.A.E)
					}
					c.in.warn(c.pos, fmt.Sprintf("score_sender_maps: recipient %q: a regular-expression table of senders is not implemented by amavisgo; its %d rules are ignored", rcpt, n))
				default:
					return nil, false, c.errf("score_sender_maps: recipient %q: a sender table must be a hash or new_RE(...), found a %s", rcpt, kindName(t))
				}
			}
			if len(senders) > 0 {
				out = append(out, map[string]any{"recipients": []any{rcpt}, "senders": senders})
			}
		}
	}
	return out, true, nil
}

// dkimKeyCall is one dkim_key(domain, selector, key_file, tag => value, ...) call.
type dkimKeyCall struct {
	pos  Pos
	idx  int // the file's place in Load's list
	args []Value
}

// dkimKeys converts the dkim_key() calls into [[dkim_key]] entries.
func (in *Interp) dkimKeys() ([]any, error) {
	out := []any{}
	for _, k := range in.dkimCalls {
		a := k.args
		if len(a) < 3 || len(a)%2 == 0 {
			return nil, &Error{Pos: k.pos, Msg: "dkim_key: want (domain, selector, key file, tag => value, ...)"}
		}
		if a[2].Kind != Str {
			return nil, &Error{Pos: k.pos, Msg: "dkim_key: the key must be the name of a PEM file"}
		}
		ent := map[string]any{"domain": a[0].String(), "selector": a[1].String(), "key_file": a[2].S}
		if len(a) > 3 {
			opts := map[string]any{}
			for j := 3; j+1 < len(a); j += 2 {
				opts[a[j].String()] = a[j+1].String()
			}
			ent["options"] = opts
		}
		out = append(out, ent)
	}
	return out, nil
}

// hashTables are the defined entries of a list whose entries must each be a hash (a \%x
// reference is read through); what and want word the error for the first that is not.
func (c *converter) hashTables(vs []Value, what, want string) ([]Value, error) {
	var out []Value
	for i, v := range vs {
		switch v = v.deref(); v.Kind {
		case Undef:
		case HashRef:
			out = append(out, v)
		default:
			return nil, c.errf("%s %d: %s, found a %s", what, i+1, want, kindName(v))
		}
	}
	return out, nil
}
