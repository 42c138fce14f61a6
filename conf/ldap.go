package conf

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// LDAPGlobal holds amavis's LDAP lookups (Amavis::Lookup::LDAP, README.ldap): when enable_ldap
// is set, each recipient's amavisAccount entry is searched once per message and its attributes
// come first in the *_maps they stand for (package ldapdb, amavis/ldap.go).
type LDAPGlobal struct {
	EnableLDAP  bool       `toml:"enable_ldap"`
	DefaultLDAP LDAPParams `toml:"default_ldap"`
	// LookupMapsImplySQLAndLDAP puts the directory's attributes in front of the *_maps they
	// stand for; without it only explicit lookups would ask the directory.
	LookupMapsImplySQLAndLDAP bool `toml:"lookup_maps_imply_sql_and_ldap"`
	// LDAPLookupsNoAtMeansDomain makes the keys of a search "user@" and "example.com" instead of
	// "user" and "@example.com" (README.ldap).
	LDAPLookupsNoAtMeansDomain bool `toml:"ldap_lookups_no_at_means_domain"`
}

// LDAPParams is amavis's $default_ldap hash, with the defaults of Amavis::LDAP::Connection and
// Amavis::Lookup::LDAP.
type LDAPParams struct {
	// Hostname is tried in order until one answers: a host, host:port, an ldap://, ldaps:// or
	// ldapi:// URI, or a socket path.
	Hostname HostList `toml:"hostname"`
	Port     int      `toml:"port"`   // 0: 389, or 636 for ldaps
	Scheme   string   `toml:"scheme"` // "": ldaps when a hostname starts with "ldaps", else ldap
	Version  int      `toml:"version"`
	Timeout  int      `toml:"timeout"` // seconds, for connecting and for each request
	// Base may hold %d, the recipient's domain.
	Base  string `toml:"base"`
	Scope string `toml:"scope"` // base, one or sub
	// QueryFilter's (attr=%m) becomes (|(attr=key1)(attr=key2)...) over the address's lookup
	// keys.
	QueryFilter  string `toml:"query_filter"`
	Deref        string `toml:"deref"` // never, search, find or always
	BindDN       string `toml:"bind_dn"`
	BindPassword string `toml:"bind_password"`
	TLS          bool   `toml:"tls"`    // StartTLS after connecting
	Verify       string `toml:"verify"` // the server's certificate: none, optional or require
	CAFile       string `toml:"cafile"`
	ClientCert   string `toml:"clientcert"`
	ClientKey    string `toml:"clientkey"`
}

// defaultLDAPNote is default_ldap's note in the migration table.
const defaultLDAPNote = "a table of hostname (a string or a list, tried in order), port, scheme, version, timeout, " +
	"base, scope, query_filter, deref, bind_dn, bind_password, tls, verify, cafile, clientcert, clientkey; " +
	"sasl, localaddr, inet6, sslversion and capath are not taken"

// HostList is one hostname or a list of them.
type HostList []string

// UnmarshalTOML takes a string or an array of strings.
func (h *HostList) UnmarshalTOML(v any) error {
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	out := HostList{}
	for _, it := range items {
		s, ok := it.(string)
		if !ok || s == "" {
			return fmt.Errorf("a hostname must be a non-empty string, found %v", it)
		}
		out = append(out, s)
	}
	*h = out
	return nil
}

func (l *LDAPGlobal) setDefaults() {
	l.LookupMapsImplySQLAndLDAP = true
	l.DefaultLDAP = LDAPParams{
		Hostname: HostList{"localhost"}, Version: 3, Timeout: 120, Scope: "sub",
		QueryFilter: "(&(objectClass=amavisAccount)(mail=%m))", Deref: "find", Verify: "none",
	}
}

func (l *LDAPGlobal) validate() error {
	p := &l.DefaultLDAP
	switch {
	case len(p.Hostname) == 0:
		return invalid("default_ldap", "hostname must name at least one server")
	case p.Version != 3:
		return invalid("default_ldap", "version %d: only LDAP version 3 is spoken", p.Version)
	case p.Timeout < 1:
		return invalid("default_ldap", "timeout must be at least 1 second, is %d", p.Timeout)
	case p.Port < 0 || p.Port > 65535:
		return invalid("default_ldap", "port %d is not a port", p.Port)
	case !slices.Contains([]string{"base", "one", "sub"}, p.Scope):
		return invalid("default_ldap", "scope %q: must be base, one or sub", p.Scope)
	case !slices.Contains([]string{"never", "search", "find", "always"}, p.Deref):
		return invalid("default_ldap", "deref %q: must be never, search, find or always", p.Deref)
	case !slices.Contains([]string{"none", "optional", "require"}, p.Verify):
		return invalid("default_ldap", "verify %q: must be none, optional or require", p.Verify)
	case !slices.Contains([]string{"", "ldap", "ldaps", "ldapi"}, p.Scheme):
		return invalid("default_ldap", "scheme %q: must be ldap, ldaps or ldapi", p.Scheme)
	case !strings.Contains(p.QueryFilter, "%m)"):
		return invalid("default_ldap", "query_filter %q has no (attribute=%%m)", p.QueryFilter)
	case (p.ClientCert == "") != (p.ClientKey == ""):
		return invalid("default_ldap", "clientcert and clientkey go together")
	}
	return nil
}

// MarshalTOML writes the parameters as one inline table of the keys that are set, so that
// the migration table and showconfig print $default_ldap on one line.
func (p LDAPParams) MarshalTOML() ([]byte, error) {
	v := reflect.ValueOf(p)
	var parts []string
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			continue
		}
		tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("toml"), ",")
		parts = append(parts, tag+" = "+tomlValue(v.Field(i).Interface()))
	}
	return []byte("{ " + strings.Join(parts, ", ") + " }"), nil
}
