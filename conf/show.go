package conf

import (
	"bytes"
	"fmt"
	"io"
	"os/user"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"amavisgo/lookup"
)

// Show writes the effective configuration as TOML (`amavisd showconfig`): every setting with
// its value after defaults, after-defaults and command-line overrides, then the policy banks as
// written in the file (a bank holds only the keys it overrides). Load reads the output back to
// the same configuration: a value that would not read back as itself is shown as the file wrote
// it, and an unset one as a comment.
func (c *Config) Show(w io.Writer) error {
	var raw map[string]any
	if _, err := toml.Decode(string(c.text), &raw); err != nil {
		return c.decodeError(err)
	}
	var b strings.Builder
	b.WriteString("# amavisgo effective configuration")
	if c.File != "" {
		fmt.Fprintf(&b, " from %s", c.File)
	}
	b.WriteString("\n# amavis variable names without the sigil; see docs/amavis-variables.md\n")
	b.WriteString("\n# process-wide settings\n")
	c.showFields(&b, reflect.ValueOf(&c.Global).Elem(), raw)
	b.WriteString("\n# the base policy bank; a [policy_bank.NAME] table may override each of these\n")
	c.showFields(&b, reflect.ValueOf(&c.Policy).Elem(), raw)

	banks, _ := raw["policy_bank"].(map[string]any)
	for _, name := range sortedKeys(banks) {
		fmt.Fprintf(&b, "\n[policy_bank.%s]\n", tomlKey(name))
		bank, _ := banks[name].(map[string]any)
		for _, k := range sortedKeys(bank) {
			fmt.Fprintf(&b, "%s = %s\n", tomlKey(k), tomlValue(bank[k]))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// showFields writes one line per key of a settings struct, walking embedded groups.
func (c *Config) showFields(b *strings.Builder, v reflect.Value, raw map[string]any) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && key == "" {
			c.showFields(b, v.Field(i), raw)
			continue
		}
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map || fv.Kind() == reflect.Pointer) && fv.IsNil() {
			fmt.Fprintf(b, "# %s is not set\n", key)
			continue
		}
		text := tomlValue(fv.Interface())
		if !readsBackAs(key, text, fv) {
			rv, ok := raw[key]
			if !ok {
				fmt.Fprintf(b, "# %s = %s  (cannot be shown as TOML)\n", key, text)
				continue
			}
			text = tomlValue(rv)
		}
		fmt.Fprintf(b, "%s = %s\n", tomlKey(key), text)
	}
}

// readsBackAs reports whether "key = text" loads into a value equal to want.
func readsBackAs(key, text string, want reflect.Value) bool {
	d, err := Parse("", []byte(tomlKey(key)+" = "+text))
	if err != nil {
		return false
	}
	got := fieldByKey(reflect.ValueOf(d).Elem(), key)
	return got.IsValid() && reflect.DeepEqual(got.Interface(), want.Interface())
}

// fieldByKey finds the struct field tagged key, looking into embedded structs.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			if r := fieldByKey(v.Field(i), key); r.IsValid() {
				return r
			}
			continue
		}
		if tag == key && f.IsExported() {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var bareKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// tomlKey quotes a key when TOML needs it ("AM.PDP-SOCK").
func tomlKey(k string) string {
	if bareKeyRE.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

// KeyInfo describes one configuration key, for the migration table in the documentation.
type KeyInfo struct {
	Key     string // our TOML key
	Amavis  string // amavis's variable with its sigil ("@inet_acl"); "" when amavis has none
	Bank    bool   // a policy bank may override it
	Default string // the default as TOML text
	Note    string // how the value differs from amavis's, if it does
}

// ourOwnKeys are settings amavis does not have; each says why it exists.
var ourOwnKeys = map[string]string{
	"metrics_listen":       "amavisgo only: the Prometheus /metrics listener, off by default (amavis keeps its counters in BerkeleyDB for amavisd-agent)",
	"allow_run_as_root":    "amavisgo only: amavis always refuses to run as root; here it must be allowed explicitly",
	"dkim_key":             "amavis's dkim_key('example.com', 'sel', '/path/key.pem', tag => value) calls: one [[dkim_key]] each, with domain, selector, key_file, options",
	"sql_timeout":          "amavisgo only: seconds for connecting to a database and for each statement",
	"sql_release_peers":    `amavisgo only: myhostname = "inet:host:port" of other nodes' AM.PDP sockets, for releasing their local: quarantine`,
	"allow_unimplemented":  "amavisgo only: a Perl configuration may switch on settings amavisgo does not implement (the bounce killer, pen pals, an ExtProg spam engine); they are ignored with a warning",
	"spam_scanner_failure": `amavisgo only: "tempfail" answers 451 when a spam engine fails; amavis (and "pass") counts it as score 0`,
}

// amavisSigils are the variables whose sigil does not follow from the Go type.
var amavisSigils = map[string]string{
	"inet_socket_port": "$", // a scalar or an array reference
	"inet_socket_bind": "$",
	"path":             "$", // a colon-separated string
}

// machineDefaults are defaults that depend on the host, described instead of shown.
var machineDefaults = map[string]string{
	"myhostname": "default: this host's name",
}

// keyNotes explain the keys whose TOML form differs from the Perl one.
var keyNotes = map[string]string{
	"dkim_signature_options_bysender_maps": `tables of address = { option = value }: "example.com" = { d = "example.com", ttl = 864000 }`,
	"signed_header_fields":                 "lower-case names; keys given merge over amavis's defaults",
	"path":                                 "a list of directories, not a colon-separated string",
	"inet_socket_port":                     "a port number, a socket string, or a list of them",
	"inet_socket_bind":                     "always a list",
	"interface_policy":                     `a table: "10026" = "ORIGINATING"`,
	"daemon_group":                         "@daemon_groups is not taken: the user's own groups are added",
	"TEMPBASE":                             "empty: MYHOME",
	"pid_file":                             "empty: MYHOME/amavisd.pid",
	"notify_method":                        "empty: forward_method",
	"release_method":                       "empty: notify_method",
	"X_HEADER_LINE":                        `empty: "amavis at " + mydomain`,
	"log_recip_templ":                      `left out: amavis's built-in template; "" for undef (no per-recipient lines); no other template`,
	"storage_sql_dsn":                      `a list of ["DBI:Pg:database=...;host=...", user, password], tried in order`,
	"lookup_sql_dsn":                       `a list of ["DBI:mysql:database=...;host=...", user, password], tried in order`,
	"partition_tag":                        "a number or a string; amavis's code form is not taken",
	"spam_scanners":                        `[[spam_scanners]] tables with name, type ("spamd", "rspamd" or amavis's module name) and the module's options`,
	"score_sender_maps":                    "[[score_sender_maps]] tables with recipients (an acl) and senders (sender = points)",
	"default_ldap":                         defaultLDAPNote,
}

// Keys lists every key the configuration knows, globals first, in struct order.
func Keys() []KeyInfo {
	d := Default()
	var out []KeyInfo
	collectKeys(reflect.ValueOf(d.Global), false, &out)
	collectKeys(reflect.ValueOf(d.Policy), true, &out)
	out = append(out, KeyInfo{Key: "policy_bank", Amavis: "%policy_bank", Default: "{}",
		Note: "one table per bank: [policy_bank.MYNETS]"})
	return out
}

var ipListType = reflect.TypeOf(lookup.IPList{})

func collectKeys(v reflect.Value, bank bool, out *[]KeyInfo) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && tag == "" {
			collectKeys(v.Field(i), bank, out)
			continue
		}
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		k := KeyInfo{Key: tag, Bank: bank, Default: tomlValue(v.Field(i).Interface()), Note: keyNotes[tag]}
		if why, ok := machineDefaults[tag]; ok {
			k.Default, k.Note = "", why
		}
		if why, ok := ourOwnKeys[tag]; ok {
			k.Note = why
		} else {
			k.Amavis = sigil(tag, f.Type) + tag
		}
		*out = append(*out, k)
	}
}

func sigil(key string, t reflect.Type) string {
	if s, ok := amavisSigils[key]; ok {
		return s
	}
	switch {
	case t == ipListType || t.Kind() == reflect.Slice || strings.HasSuffix(key, "_maps"):
		return "@"
	case t.Kind() == reflect.Map:
		return "%"
	}
	return "$"
}

// tomlValue writes one value as TOML text on one line: maps become inline tables.
func tomlValue(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Map {
		keys := make([]string, 0, rv.Len())
		for _, k := range rv.MapKeys() {
			keys = append(keys, tomlKey(k.String())+" = "+tomlValue(rv.MapIndex(k).Interface()))
		}
		sort.Strings(keys)
		if len(keys) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(keys, ", ") + " }"
	}
	if rv.Kind() == reflect.Slice && rv.Len() == 0 {
		return "[]"
	}
	if k := rv.Kind(); k == reflect.Slice && (rv.Type().Elem().Kind() == reflect.Map || rv.Type().Elem().Kind() == reflect.Interface) {
		// Element by element, so that tables in an array become inline tables: the raw form
		// of [[av_scanners]] is a []map[string]any.
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = tomlValue(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(map[string]any{"k": v}); err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(v))
	}
	out, ok := strings.CutPrefix(strings.TrimSuffix(b.String(), "\n"), "k = ")
	if !ok || strings.Contains(out, "\n") {
		return fmt.Sprintf("%q", fmt.Sprint(v)) // not a one-line value: readsBackAs will refuse it
	}
	return out
}

// CheckStartable finds the mistakes that the file's syntax does not show but a start would
// (`amavisd configtest`): nothing to listen on, a daemon_user or daemon_group that does not
// exist. The error names the file, line and key.
func (c *Config) CheckStartable() error {
	if len(c.Listeners()) == 0 {
		return c.errorAt("inet_socket_port", "No listen sockets or ports specified")
	}
	if c.DaemonUser != "" {
		if _, err := lookupID(c.DaemonUser, user.Lookup, user.LookupId); err != nil {
			return c.errorAt("daemon_user", fmt.Sprintf("no such user %q", c.DaemonUser))
		}
	}
	if c.DaemonGroup != "" {
		if _, err := lookupID(c.DaemonGroup, user.LookupGroup, user.LookupGroupId); err != nil {
			return c.errorAt("daemon_group", fmt.Sprintf("no such group %q", c.DaemonGroup))
		}
	}
	return nil
}

// lookupID looks a user or group up by name, or by number when it is one.
func lookupID[T any](s string, byName, byID func(string) (T, error)) (T, error) {
	if _, err := strconv.Atoi(s); err == nil {
		return byID(s)
	}
	return byName(s)
}
