package lookup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// A Maps is an amavis *_maps setting: an ordered list of lookup tables. A lookup asks each
// table in turn; the first table that gives a defined answer wins.
//
// In TOML each table is one [[name]] entry, tried in the order written:
//
//	# hash: the keys amavis tries for an address, most specific first:
//	# user+ext@domain, user@domain, user+ext@, user@, domain, .domain, .parent, "."
//	[[bypass_virus_checks_maps]]
//	hash = { "boss@example.com" = false, "user@" = true, ".example.net" = true }
//
//	# acl: the first matching entry decides; "!" negates; "user@domain", "domain" (exact),
//	# ".domain" (the domain and its subdomains), "." (everything)
//	[[bypass_virus_checks_maps]]
//	acl = ["!virus-lover@example.org", ".example.org"]
//
//	# regexp: Perl regexps against the raw address, the first match wins; a rule is a
//	# pattern (value true) or [pattern, value]; $1.. in a string value are the groups
//	[[bypass_virus_checks_maps]]
//	regexp = ['(?i)^postmaster@', ['^(.*)\+spam@example\.com$', "$1"]]
//
//	# files in amavis's read_hash and read_array formats
//	[[bypass_virus_checks_maps]]
//	hash_file = "/etc/amavis/bypass.hash"
//	[[bypass_virus_checks_maps]]
//	acl_file = "/etc/amavis/bypass.acl"
//
//	# a constant answers every lookup
//	[[bypass_virus_checks_maps]]
//	constant = false
//
// Lists of constants need no tables: bypass_virus_checks_maps = [true], or a single bare
// value, banned_filename_maps = "DEFAULT". A table may also be written on one line as
// ["kind", body]: local_domains_maps = [["acl", [".example.com"]], false], with a hash as
// ["hash", [["user@", true], [".example.net", true]]]. The inline-table form
// virus_lovers_maps = [{ acl = [".example.com"] }] decodes to the same, where the loader
// accepts keys inside inline tables of a custom type.
type Maps struct {
	tables []Table
}

// Table is one lookup table of a Maps.
type Table interface {
	// Lookup answers for an address; found is false when the table does not know it.
	Lookup(addr string, o Options) (v Value, key string, found bool)
}

// Value is what a lookup yields: a bool, int64, float64 or string, as written in TOML.
type Value any

// NewMaps builds a Maps from tables (for defaults and tests).
func NewMaps(tables ...Table) Maps { return Maps{tables: tables} }

// Const is a constant table.
func Const(v Value) Table { return constTable{v} }

// Constants returns the values of the constant tables (for configuration checks).
func (m Maps) Constants() []Value {
	var out []Value
	for _, t := range m.tables {
		if c, ok := t.(constTable); ok {
			out = append(out, c.v)
		}
	}
	return out
}

// Len is the number of tables.
func (m Maps) Len() int { return len(m.tables) }

// Lookup returns the first defined answer for addr, with the key that matched.
func (m Maps) Lookup(addr string, o Options) (v Value, key string, found bool) {
	for _, t := range m.tables {
		if v, key, found = t.Lookup(addr, o); found {
			return v, key, true
		}
	}
	return nil, "", false
}

// LookupAll returns the answers of every table that knows addr, in table order (amavis's
// lookup with get_all, used by banned_filename_maps).
func (m Maps) LookupAll(addr string, o Options) []Value {
	var out []Value
	for _, t := range m.tables {
		if v, _, found := t.Lookup(addr, o); found {
			out = append(out, v)
		}
	}
	return out
}

// Bool is Lookup reduced to Perl's truth: no answer, false, 0, "" and "0" are false.
func (m Maps) Bool(addr string, o Options) bool {
	v, _, _ := m.Lookup(addr, o)
	return Truthy(v)
}

// Truthy is Perl's notion of a true value.
func Truthy(v Value) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != "" && x != "0"
	}
	return true
}

// String renders a value as Perl would print it (true 1, false "").
func String(v Value) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		if x {
			return "1"
		}
		return ""
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// Number converts a value to a number as Perl would (a leading numeric prefix of a string).
func Number(v Value) (float64, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

type constTable struct{ v Value }

func (c constTable) Lookup(string, Options) (Value, string, bool) {
	return c.v, "(constant:" + String(c.v) + ")", true
}

// HashTable is amavis's hash lookup: the keys of QueryKeys are tried in order.
type HashTable map[string]Value

// Lookup implements Table; string values get $1..$5 replaced (address, local part, user,
// extension, domain).
func (h HashTable) Lookup(addr string, o Options) (Value, string, bool) {
	if len(h) == 0 {
		return nil, "", false
	}
	keys, rhs := QueryKeys(addr, o)
	for _, k := range keys {
		if v, ok := h[k]; ok {
			if s, ok := v.(string); ok {
				v = substitute(s, rhs[:])
			}
			return v, k, true
		}
	}
	return nil, "", false
}

// ACL is amavis's list lookup: entries "user@domain", "domain", ".domain", "." with "!"
// negation; the first matching entry decides; no match is no answer.
type ACL []string

// Lookup implements Table.
func (a ACL) Lookup(addr string, o Options) (Value, string, bool) {
	local, domain := SplitAddress(addr)
	if !o.LocalpartCaseSensitive {
		local = strings.ToLower(local)
	}
	domain = normDomain(domain)
	for _, e := range a {
		key := e
		result := true
		bangs := len(key) - len(strings.TrimLeft(key, "!"))
		key = key[bangs:]
		if bangs%2 == 1 {
			result = false
		}
		found := false
		if i := strings.LastIndexByte(key, '@'); i >= 0 {
			kl := key[:i]
			if !o.LocalpartCaseSensitive {
				kl = strings.ToLower(kl)
			}
			found = local == kl && domain == strings.ToLower(key[i+1:])
		} else if strings.HasPrefix(key, ".") {
			kt := strings.ToLower(key[1:])
			found = domain == kt || kt == "" || strings.HasSuffix(domain, "."+kt)
		} else {
			found = domain == strings.ToLower(key)
		}
		if found {
			return result, e, true
		}
	}
	return nil, "", false
}

// UnmarshalTOML decodes an array of tables, or a single bare value (a constant).
func (m *Maps) UnmarshalTOML(v any) error {
	if aot, ok := v.([]map[string]any); ok { // [[name]] array-of-tables syntax
		arr := make([]any, len(aot))
		for i, t := range aot {
			arr[i] = t
		}
		v = arr
	}
	arr, ok := v.([]any)
	if !ok {
		t, err := decodeTable(v)
		if err != nil {
			return err
		}
		*m = Maps{tables: []Table{t}}
		return nil
	}
	out := Maps{}
	for i, x := range arr {
		t, err := decodeTable(x)
		if err != nil {
			return fmt.Errorf("table %d: %w", i+1, err)
		}
		out.tables = append(out.tables, t)
	}
	*m = out
	return nil
}

// decodeTable decodes one element of a Maps array.
func decodeTable(v any) (Table, error) {
	switch x := v.(type) {
	case bool, int64, float64, string:
		return constTable{x}, nil
	case []any:
		return decodePair(x)
	case map[string]any:
		if len(x) != 1 {
			return nil, fmt.Errorf("a lookup table needs exactly one of hash, acl, regexp, hash_file, acl_file, constant; found %d keys", len(x))
		}
		for kind, body := range x {
			switch kind {
			case "constant":
				if _, ok := scalar(body); !ok {
					return nil, fmt.Errorf("constant: want a boolean, number or string")
				}
				return constTable{body}, nil
			case "hash":
				tbl, ok := body.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("hash: want a table of address = value")
				}
				h := make(HashTable, len(tbl))
				for k, val := range tbl {
					if _, ok := scalar(val); !ok {
						return nil, fmt.Errorf("hash: key %q: want a boolean, number or string", k)
					}
					// amavis's query keys are lower-case, so a key written in capitals could
					// never match
					h[strings.ToLower(k)] = val
				}
				return h, nil
			case "acl":
				list, err := strings1(body)
				if err != nil {
					return nil, fmt.Errorf("acl: %w", err)
				}
				return ACL(list), nil
			case "regexp":
				return decodeRegexpTable(body)
			case "hash_file":
				name, ok := body.(string)
				if !ok {
					return nil, fmt.Errorf("hash_file: want a file name")
				}
				return ReadHash(name)
			case "acl_file":
				name, ok := body.(string)
				if !ok {
					return nil, fmt.Errorf("acl_file: want a file name")
				}
				return ReadArray(name)
			default:
				return nil, fmt.Errorf("unknown lookup table kind %q (hash, acl, regexp, hash_file, acl_file, constant)", kind)
			}
		}
	}
	return nil, fmt.Errorf("a lookup table must be a value or a table such as { hash = {...} }, found %T", v)
}

// decodePair decodes the table-free form of a table: ["acl", [...]], ["regexp", [...]],
// ["hash", [[key, value], ...]], ["constant", value], ["hash_file", name], ["acl_file", name].
func decodePair(x []any) (Table, error) {
	kind, ok := "", len(x) == 2
	if ok {
		kind, ok = x[0].(string)
	}
	if !ok {
		return nil, fmt.Errorf(`a lookup table in array form is ["kind", body], e.g. ["acl", [".example.com"]]`)
	}
	if kind != "hash" {
		return decodeTable(map[string]any{kind: x[1]})
	}
	pairs, ok := x[1].([]any)
	if !ok {
		return nil, fmt.Errorf(`hash: want [["address", value], ...]`)
	}
	h := make(map[string]any, len(pairs))
	for _, p := range pairs {
		kv, ok := p.([]any)
		if !ok || len(kv) != 2 {
			return nil, fmt.Errorf(`hash: want [["address", value], ...]`)
		}
		k, ok := kv[0].(string)
		if !ok {
			return nil, fmt.Errorf(`hash: want [["address", value], ...]`)
		}
		h[k] = kv[1]
	}
	return decodeTable(map[string]any{"hash": h})
}

func scalar(v any) (Value, bool) {
	switch v.(type) {
	case bool, int64, float64, string:
		return v, true
	}
	return nil, false
}

func strings1(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want an array of strings")
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("want an array of strings, found %T", x)
		}
		out = append(out, s)
	}
	return out, nil
}

// maxTableFile bounds what a hash_file or acl_file may hold.
const maxTableFile = 64 << 20

// ReadHash reads a file in amavis's read_hash format: one key per line, optionally followed
// by whitespace and a value (default 1); "#" starts a comment; keys are lower-cased.
func ReadHash(name string) (HashTable, error) {
	h := HashTable{}
	err := readFile(name, func(r io.Reader) error { return parseHash(r, h) })
	return h, err
}

func parseHash(r io.Reader, h HashTable) error {
	return scanLines(r, func(line string) {
		k, val, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k == "" {
			return
		}
		if i := strings.IndexByte(k, '\t'); i >= 0 { // "key<TAB>value"
			k, val = k[:i], k[i+1:]+" "+val
		}
		val = strings.TrimSpace(val)
		if val == "" {
			h[strings.ToLower(k)] = int64(1)
			return
		}
		h[strings.ToLower(k)] = val
	})
}

// ReadArray reads a file in amavis's read_array format: whitespace-separated entries,
// "#" starts a comment.
func ReadArray(name string) (ACL, error) {
	var a ACL
	err := readFile(name, func(r io.Reader) error {
		return scanLines(r, func(line string) { a = append(a, strings.Fields(line)...) })
	})
	return a, err
}

func readFile(name string, parse func(io.Reader) error) error {
	fh, err := os.Open(name)
	if err != nil {
		return err
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil && fi.Size() > maxTableFile {
		return fmt.Errorf("%s: larger than %d bytes", name, maxTableFile)
	}
	if err := parse(io.LimitReader(fh, maxTableFile)); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// scanLines calls f with each line without its comment.
func scanLines(r io.Reader, f func(string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f(line)
	}
	return sc.Err()
}

// MarshalTOML writes the tables back in the array form, which has no inline tables and so
// reloads in any position (for showconfig).
func (m Maps) MarshalTOML() ([]byte, error) {
	parts := make([]string, 0, len(m.tables))
	for _, t := range m.tables {
		switch x := t.(type) {
		case constTable:
			parts = append(parts, quoteValue(x.v)) // a bare value: an array without tables reloads everywhere
		case HashTable:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			kv := make([]string, 0, len(keys))
			for _, k := range keys {
				kv = append(kv, fmt.Sprintf("[%q, %s]", k, quoteValue(x[k])))
			}
			parts = append(parts, `["hash", [`+strings.Join(kv, ", ")+"]]")
		case ACL:
			q := make([]string, len(x))
			for i, s := range x {
				q[i] = strconv.Quote(s)
			}
			parts = append(parts, `["acl", [`+strings.Join(q, ", ")+"]]")
		case *RegexpTable:
			parts = append(parts, `["regexp", `+x.tomlString()+"]")
		}
	}
	return []byte("[" + strings.Join(parts, ", ") + "]"), nil
}

func quoteValue(v Value) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return String(v)
}
