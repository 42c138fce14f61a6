package amavis

import (
	"context"
	"errors"
	"reflect"
	"strings"

	"amavisgo/conf"
	"amavisgo/ldapdb"
	"amavisgo/lookup"
)

// The LDAP side of the flow (package ldapdb): right after the message is spooled, each
// recipient's directory entries are fetched once, and a copy of the message's policy gets
// the attributes in front of the *_maps they stand for, as Amavis.pm unshifts its LDAPattr
// objects onto each @*_maps when lookup_maps_imply_sql_and_ldap is set.

// newLDAP is the directory of cfg, nil when enable_ldap is off.
func newLDAP(cfg *conf.Config) *ldapdb.Client {
	if !cfg.EnableLDAP {
		return nil
	}
	return ldapdb.New(&cfg.LDAPGlobal)
}

// prependSetting puts t in front of the policy's setting whose TOML key is key: a lookup.Maps,
// or any setting type with a Prepend(lookup.Table) method of its own. It reports whether the
// policy has such a setting; the attributes whose setting is not here yet (the spam levels and
// subject tags until the spam checks come, the address settings until conf.AddrMap takes a
// table in front) are fetched and slot in when their setting arrives.
func prependSetting(p *conf.Policy, key string, t lookup.Table) bool {
	f := fieldByTOMLKey(reflect.ValueOf(p).Elem(), key)
	if !f.IsValid() {
		return false
	}
	if m, ok := f.Addr().Interface().(*lookup.Maps); ok {
		*m = m.Prepend(t)
		return true
	}
	pre := f.MethodByName("Prepend")
	if !pre.IsValid() || pre.Type().NumIn() != 1 || pre.Type().In(0) != tableType ||
		pre.Type().NumOut() != 1 || pre.Type().Out(0) != f.Type() {
		return false
	}
	f.Set(pre.Call([]reflect.Value{reflect.ValueOf(&t).Elem()})[0])
	return true
}

var tableType = reflect.TypeOf((*lookup.Table)(nil)).Elem()

// fieldByTOMLKey finds the field tagged key in v or in the structs v embeds.
func fieldByTOMLKey(v reflect.Value, key string) reflect.Value {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.Anonymous && f.Type.Kind() == reflect.Struct && tag == "" {
			if r := fieldByTOMLKey(v.Field(i), key); r.IsValid() {
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

// ldapPolicy fetches the recipients' entries and puts their attributes first in the
// message's policy. A directory that cannot be asked fails the message (451), as
// lookup_ldap's die does; a recipient without an entry keeps the configured tables.
func (d *Daemon) ldapPolicy(ctx context.Context, m *Message) error {
	c := m.eng.ldap
	if c == nil || !m.cfg.LookupMapsImplySQLAndLDAP {
		return nil
	}
	o := m.Policy.LookupOptions()
	local := func(a string) bool { return m.Policy.LocalDomainsMaps.Bool(a, o) }
	addrs := make([]string, len(m.Recips))
	for i, r := range m.Recips {
		addrs[i] = r.Addr
	}
	f, err := lookup.Prefetch(ctx, c.ForMessage(o, local), addrs)
	if err != nil {
		var le *ldapdb.Error
		if errors.As(err, &le) {
			m.tl.Logf(-1, "lookup_ldap: %s", le.Detail())
		}
		return &stageError{section: "lookup_ldap", err: err}
	}
	p := *m.Policy
	for _, a := range ldapdb.Attrs {
		if !a.List {
			prependSetting(&p, a.Setting, f.Field(a.Field(), a.Kind))
		}
	}
	m.Policy = &p
	return nil
}
