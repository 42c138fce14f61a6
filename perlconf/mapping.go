package perlconf

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"amavisgo/conf"
	"amavisgo/lookup"
	"amavisgo/scanners"
	"amavisgo/spam"
)

// conversion says how a Perl value becomes the TOML value of a conf key.
type conversion int

const (
	cStr      conversion = iota
	cOptStr              // *string: undef leaves the key out
	cTemplate            // a template: the file read_text/read_l10n_templates read
	cInt
	cFloat
	cBool
	cDestiny
	cSockets
	cStrList // a list, or a scalar holding one value or an array reference
	cPath    // $path: a colon-separated string
	cIPList
	cMaps
	cAddrMap
	cBoolMaps // @warnvirusrecip_maps: per-recipient in amavis, one boolean here
	cBannedRules
	cClientIP
	cFakeSender
	cScanners
	cStrMap
	cBoolMap
	cOptFloat // *float64: undef leaves the key out (a spam level that never triggers)
	cIntMap
	cNumOrStr     // partition_tag
	cDSNs         // @lookup_sql_dsn: [dsn, user, password] or a DSN
	cTable        // a hash of named parameters ($default_ldap)
	cDKIMOptions  // @dkim_signature_options_bysender_maps
	cSpamScanners // @spam_scanners
	cScoreSender  // @score_sender_maps
	cNone         // a conf type the reader cannot produce yet: set the key in a TOML file
)

// binding ties an amavis variable to a conf key.
type binding struct {
	key  string
	conv conversion
	bank bool
	typ  reflect.Type // the conf field's type (cTable reads its keys)
}

// amavisName gives the amavis variable behind a conf key when it is not the key with the
// sigil its type suggests.
var amavisName = map[string]string{
	"virus_admin":              "@virus_admin_maps",
	"banned_admin":             "@banned_admin_maps",
	"bad_header_admin":         "@bad_header_admin_maps",
	"spam_admin":               "@spam_admin_maps",
	"newvirus_admin":           "@newvirus_admin_maps",
	"virus_quarantine_to":      "@virus_quarantine_to_maps",
	"banned_quarantine_to":     "@banned_quarantine_to_maps",
	"unchecked_quarantine_to":  "@unchecked_quarantine_to_maps",
	"spam_quarantine_to":       "@spam_quarantine_to_maps",
	"bad_header_quarantine_to": "@bad_header_quarantine_to_maps",
	"clean_quarantine_to":      "@clean_quarantine_to_maps",
	"archive_quarantine_to":    "@archive_quarantine_to_maps",
	"warnvirusrecip":           "@warnvirusrecip_maps",
	"warnbannedrecip":          "@warnbannedrecip_maps",
	"warnbadhrecip":            "@warnbadhrecip_maps",
	"DO_SYSLOG":                "$do_syslog",
	"LOGFILE":                  "$logfile",
	"inet_socket_port":         "$inet_socket_port",
	"inet_socket_bind":         "$inet_socket_bind",
	"path":                     "$path",
	"av_scanners":              "@av_scanners",
	"av_scanners_backup":       "@av_scanners_backup",
}

// aliasOf maps the second name of an Amavis::Conf typeglob alias to the first.
var aliasOf = map[string]string{
	"%final_destiny_by_ccat": "%final_destiny_maps_by_ccat",
	"%defang_by_ccat":        "%defang_maps_by_ccat",
	"$sql_partition_tag":     "$partition_tag",
	"$DO_SYSLOG":             "$do_syslog",
	"$LOGFILE":               "$logfile",
}

func canonical(name string) string {
	if a, ok := aliasOf[name]; ok {
		return a
	}
	return name
}

var typSpam = reflect.TypeOf([]spam.Entry(nil))

// typeConv is the conversion, and the sigil amavis's variable has, of conf's own types.
var typeConv = map[reflect.Type]struct {
	conv conversion
	sig  string
}{
	reflect.TypeOf(conf.Destiny(0)):            {cDestiny, "$"},
	reflect.TypeOf(conf.Sockets(nil)):          {cSockets, "$"},
	reflect.TypeOf(lookup.IPList{}):            {cIPList, "@"},
	reflect.TypeOf(lookup.Maps{}):              {cMaps, "@"},
	reflect.TypeOf(conf.AddrMap{}):             {cAddrMap, "$"},
	reflect.TypeOf(conf.ClientIPPolicies(nil)): {cClientIP, "@"},
	reflect.TypeOf(conf.FakeSenderRules{}):     {cFakeSender, "@"},
	reflect.TypeOf([]scanners.Entry(nil)):      {cScanners, "@"},
	reflect.TypeOf([]conf.SQLDSN(nil)):         {cDSNs, "@"},
	reflect.TypeOf(conf.LDAPParams{}):          {cTable, "$"},
	reflect.TypeOf(conf.DKIMOptionsMaps(nil)):  {cDKIMOptions, "@"},
	typSpam: {cSpamScanners, "@"},
	reflect.TypeOf(conf.ScoreSenderMaps(nil)): {cScoreSender, "@"},
	reflect.TypeOf((*float64)(nil)):           {cOptFloat, "$"},
}

// bindings maps every amavis variable conf implements (with its sigil) to its key; built from
// conf's struct tags, so a key added to conf is read from Perl at once.
var bindings = func() map[string]binding {
	out := map[string]binding{}
	var walk func(t reflect.Type, bank bool)
	walk = func(t reflect.Type, bank bool) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if f.Anonymous && tag == "" {
				walk(f.Type, bank || f.Type == reflect.TypeOf(conf.Policy{}))
				continue
			}
			if tag == "" || tag == "-" || !f.IsExported() || tag == "policy_bank" {
				continue
			}
			b := binding{key: tag, bank: bank, typ: f.Type}
			sig := "$"
			tc, own := typeConv[f.Type]
			switch {
			case own:
				b.conv, sig = tc.conv, tc.sig
			case f.Type.Kind() == reflect.Interface:
				b.conv = cNumOrStr
			case f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Int:
				b.conv, sig = cIntMap, "%"
			case tag == "banned_rules":
				b.conv, sig = cBannedRules, "%"
			case tag == "path":
				b.conv = cPath
			case f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.Bool:
				b.conv, sig = cBoolMap, "%"
			case f.Type.Kind() == reflect.Map:
				b.conv, sig = cStrMap, "%"
			case f.Type.Kind() == reflect.Slice:
				b.conv, sig = cStrList, "@"
			case f.Type.Kind() == reflect.Pointer:
				b.conv = cOptStr
			case f.Type.Kind() == reflect.String && strings.HasSuffix(tag, "_templ"):
				b.conv = cTemplate
			case f.Type.Kind() == reflect.String:
				b.conv = cStr
			case f.Type.Kind() == reflect.Bool:
				b.conv = cBool
			case f.Type.Kind() == reflect.Float64:
				b.conv = cFloat
			case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Uint64:
				b.conv = cInt
			default:
				b.conv = cNone
			}
			name := sig + tag
			if n, ok := amavisName[tag]; ok {
				name = n
			}
			if strings.HasSuffix(name, "recip_maps") && b.conv == cBool {
				b.conv = cBoolMaps
			}
			if b.conv == cAddrMap && name[0] == '$' {
				name = "@" + tag + "_maps"
			}
			if _, ok := declared[name]; !ok {
				continue // a key of amavisgo's own (allow_run_as_root, ...)
			}
			out[name] = b
		}
	}
	walk(reflect.TypeOf(conf.Config{}), false)
	// the first rule set of banned_rules: supply_after_defaults puts $banned_filename_re there
	out["$banned_filename_re"] = binding{key: "banned_rules", conv: cBannedRules, bank: true}
	return out
}()

// bankBindings maps a policy bank's keys (variable names without sigil) to conf keys.
var bankBindings = func() map[string]binding {
	out := map[string]binding{}
	for name, b := range bindings {
		if b.bank && name != "$banned_filename_re" {
			out[name[1:]] = b
		}
	}
	return out
}()

// converter turns evaluated values into TOML values, collecting errors with positions.
type converter struct {
	in  *Interp
	pos Pos // where the value was assigned, for errors
}

func (c *converter) errf(format string, args ...any) error {
	return &Error{Pos: c.pos, Msg: fmt.Sprintf(format, args...)}
}

// scalarTOML converts a plain scalar: a whole number stays a number, anything else a string.
func scalarTOML(v Value) any {
	if v.Kind == Num {
		if v.N == float64(int64(v.N)) {
			return int64(v.N)
		}
		return v.N
	}
	return v.String()
}

// listOf gives the elements of a list-valued setting: an array variable's elements, or the
// elements of an array reference held by a scalar, or the scalar itself.
func listOf(v []Value) []Value {
	if len(v) == 1 && v[0].Kind == ArrayRef {
		return v[0].A.E
	}
	return v
}

// listConv are the conversions of array variables: they take all the elements.
var listConv = map[conversion]bool{
	cMaps: true, cIPList: true, cStrList: true, cClientIP: true, cFakeSender: true, cScanners: true,
	cAddrMap: true, cBoolMaps: true, cDSNs: true, cDKIMOptions: true, cSpamScanners: true, cScoreSender: true,
}

// convert builds the TOML value of key from the variable's value (vs: the array's elements
// for an array variable, the one value otherwise). ok is false when the key stays at its default.
func (c *converter) convert(b binding, vs []Value, isArray bool) (any, bool, error) {
	var v Value
	if len(vs) > 0 {
		v = vs[0]
	}
	if isArray && !listConv[b.conv] {
		if len(vs) == 0 {
			v = undef()
		} else {
			v = vs[len(vs)-1]
		}
	}
	switch b.conv {
	case cStr:
		if v.Kind != Str && v.Kind != Num && v.Kind != Undef {
			return nil, false, c.errf("%s must be a string, found a %s", b.key, kindName(v))
		}
		return v.String(), true, nil
	case cOptStr:
		if !v.Defined() {
			return nil, false, nil
		}
		return v.String(), true, nil
	case cTemplate:
		if !v.Defined() || v.String() == "" {
			return "", true, nil
		}
		if v.File == "" {
			return nil, false, c.errf("%s holds template text; amavisgo reads templates from files: put the text in a file and write %s = read_text('FILE')", b.key, b.key)
		}
		return v.File, true, nil
	case cInt:
		return int64(v.Number()), true, nil
	case cFloat:
		return v.Number(), true, nil
	case cBool:
		return v.Truth(), true, nil
	case cDestiny:
		return int64(v.Number()), true, nil
	case cSockets, cStrList, cIPList:
		var items []Value
		if isArray {
			items = vs
		} else if v.Kind == ArrayRef {
			items = v.A.E
		} else if v.Defined() {
			items = []Value{v}
		}
		out := []any{}
		for _, it := range items {
			if it.Kind == ArrayRef {
				for _, x := range it.A.E {
					out = append(out, x.String())
				}
				continue
			}
			out = append(out, it.String())
		}
		return out, true, nil
	case cPath:
		out := []any{}
		for _, d := range strings.Split(v.String(), ":") {
			if d != "" {
				out = append(out, d)
			}
		}
		return out, true, nil
	case cMaps:
		if !isArray {
			vs = []Value{v}
		}
		return c.maps(vs)
	case cAddrMap:
		if !isArray {
			vs = []Value{v}
		}
		return c.addrMap(vs)
	case cBoolMaps:
		if !isArray {
			vs = []Value{v}
		}
		for _, x := range vs {
			if x.Kind == ScalarRef {
				x = x.R.V
			}
			if !x.Defined() {
				continue
			}
			if x.Kind == HashRef || x.Kind == ArrayRef || x.Kind == ReList {
				return nil, false, c.errf("%s: a per-recipient lookup table is not supported here, only one value for everyone", b.key)
			}
			return x.Truth(), true, nil
		}
		return false, true, nil
	case cStrMap, cBoolMap, cIntMap:
		if v.Kind != HashRef {
			return nil, false, c.errf("%s must be a hash", b.key)
		}
		out := map[string]any{}
		for _, k := range v.H.Keys {
			x := v.H.M[k]
			if x.Kind == ScalarRef { // %sql_clause's values may refer to $sql_select_policy
				x = x.R.V
			}
			switch b.conv {
			case cBoolMap:
				out[k] = x.Truth()
			case cIntMap:
				// amavis looks header field names up in lower case (Amavis::DKIM)
				out[strings.ToLower(k)] = int64(x.Number())
			default:
				if b.key == "sql_clause" && !c.sqlClause(k) {
					continue
				}
				out[k] = x.String()
			}
		}
		return out, true, nil
	case cOptFloat:
		if !v.Defined() {
			return nil, false, nil
		}
		return v.Number(), true, nil
	case cNumOrStr:
		switch v.Kind {
		case Undef:
			return nil, false, nil
		case Str:
			return v.S, true, nil
		case Num:
			if v.N == float64(int64(v.N)) {
				return int64(v.N), true, nil
			}
			return v.String(), true, nil
		}
		return nil, false, c.errf("%s must be a number or a string, found a %s (amavis's code form is not taken)", b.key, kindName(v))
	case cDSNs:
		if !isArray {
			vs = listOf([]Value{v})
		}
		return c.dsns(b.key, vs)
	case cTable:
		return c.table(b, v)
	case cDKIMOptions:
		if !isArray {
			vs = listOf([]Value{v})
		}
		return c.dkimOptions(vs)
	case cSpamScanners:
		if !isArray {
			vs = listOf([]Value{v})
		}
		return c.spamScanners(vs)
	case cScoreSender:
		if !isArray {
			vs = listOf([]Value{v})
		}
		return c.scoreSender(vs)
	case cClientIP:
		if !isArray {
			vs = listOf([]Value{v})
		}
		out := []any{}
		for i := 0; i+1 < len(vs); i += 2 {
			ips := []any{}
			t := vs[i]
			if t.Kind == ScalarRef {
				t = t.R.V
			}
			switch t.Kind {
			case ArrayRef:
				for _, x := range t.A.E {
					ips = append(ips, x.String())
				}
			case HashRef:
				for _, k := range t.H.Keys {
					if t.H.M[k].Truth() {
						ips = append(ips, k)
					} else {
						ips = append(ips, "!"+k)
					}
				}
			default:
				return nil, false, c.errf("client_ipaddr_policy: entry %d must be a list of IP addresses or networks", i/2+1)
			}
			out = append(out, []any{ips, vs[i+1].String()})
		}
		return out, true, nil
	case cFakeSender:
		if !isArray {
			vs = listOf([]Value{v})
		}
		return c.fakeSender(vs)
	case cScanners:
		if !isArray {
			vs = listOf([]Value{v})
		}
		return c.scannerList(vs)
	}
	return nil, false, c.errf("%s cannot be read from a Perl configuration yet: set %s in a TOML file given after the Perl ones", b.key, b.key)
}

func kindName(v Value) string {
	switch v.Kind {
	case ArrayRef:
		return "array reference"
	case HashRef:
		return "hash reference"
	case ScalarRef:
		return "scalar reference"
	case CodeRef:
		return "code reference"
	case Regexp:
		return "regular expression"
	case ReList:
		return "new_RE list"
	}
	return "scalar"
}

// qrLiteral writes a regexp as a Perl literal that perlre.Compile reads back with its flags.
func qrLiteral(v Value) string {
	for _, d := range []string{"/", "{}", "!", "|", "#", "'", "%", ",", "~", ";", "@"} {
		o, cl := d[:1], d[len(d)-1:]
		if !strings.Contains(v.S, o) && !strings.Contains(v.S, cl) {
			return "qr" + o + v.S + cl + strings.Trim(v.Flags, "pn")
		}
	}
	return "(?" + strings.Trim(v.Flags, "pn") + ")" + v.S
}

// inlineFlags writes a regexp as a pattern with inline modifiers (for plain regexp2 patterns).
func inlineFlags(v Value) string {
	f := strings.Trim(v.Flags, "pn")
	if f == "" {
		return v.S
	}
	return "(?" + f + ")" + v.S
}

// regexpRules converts a new_RE list or one qr into regexp table rules.
func (c *converter) regexpRules(v Value) ([]any, error) {
	var items []Value
	if v.Kind == ReList {
		items = v.A.E
	} else {
		items = []Value{v}
	}
	rules := []any{}
	for _, it := range items {
		switch it.Kind {
		case Regexp:
			rules = append(rules, qrLiteral(it))
		case ArrayRef:
			if len(it.A.E) != 2 || it.A.E[0].Kind != Regexp && it.A.E[0].Kind != Str {
				return nil, c.errf("new_RE: an entry must be a qr or [qr, value]")
			}
			re := it.A.E[0]
			if re.Kind == Str {
				re = Value{Kind: Regexp, S: re.S}
			}
			val := it.A.E[1]
			if !val.Defined() {
				rules = append(rules, []any{qrLiteral(re), ""})
				continue
			}
			rules = append(rules, []any{qrLiteral(re), scalarTOML(val)})
		default:
			return nil, c.errf("new_RE: an entry must be a qr or [qr, value], found a %s", kindName(it))
		}
	}
	return rules, nil
}

// maps converts a list of lookup tables (amavis's @..._maps).
func (c *converter) maps(vs []Value) (any, bool, error) {
	out := []any{}
	for _, v := range vs {
		v = v.deref()
		switch v.Kind {
		case Undef:
		case Str, Num:
			out = append(out, map[string]any{"constant": scalarTOML(v)})
		case HashRef:
			if len(v.H.Keys) == 0 {
				continue // an empty table answers nothing
			}
			h := map[string]any{}
			for _, k := range v.H.Keys {
				x := v.H.M[k]
				if x.Kind != Str && x.Kind != Num && x.Kind != Undef {
					return nil, false, c.errf("hash lookup table: the value of %q is a %s; only plain values are supported", k, kindName(x))
				}
				if !x.Defined() {
					h[k] = ""
					continue
				}
				h[k] = scalarTOML(x)
			}
			out = append(out, map[string]any{"hash": h})
		case ArrayRef:
			if len(v.A.E) == 0 {
				continue
			}
			acl := []any{}
			for _, x := range v.A.E {
				acl = append(acl, x.String())
			}
			out = append(out, map[string]any{"acl": acl})
		case Regexp, ReList:
			rules, err := c.regexpRules(v)
			if err != nil {
				return nil, false, err
			}
			out = append(out, map[string]any{"regexp": rules})
		case CodeRef:
			return nil, false, c.errf("unsupported Perl: a sub { ... } as a lookup table would run Perl code for each message; write a hash { 'address' => value }, an ACL [ '.domain', ... ] or new_RE(qr'...')")
		default:
			return nil, false, c.errf("a lookup table cannot be a %s (SQL and LDAP lookups are not implemented)", kindName(v))
		}
	}
	return out, true, nil
}

// addrMap converts @virus_admin_maps and its kind (a hash per recipient, then one value).
func (c *converter) addrMap(vs []Value) (any, bool, error) {
	table := map[string]any{}
	var def Value
	haveDef := false
	for _, v := range vs {
		v = v.deref()
		switch v.Kind {
		case Undef:
		case Str, Num:
			if !haveDef {
				def, haveDef = v, true
			}
		case HashRef:
			for _, k := range v.H.Keys {
				if _, ok := table[k]; !ok && !haveDef {
					table[strings.ToLower(k)] = v.H.M[k].String()
				}
			}
		default:
			return nil, false, c.errf("a per-recipient address setting cannot be a %s here", kindName(v))
		}
	}
	if len(table) == 0 {
		if !haveDef {
			return "", true, nil
		}
		return def.String(), true, nil
	}
	if haveDef {
		if _, ok := table["."]; !ok {
			table["."] = def.String()
		}
	}
	return table, true, nil
}

func (c *converter) fakeSender(vs []Value) (any, bool, error) {
	out := []any{}
	for _, v := range vs {
		v = v.deref()
		switch v.Kind {
		case Undef:
		case Str, Num:
			out = append(out, []any{"", v.Truth()})
		case Regexp:
			out = append(out, []any{inlineFlags(v), true})
		case ReList:
			for _, it := range v.A.E {
				switch {
				case it.Kind == Regexp:
					out = append(out, []any{inlineFlags(it), true})
				case it.Kind == ArrayRef && len(it.A.E) == 2 && it.A.E[0].Kind == Regexp:
					out = append(out, []any{inlineFlags(it.A.E[0]), it.A.E[1].Truth()})
				default:
					return nil, false, c.errf("viruses_that_fake_sender_maps: an entry must be a qr or [qr, value]")
				}
			}
		default:
			return nil, false, c.errf("viruses_that_fake_sender_maps: a %s is not supported here", kindName(v))
		}
	}
	return out, true, nil
}

// scannerList converts @av_scanners entries (Amavis::AV's
// [name, program or \&ask_daemon, args, clean, infected, names, ...]).
func (c *converter) scannerList(vs []Value) (any, bool, error) {
	out := []any{}
	for i, v := range vs {
		if !v.Defined() {
			continue
		}
		if v.Kind != ArrayRef || len(v.A.E) < 3 {
			return nil, false, c.errf("av_scanners entry %d: want [name, program, arguments, ...]", i+1)
		}
		e := v.A.E
		get := func(j int) Value {
			if j < len(e) {
				return e[j]
			}
			return undef()
		}
		ent := map[string]any{"name": get(0).String()}
		prog, args := get(1), get(2)
		switch prog.Kind {
		case CodeRef:
			if prog.Flags == "sub" || (prog.S != "ask_daemon" && prog.S != "ask_clamav" && prog.S != "ask_av") {
				return nil, false, c.errf("av_scanners entry %q: the scanner interface %s is not supported; use \\&ask_daemon for clamd or a command-line scanner", get(0).String(), prog.S)
			}
			if args.Kind != ArrayRef || len(args.A.E) < 2 {
				return nil, false, c.errf("av_scanners entry %q: \\&%s needs [query, socket]", get(0).String(), prog.S)
			}
			query := args.A.E[0].String()
			if !clamdQuery(query) {
				c.in.warn(c.pos, fmt.Sprintf("av_scanners entry %q speaks a daemon protocol amavisgo does not implement (query %q); the entry is left out", get(0).String(), query))
				continue
			}
			if strings.HasPrefix(query, "SCAN ") {
				// clamd's SCAN stops at the first virus, CONTSCAN goes on: the verdict is the same
				c.in.warn(c.pos, fmt.Sprintf("av_scanners entry %q: clamd's SCAN is done as CONTSCAN (the same verdict, possibly more virus names)", get(0).String()))
				query = "CONTSCAN" + strings.TrimPrefix(query, "SCAN")
			}
			socks := []any{}
			if s := args.A.E[1]; s.Kind == ArrayRef {
				for _, x := range s.A.E {
					socks = append(socks, x.String())
				}
			} else {
				socks = append(socks, s.String())
			}
			ent["type"] = "clamd"
			ent["sockets"] = socks
			if query == "*" {
				query = "INSTREAM"
			}
			ent["query"] = query
		case Str:
			ent["type"] = "command"
			alts := []any{}
			for _, a := range strings.Split(prog.S, ",") {
				if a = strings.TrimSpace(a); a != "" {
					alts = append(alts, a)
				}
			}
			ent["command"] = alts
			ent["args"] = args.String()
		case ArrayRef:
			ent["type"] = "command"
			alts := []any{}
			for _, a := range prog.A.E {
				alts = append(alts, a.String())
			}
			ent["command"] = alts
			ent["args"] = args.String()
		default:
			return nil, false, c.errf("av_scanners entry %q: the program must be a name or \\&ask_daemon", get(0).String())
		}
		for j, kind := range []string{"clean", "infected"} {
			x := get(3 + j)
			switch x.Kind {
			case Undef:
			case ArrayRef:
				codes := []any{}
				for _, n := range x.A.E {
					codes = append(codes, int64(n.Number()))
				}
				ent[kind+"_codes"] = codes
			case Regexp:
				ent[kind+"_pattern"] = qrLiteral(x)
			case Num, Str:
				ent[kind+"_codes"] = []any{int64(x.Number())}
			default:
				return nil, false, c.errf("av_scanners entry %q: the %s criterion must be exit codes or a qr", get(0).String(), kind)
			}
		}
		if x := get(5); x.Kind == Regexp {
			ent["names_pattern"] = qrLiteral(x)
		}
		for j := 6; j < len(e); j++ {
			if e[j].Defined() {
				c.in.warn(c.pos, fmt.Sprintf("av_scanners entry %q: elements after the virus-name pattern (hooks, options) are not used", get(0).String()))
				break
			}
		}
		out = append(out, ent)
	}
	return out, true, nil
}

// clamdQuery reports whether an ask_daemon query is clamd's protocol.
func clamdQuery(q string) bool {
	for _, p := range []string{"CONTSCAN", "MULTISCAN", "SCAN ", "INSTREAM", "*", "zCONTSCAN", "nCONTSCAN"} {
		if strings.HasPrefix(q, p) {
			return true
		}
	}
	return false
}

// bannedRules converts %banned_rules (and $banned_filename_re, amavis's DEFAULT set).
func (c *converter) bannedRules(h *Hash, deflt Value) (map[string]any, error) {
	out := map[string]any{}
	if deflt.Defined() {
		rules, err := c.regexpRules(deflt)
		if err != nil {
			return nil, err
		}
		out["DEFAULT"] = rules
	}
	if h == nil {
		return out, nil
	}
	names := sortedKeys(h)
	for _, k := range names {
		v := h.M[k]
		if !v.Defined() {
			continue
		}
		if v.Kind != ReList && v.Kind != Regexp {
			return nil, c.errf("banned_rules{%s}: want new_RE(...) or a qr", k)
		}
		rules, err := c.regexpRules(v)
		if err != nil {
			return nil, err
		}
		out[k] = rules
	}
	return out, nil
}

// sortedNames returns a map's keys in order.
func sortedNames[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
