package conf

import (
	"fmt"
	"strings"

	"amavisgo/lookup"
)

// SQLGlobal holds amavis's SQL settings (Amavis::Out::SQL::*, Amavis::Lookup::SQL): the
// databases for the message log and quarantine (storage_sql_dsn) and for per-user policy
// (lookup_sql_dsn), the statements, and how values are written.
type SQLGlobal struct {
	// StorageSQLDSN is the log and quarantine database, a fail-over list of [dsn, user,
	// password]; empty: no SQL log.
	StorageSQLDSN []SQLDSN `toml:"storage_sql_dsn"`
	// LookupSQLDSN is the read-only database of users, policy and wblist; empty: no SQL lookups.
	LookupSQLDSN []SQLDSN `toml:"lookup_sql_dsn"`
	// SQLClause overrides statements by amavis's names (sel_adr, ins_adr, ins_msg, upd_msg,
	// ins_rcp, ins_quar, sel_msg, sel_quar, sel_policy, sel_wblist); "" disables one, as in
	// amavis.
	SQLClause map[string]string `toml:"sql_clause"`
	// SQLSelectPolicy and SQLSelectWhiteBlackList are amavis's legacy names of the
	// sel_policy and sel_wblist clauses.
	SQLSelectPolicy           string `toml:"sql_select_policy"`
	SQLSelectWhiteBlackList   string `toml:"sql_select_white_black_list"`
	SQLQuarantineChunksizeMax int    `toml:"sql_quarantine_chunksize_max"`
	SQLAllow8bitAddress       bool   `toml:"sql_allow_8bit_address"`
	// PartitionTag is the value of every row's partition_tag (a number or a string; amavis's
	// code form is not taken).
	PartitionTag      any  `toml:"partition_tag"`
	TimestampFmtMysql bool `toml:"timestamp_fmt_mysql"`
	// SQLTimeout bounds connecting and each statement, in seconds (amavisgo only).
	SQLTimeout int `toml:"sql_timeout"`
	// SQLReleasePeers maps a node's myhostname to its AM.PDP socket ("inet:host:port" or
	// "unix:/path"): a release of a local: quarantine made on that node, found there through
	// msgs.host, is passed on to it (amavisgo only).
	SQLReleasePeers map[string]string `toml:"sql_release_peers"`
}

func (g *SQLGlobal) setDefaults() {
	g.SQLQuarantineChunksizeMax = 16384
	g.PartitionTag = int64(0)
	g.SQLTimeout = 10
}

func (g *SQLGlobal) validate() error {
	if g.SQLQuarantineChunksizeMax < 1 {
		return invalid("sql_quarantine_chunksize_max", "must be at least 1")
	}
	if g.SQLTimeout < 1 {
		return invalid("sql_timeout", "must be at least 1 second")
	}
	switch g.PartitionTag.(type) {
	case int64, string:
	default:
		return invalid("partition_tag", "must be a number or a string")
	}
	for name := range g.SQLClause {
		if !knownClauses[name] {
			return invalid("sql_clause", "unknown clause %q", name)
		}
	}
	for host, sock := range g.SQLReleasePeers {
		if !strings.HasPrefix(sock, "inet:") && !strings.HasPrefix(sock, "unix:") {
			return invalid("sql_release_peers", "%s: want inet:host:port or unix:/path, found %q", host, sock)
		}
	}
	return nil
}

var knownClauses = map[string]bool{
	"sel_policy": true, "sel_wblist": true, "sel_adr": true, "ins_adr": true, "ins_msg": true,
	"upd_msg": true, "ins_rcp": true, "ins_quar": true, "sel_msg": true, "sel_quar": true,
	"sel_penpals": true, "sel_penpals_msgid": true,
}

// SQLDSN is one element of a DSN list: amavis's [dsn, user, password] (user and password may
// be left out).
type SQLDSN struct {
	DSN, User, Password string
}

// UnmarshalTOML takes ["DBI:Pg:database=mail_log;host=/run/postgresql", "vscan", "secret"]
// or a bare DSN string.
func (d *SQLDSN) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		*d = SQLDSN{DSN: x}
		return nil
	case []any:
		var s []string
		for _, e := range x {
			str, ok := e.(string)
			if !ok {
				return fmt.Errorf("a DSN is [dsn, user, password], found %T", e)
			}
			s = append(s, str)
		}
		if len(s) < 1 || len(s) > 3 {
			return fmt.Errorf("a DSN is [dsn, user, password]")
		}
		s = append(s, "", "")
		*d = SQLDSN{DSN: s[0], User: s[1], Password: s[2]}
		return nil
	}
	return fmt.Errorf(`a DSN is ["DBI:Pg:database=...", user, password]`)
}

// MarshalTOML writes the DSN back without its password (showconfig).
func (d SQLDSN) MarshalTOML() ([]byte, error) {
	pw := ""
	if d.Password != "" {
		pw = "(hidden)"
	}
	return []byte("[" + tomlString(d.DSN) + ", " + tomlString(d.User) + ", " + tomlString(pw) + "]"), nil
}

// Clause is the statement named name: sql_clause's entry when set, else the legacy variable
// for sel_policy and sel_wblist, else def (amavis's %sql_clause default).
func (g *SQLGlobal) Clause(name, def string) string {
	if s, ok := g.SQLClause[name]; ok {
		return s
	}
	switch {
	case name == "sel_policy" && g.SQLSelectPolicy != "":
		return g.SQLSelectPolicy
	case name == "sel_wblist" && g.SQLSelectWhiteBlackList != "":
		return g.SQLSelectWhiteBlackList
	}
	return def
}

// Prepend returns m with t asked first, before any table prepended earlier (per-user values
// fetched from SQL or LDAP: LDAP's are prepended first, so that SQL's come before them, as
// amavis puts its SQL lookups ahead of its LDAP lookups in each *_maps).
func (m AddrMap) Prepend(t lookup.Table) AddrMap {
	m.first = m.first.Prepend(t)
	return m
}
