package amavis

import (
	"context"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/hdr"
	"amavisgo/lookup"
	"amavisgo/mailid"
	"amavisgo/quarantine"
	"amavisgo/sqldb"
	"amavisgo/verdict"
)

// The SQL side of the flow (package sqldb): the preliminary log row and the per-user lookups
// right after the message is spooled, the final log rows after the reply is known, the sql:
// quarantine through quarantine.Store.

// sqlEngine is the SQL part of a configuration's engines; nil parts are not configured.
type sqlEngine struct {
	log     *sqldb.Log
	lookups *sqldb.Lookups
}

// sqlMessage is what the SQL side keeps of one message.
type sqlMessage struct {
	row      *sqldb.Message // nil without storage_sql_dsn
	quarType byte
	quarLoc  string
	wb       []string // each recipient's wblist.wb for the sender ("" none)
}

// newSQL opens the pools of cfg's DSN lists and gives the sql: quarantine its database. A
// database that does not answer is a warning, logged in the background: amavis starts without
// it too, and every message then tries again.
func (d *Daemon) newSQL(cfg *conf.Config, store *quarantine.Store, tl *taskLog) (*sqlEngine, error) {
	e := &sqlEngine{}
	timeout := time.Duration(cfg.SQLTimeout) * time.Second
	check := func(what string, p *sqldb.Pool) {
		go func() {
			if name, err := p.Ping(context.Background()); err != nil {
				tl.Logf(-1, "WARN: %s: no database answers: %v", what, err)
			} else {
				tl.Logf(1, "%s: connected to %s", what, name)
			}
		}()
	}
	if len(cfg.StorageSQLDSN) > 0 {
		p, err := sqldb.Open(cfg.StorageSQLDSN, timeout)
		if err != nil {
			return nil, err
		}
		e.log = sqldb.NewLog(p, cfg)
		store.SQL = sqldb.NewQuarantine(p, cfg)
		check("storage_sql_dsn", p)
	}
	if len(cfg.LookupSQLDSN) > 0 {
		p, err := sqldb.Open(cfg.LookupSQLDSN, timeout)
		if err != nil {
			return nil, err
		}
		e.lookups = sqldb.NewLookups(p, cfg)
		check("lookup_sql_dsn", p)
	}
	return e, nil
}

// sqlBegin stores the preliminary msgs row and fetches the recipients' SQL policy. A log
// failure is only logged; a lookup failure fails the message (451), as in amavis.
func (d *Daemon) sqlBegin(ctx context.Context, m *Message) error {
	e := m.eng.sql
	if e == nil {
		return nil
	}
	if e.log != nil {
		d.sqlPreliminary(ctx, m, e.log)
	}
	if e.lookups != nil {
		return sqlPolicy(ctx, m, e.lookups)
	}
	return nil
}

// sqlPreliminary stores the msgs row; a mail_id already in the table (another node drew it)
// gets a new one, five attempts in all, as Amavis.pm's generate_unique_mail_id.
func (d *Daemon) sqlPreliminary(ctx context.Context, m *Message, l *sqldb.Log) {
	row := &sqldb.Message{MailID: m.MailID, SecretID: m.SecretID, LogID: m.LogID, RxTime: m.RxTime,
		Sender: m.Sender, PolicyBankPath: m.Policy.PolicyBankPath, ClientAddr: trimIPv6Tag(m.Client.Addr),
		Size: m.Size, Options: m.Policy.LookupOptions()}
	row.Recips = make([]sqldb.Recip, len(m.Recips))
	for i, r := range m.Recips {
		row.Recips[i].Addr = r.Addr
	}
	for attempt := 5; ; attempt-- {
		err := l.Preliminary(ctx, row)
		if err == nil {
			m.sql.row = row
			return
		}
		if !sqldb.IsDuplicate(err) {
			m.tl.Logf(-1, "WARN save_info_preliminary: %v", err)
			return
		}
		if attempt <= 1 {
			m.tl.Logf(-2, "too many retries on storing preliminary, info not saved")
			return
		}
		m.tl.Logf(2, "retrying storing preliminary, %d attempts remain", attempt-1)
		m.MailID, m.SecretID = mailid.NewDefault()
		row.MailID, row.SecretID = m.MailID, m.SecretID
	}
}

// sqlPolicy fetches each recipient's users/policy rows and wblist entry and gives the message
// a copy of its policy in which those values come first, as amavis puts its SQLfield lookups
// first in each *_maps. The wblist value of each recipient is its own sender list, which the
// spam check asks first (verdict.Recipient.SenderList) and the log's bl/wl show.
func sqlPolicy(ctx context.Context, m *Message, l *sqldb.Lookups) error {
	o := m.Policy.LookupOptions()
	local := func(a string) bool { return m.Policy.LocalDomainsMaps.Bool(a, o) }
	addrs := make([]string, len(m.Recips))
	for i, r := range m.Recips {
		addrs[i] = r.Addr
	}
	f, err := lookup.Prefetch(ctx, l.ForMessage(m.Sender, o, local), addrs)
	if err != nil {
		return &stageError{section: "lookup_sql", err: err}
	}
	p := *m.Policy
	for _, b := range []struct {
		maps  *lookup.Maps
		field string
		kind  lookup.FieldKind
	}{
		{&p.LocalDomainsMaps, "local", lookup.FieldBoolDefaultTrue},
		{&p.VirusLoversMaps, "virus_lover", lookup.FieldBool},
		{&p.SpamLoversMaps, "spam_lover", lookup.FieldBool},
		{&p.UncheckedLoversMaps, "unchecked_lover", lookup.FieldBool},
		{&p.BannedFilesLoversMaps, "banned_files_lover", lookup.FieldBool},
		{&p.BadHeaderLoversMaps, "bad_header_lover", lookup.FieldBool},
		{&p.BypassVirusChecksMaps, "bypass_virus_checks", lookup.FieldBool},
		{&p.BypassSpamChecksMaps, "bypass_spam_checks", lookup.FieldBool},
		{&p.BypassBannedChecksMaps, "bypass_banned_checks", lookup.FieldBool},
		{&p.BypassHeaderChecksMaps, "bypass_header_checks", lookup.FieldBool},
		{&p.MessageSizeLimitMaps, "message_size_limit", lookup.FieldNumber},
		{&p.BannedFilenameMaps, "banned_rulenames", lookup.FieldString},
		{&p.SpamTagLevelMaps, "spam_tag_level", lookup.FieldNumber},
		{&p.SpamTag2LevelMaps, "spam_tag2_level", lookup.FieldNumber},
		{&p.SpamTag3LevelMaps, "spam_tag3_level", lookup.FieldNumber},
		{&p.SpamKillLevelMaps, "spam_kill_level", lookup.FieldNumber},
		{&p.SpamDsnCutoffLevelMaps, "spam_dsn_cutoff_level", lookup.FieldNumber},
		{&p.SpamQuarantineCutoffLevelMaps, "spam_quarantine_cutoff_level", lookup.FieldNumber},
		{&p.SpamSubjectTagMaps, "spam_subject_tag", lookup.FieldString},
		{&p.SpamSubjectTag2Maps, "spam_subject_tag2", lookup.FieldString},
		{&p.SpamSubjectTag3Maps, "spam_subject_tag3", lookup.FieldString},
	} {
		*b.maps = b.maps.Prepend(f.Field(b.field, b.kind))
	}
	for _, b := range []struct {
		m     *conf.AddrMap
		field string
	}{
		{&p.VirusQuarantineTo, "virus_quarantine_to"}, {&p.SpamQuarantineTo, "spam_quarantine_to"},
		{&p.BannedQuarantineTo, "banned_quarantine_to"}, {&p.UncheckedQuarantineTo, "unchecked_quarantine_to"},
		{&p.BadHeaderQuarantineTo, "bad_header_quarantine_to"}, {&p.CleanQuarantineTo, "clean_quarantine_to"},
		{&p.ArchiveQuarantineTo, "archive_quarantine_to"}, {&p.VirusAdmin, "virus_admin"},
		{&p.NewvirusAdmin, "newvirus_admin"}, {&p.SpamAdmin, "spam_admin"}, {&p.BannedAdmin, "banned_admin"},
		{&p.BadHeaderAdmin, "bad_header_admin"},
	} {
		*b.m = b.m.Prepend(f.Field(b.field, lookup.FieldString))
	}
	m.Policy = &p
	wb := f.Field(sqldb.WBField, lookup.FieldString)
	m.sql.wb = make([]string, len(m.Recips))
	for i, r := range m.Recips {
		if v, _, ok := wb.Lookup(r.Addr, o); ok {
			m.sql.wb[i] = lookup.String(v)
			r.SenderList = m.sql.wb[i] // the spam check's sender lists (verdict/spam.go)
			m.tl.Logf(3, "wbl: (SQL) recip <%s>, sender <%s>: %s", r.Addr, m.Sender, m.sql.wb[i])
		}
	}
	return nil
}

// sqlQuarantined records the first quarantine location for msgs.quar_type/quar_loc.
func (m *Message) sqlQuarantined(l quarantine.Location) {
	if m.sql.quarType == 0 {
		m.sql.quarType, m.sql.quarLoc = l.Type, l.Name
	}
}

// contentCode is amavis's one-letter content type of a category (the ccat_short_name table
// of Amavis::Out::SQL::Log): CC_BADH with minor 2 is M.
func contentCode(c verdict.CCat) byte {
	if c.Major == verdict.CC_BADH && c.Minor == 2 {
		return 'M'
	}
	return [...]byte{'?', 'C', 'T', 'O', 'H', 'Y', 'S', 'U', 'B', 'V'}[c.Major]
}

// sqlEnd stores the final rows: the per-recipient outcome as the MTA got it and the message's
// category, quarantine and header fields.
func (d *Daemon) sqlEnd(m *Message) {
	row := m.sql.row
	if row == nil || m.Verdict == nil {
		return
	}
	row.MailID = m.MailID
	row.Content = contentCode(m.Verdict.CCats.Main())
	row.QuarType, row.QuarLoc = m.sql.quarType, m.sql.quarLoc
	row.DSNSent = 'N'
	row.SpamLevel = 0 // no recipient with a level: 0, as amavis
	scored := false
	for i, r := range m.Recips {
		switch r.DSN {
		case verdict.DSNSent:
			row.DSNSent = 'Y'
		case verdict.DSNSuppressed:
			if row.DSNSent == 'N' {
				row.DSNSent = 'q'
			}
		}
		rr := &row.Recips[i]
		rr.Local, rr.Content, rr.Destiny = r.Local, contentCode(r.CCats.Main()), r.Destiny
		rr.Done = r.Reply.Code != 0
		if rr.Done {
			rr.Response = r.Reply.String()
		}
		if i < len(m.sql.wb) {
			switch wb := strings.ToUpper(strings.TrimSpace(m.sql.wb[i])); wb {
			case "W", "Y", "T":
				rr.Whitelisted = true
			case "B", "N", "F":
				rr.Blacklisted = true
			}
		}
		// the spam check's sender lists and level, as Amavis::Out::SQL::Log writes them: bl, wl
		// and bspam_level per recipient, the lowest level of the message in msgs.spam_level
		rr.Whitelisted = rr.Whitelisted || r.Spam.Whitelisted
		rr.Blacklisted = rr.Blacklisted || r.Spam.Blacklisted
		if r.Spam.Scored {
			rr.SpamLevel = r.Spam.Level
			if !scored || r.Spam.Level < row.SpamLevel {
				row.SpamLevel, scored = r.Spam.Level, true
			}
		}
	}
	row.MessageID = strings.Join(hdr.MessageIDs(m.MessageID), " ")
	row.From = headerField(m.Header, "From")
	row.Subject = headerField(m.Header, "Subject")
	row.Originating = m.Policy.Originating
	m.eng.sql.log.FinalRetrying(row, m.tl.Logf)
}

// sqlDrain waits, while ctx lasts, for final log rows still being retried, so that a stop
// does not drop them.
func (d *Daemon) sqlDrain(ctx context.Context) {
	e := d.eng.Load()
	if e == nil || e.sql == nil || e.sql.log == nil {
		return
	}
	done := make(chan struct{})
	go func() { e.sql.log.Drain(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// headerField is the first field called name, unfolded (line breaks removed, blanks kept) and
// trimmed, as amavis stores From and Subject before decoding.
func headerField(h []byte, name string) string {
	for f := range hdr.Fields(h) {
		if n, body, ok := hdr.Cut(f); ok && strings.EqualFold(string(n), name) {
			return strings.TrimSpace(hdr.Unfold(body))
		}
	}
	return ""
}
