package conf

import (
	"os"
	"strings"

	"amavisgo/lookup"
)

// Global holds the process-wide settings: what amavis reads once at start-up.
type Global struct {
	QuarantineGlobal // QUARANTINEDIR, quarantine_subdir_levels (conf/global_quarantine.go)
	ScannersGlobal   // av_scanners, av_scanners_backup (conf/global_scanners.go)
	MetricsGlobal    // metrics_listen (conf/metrics.go)
	DKIMGlobal       // dkim_key, myauthservid (conf/dkim.go)
	TempdirGlobal    // allow_preserving_evidence (conf/tempdir.go)
	SQLGlobal        // storage_sql_dsn, lookup_sql_dsn, sql_clause... (conf/sql.go)
	PerlGlobal       // allow_unimplemented (conf/perl.go)
	SpamGlobal       // spam_scanners (conf/spam.go)
	LDAPGlobal       // enable_ldap, default_ldap (conf/ldap.go)

	MYHOME   string `toml:"MYHOME"`
	TEMPBASE string `toml:"TEMPBASE"` // default: MYHOME

	PidFile     string `toml:"pid_file"` // default: MYHOME/amavisd.pid
	DaemonUser  string `toml:"daemon_user"`
	DaemonGroup string `toml:"daemon_group"`
	// AllowRunAsRoot must be set explicitly for the daemon to keep running as root.
	AllowRunAsRoot bool `toml:"allow_run_as_root"`

	MaxServers   int `toml:"max_servers"`
	MaxRequests  int `toml:"max_requests"`  // accepted for compatibility; goroutines need no rundown
	ChildTimeout int `toml:"child_timeout"` // seconds
	SmtpdTimeout int `toml:"smtpd_timeout"` // seconds, idle time allowed to the client

	// EnforceSmtpdMessageSizeLimit64kbMin raises a smaller smtpd_message_size_limit to 64 KiB
	// (RFC 5321's minimum).
	EnforceSmtpdMessageSizeLimit64kbMin bool `toml:"enforce_smtpd_message_size_limit_64kb_min"`
	// SmtpConnectionCacheEnable keeps connections to the next hop open between messages.
	SmtpConnectionCacheEnable bool `toml:"smtp_connection_cache_enable"`

	InetSocketPort Sockets  `toml:"inet_socket_port"`
	InetSocketBind []string `toml:"inet_socket_bind"`
	UnixSocketname string   `toml:"unix_socketname"`
	UnixSocketMode int      `toml:"unix_socket_mode"`

	Myhostname    string `toml:"myhostname"`
	Mydomain      string `toml:"mydomain"`
	LocalhostName string `toml:"localhost_name"`

	LOGFILE        string `toml:"LOGFILE"`
	DO_SYSLOG      bool   `toml:"DO_SYSLOG"`
	SyslogIdent    string `toml:"syslog_ident"`
	SyslogFacility string `toml:"syslog_facility"`

	// InterfacePolicy maps a listening port ("10026") or "addr:port" to a policy bank name.
	InterfacePolicy map[string]string `toml:"interface_policy"`
	// Mynetworks selects the MYNETS policy bank by client address (@mynetworks).
	Mynetworks lookup.IPList `toml:"mynetworks"`

	// Decoding: where external programs are searched, and amavis's decoding limits.
	Path                 []string `toml:"path"`
	MAXLEVELS            int      `toml:"MAXLEVELS"`
	MAXFILES             int      `toml:"MAXFILES"`
	MIN_EXPANSION_QUOTA  int64    `toml:"MIN_EXPANSION_QUOTA"`
	MAX_EXPANSION_QUOTA  int64    `toml:"MAX_EXPANSION_QUOTA"`
	MIN_EXPANSION_FACTOR float64  `toml:"MIN_EXPANSION_FACTOR"`
	MAX_EXPANSION_FACTOR float64  `toml:"MAX_EXPANSION_FACTOR"`
}

func (g *Global) setDefaults() {
	g.MYHOME = "/var/amavis"
	g.TempdirGlobal.setDefaults()
	g.MaxServers = 2
	g.MaxRequests = 20
	g.ChildTimeout = 480
	g.SmtpdTimeout = 480
	g.EnforceSmtpdMessageSizeLimit64kbMin = true
	g.SmtpConnectionCacheEnable = true
	g.InetSocketBind = []string{"127.0.0.1", "[::1]"}
	g.Myhostname, _ = os.Hostname()
	g.Mydomain = "!change-mydomain-variable!.example.com"
	g.LocalhostName = "localhost"
	g.SyslogIdent = "amavis"
	g.SyslogFacility = "mail"
	g.Mynetworks = lookup.MustIPList("127.0.0.0/8", "[::1]", "169.254.0.0/16", "[fe80::]/10",
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "[fc00::]/7")
	g.MIN_EXPANSION_FACTOR = 5
	g.MAX_EXPANSION_FACTOR = 500
	g.SQLGlobal.setDefaults()
	g.LDAPGlobal.setDefaults()
}

// resolve fills the after-defaults that depend on other settings, as amavis does after reading
// its configuration files.
func (g *Global) resolve() {
	if g.TEMPBASE == "" {
		g.TEMPBASE = g.MYHOME
	}
	if g.PidFile == "" {
		g.PidFile = strings.TrimSuffix(g.MYHOME, "/") + "/amavisd.pid"
	}
}

func (g *Global) validate() error {
	switch {
	case g.MaxServers < 1:
		return invalid("max_servers", "must be at least 1, is %d", g.MaxServers)
	case g.ChildTimeout < 1:
		return invalid("child_timeout", "must be at least 1 second, is %d", g.ChildTimeout)
	case g.SmtpdTimeout < 1:
		return invalid("smtpd_timeout", "must be at least 1 second, is %d", g.SmtpdTimeout)
	case g.MYHOME == "":
		return invalid("MYHOME", "must not be empty")
	case g.MAXLEVELS < 0:
		return invalid("MAXLEVELS", "must not be negative")
	case g.MAXFILES < 0:
		return invalid("MAXFILES", "must not be negative")
	case g.MIN_EXPANSION_FACTOR < 0 || g.MAX_EXPANSION_FACTOR < 0:
		return invalid("MAX_EXPANSION_FACTOR", "expansion factors must not be negative")
	}
	if err := g.DKIMGlobal.validate(); err != nil {
		return err
	}
	if err := g.ScannersGlobal.validate(); err != nil {
		return err
	}
	if err := g.MetricsGlobal.validate(); err != nil {
		return invalid("metrics_listen", "%v", err)
	}
	if err := g.SQLGlobal.validate(); err != nil {
		return err
	}
	if err := g.SpamGlobal.validate(); err != nil {
		return err
	}
	if err := g.LDAPGlobal.validate(); err != nil {
		return err
	}
	for _, s := range g.InetSocketPort {
		if err := checkSocket(s); err != nil {
			return invalid("inet_socket_port", "%v", err)
		}
	}
	if _, ok := syslogFacilities[g.SyslogFacility]; !ok {
		return invalid("syslog_facility", "unknown facility %q", g.SyslogFacility)
	}
	return nil
}

// syslogFacilities are the names syslog_facility accepts.
var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// SyslogFacility returns the numeric facility of syslog_facility.
func (g *Global) SyslogFacilityCode() int { return syslogFacilities[g.SyslogFacility] }
