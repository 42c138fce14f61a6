package amavis

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/ldapdb"
	"amavisgo/lookup"
	"amavisgo/smtp"
)

// The LDAP side of the flow (package ldapdb). Each recipient's directory entries are
// fetched at RCPT, as amavis's lookup of message_size_limit_maps there asks the directory
// first: a directory that cannot be asked ends the session with a 421, as the child that
// died in that lookup does, and the MTA keeps the mail. The entries are kept for the
// transaction (amavis caches them per message), and after the message is spooled a copy of
// its policy gets the attributes in front of the settings they stand for, as Amavis.pm
// unshifts its LDAPattr objects onto each @*_maps when lookup_maps_imply_sql_and_ldap is set.

// newLDAP is the directory of cfg, nil when enable_ldap is off.
func newLDAP(cfg *conf.Config) *ldapdb.Client {
	if !cfg.EnableLDAP {
		return nil
	}
	return ldapdb.New(&cfg.LDAPGlobal)
}

// prependSetting puts t in front of the policy's setting whose TOML key is key: a lookup.Maps,
// or any setting type with a Prepend(lookup.Table) method of its own (conf.AddrMap). It reports
// whether the policy has such a setting; an attribute whose setting the policy lacks is fetched
// and skipped.
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

// ldapSession holds the entries fetched at RCPT for the connection's current transaction.
type ldapSession struct {
	tx   *smtp.Transaction
	recs map[string]lookup.Record
}

// take hands tx's entries to its message.
func (l *ldapSession) take(tx *smtp.Transaction) map[string]lookup.Record {
	if l.tx != tx {
		return nil
	}
	recs := l.recs
	l.tx, l.recs = nil, nil
	return recs
}

// ldapFetcher is the connection's directory for the policy p, nil when LDAP lookups are off.
func (cs *connState) ldapFetcher(p *conf.Policy, logf ldapdb.Logf) lookup.Fetcher {
	c := cs.eng.ldap
	if c == nil || !cs.cfg.LookupMapsImplySQLAndLDAP {
		return nil
	}
	o := p.LookupOptions()
	return c.ForMessage(o, func(a string) bool { return p.LocalDomainsMaps.Bool(a, o) }, logf)
}

// ldapRcpt fetches a recipient's entries at RCPT. A directory that cannot be asked ends the
// session (421 4.3.2), logged as amavis logs the child's fatal error.
func (cs *connState) ldapRcpt(tx *smtp.Transaction, rc *smtp.Recipient) *smtp.Reply {
	f := cs.ldapFetcher(cs.policy, cs.tl.Logf)
	if f == nil {
		return nil
	}
	if cs.ldap.tx != tx {
		cs.ldap = ldapSession{tx: tx, recs: map[string]lookup.Record{}}
	}
	if _, done := cs.ldap.recs[rc.Addr]; done {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cs.cfg.SmtpdTimeout)*time.Second)
	defer cancel()
	rec, err := f.Fetch(ctx, rc.Addr)
	if err != nil {
		logLookupFailed(cs.tl, err)
		cs.tl.Logf(-2, "TROUBLE in process_request: %v", err)
		cs.tl.Logf(-1, "Requesting process rundown after fatal error")
		return &smtp.Reply{Code: 421, Enh: "4.3.2", Text: "Service shutting down, closing channel"}
	}
	cs.ldap.recs[rc.Addr] = rec
	return nil
}

// logLookupFailed logs a failed search as lookup_ldap does, and its cause (the server's or
// the network's words, which amavis does not log) at level 1.
func logLookupFailed(tl *taskLog, err error) {
	tl.Logf(-1, "lookup_ldap: %v", err)
	var le *ldapdb.Error
	if errors.As(err, &le) {
		tl.Logf(1, "lookup_ldap: %s", le.Detail())
	}
}

// cachedFetcher answers from the entries fetched at RCPT and asks the directory only for the
// addresses it has not seen.
type cachedFetcher struct {
	recs map[string]lookup.Record
	f    lookup.Fetcher
}

func (c cachedFetcher) Fetch(ctx context.Context, addr string) (lookup.Record, error) {
	if rec, ok := c.recs[addr]; ok {
		return rec, nil
	}
	return c.f.Fetch(ctx, addr)
}

// ldapPolicy puts the recipients' attributes first in the message's policy. A recipient
// without an entry keeps the configured tables. A directory that cannot be asked for a
// recipient not fetched at RCPT fails the message (451).
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
	f, err := lookup.Prefetch(ctx, cachedFetcher{recs: m.ldapRecs, f: c.ForMessage(o, local, m.tl.Logf)}, addrs)
	if err != nil {
		logLookupFailed(m.tl, err)
		return &stageError{section: "lookup_ldap", err: err}
	}
	m.Policy = withLDAP(m.Policy, f)
	return nil
}

// withLDAP is a copy of p with the fetched attributes in front of their settings.
func withLDAP(p *conf.Policy, f *lookup.Fetched) *conf.Policy {
	c := *p
	for _, a := range ldapdb.Attrs {
		if !a.List {
			prependSetting(&c, a.Setting, f.Field(a.Field(), a.Kind))
		}
	}
	return &c
}

// rcptPolicy is the policy RCPT checks of addr use: the connection's, with addr's attributes
// fetched for the transaction in front (amavis's message_size_limit_maps lookup at RCPT
// answers from amavisMessageSizeLimit first).
func (cs *connState) rcptPolicy(tx *smtp.Transaction, addr string) *conf.Policy {
	if cs.ldap.tx != tx || cs.ldap.recs[addr] == nil {
		return cs.policy
	}
	// addr is in recs: nothing is asked of the directory
	f, _ := lookup.Prefetch(context.Background(), cachedFetcher{recs: cs.ldap.recs}, []string{addr})
	return withLDAP(cs.policy, f)
}
