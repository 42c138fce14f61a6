package amavis

import (
	"context"
	"errors"

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

// ldapMaps are the settings an LDAP attribute may override (ldapdb.Attrs names the
// setting of each), by TOML key. The attributes whose setting is not here (spam levels and
// subject tags, quarantine_to and admin addresses, address extensions, warn*recip, the
// white/black lists, disclaimer options, forward_method_maps, SpamAssassin's user settings)
// are fetched and wait for their setting.
var ldapMaps = map[string]func(p *conf.Policy) *lookup.Maps{
	"local_domains_maps":       func(p *conf.Policy) *lookup.Maps { return &p.LocalDomainsMaps },
	"virus_lovers_maps":        func(p *conf.Policy) *lookup.Maps { return &p.VirusLoversMaps },
	"spam_lovers_maps":         func(p *conf.Policy) *lookup.Maps { return &p.SpamLoversMaps },
	"unchecked_lovers_maps":    func(p *conf.Policy) *lookup.Maps { return &p.UncheckedLoversMaps },
	"banned_files_lovers_maps": func(p *conf.Policy) *lookup.Maps { return &p.BannedFilesLoversMaps },
	"bad_header_lovers_maps":   func(p *conf.Policy) *lookup.Maps { return &p.BadHeaderLoversMaps },
	"bypass_virus_checks_maps": func(p *conf.Policy) *lookup.Maps { return &p.BypassVirusChecksMaps },
	"bypass_spam_checks_maps":  func(p *conf.Policy) *lookup.Maps { return &p.BypassSpamChecksMaps },
	"bypass_banned_checks_maps": func(p *conf.Policy) *lookup.Maps {
		return &p.BypassBannedChecksMaps
	},
	"bypass_header_checks_maps": func(p *conf.Policy) *lookup.Maps {
		return &p.BypassHeaderChecksMaps
	},
	"message_size_limit_maps": func(p *conf.Policy) *lookup.Maps { return &p.MessageSizeLimitMaps },
	"banned_filename_maps":    func(p *conf.Policy) *lookup.Maps { return &p.BannedFilenameMaps },
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
		if maps, ok := ldapMaps[a.Setting]; ok {
			mp := maps(&p)
			*mp = mp.Prepend(f.Field(a.Field(), a.Kind))
		}
	}
	m.Policy = &p
	return nil
}
