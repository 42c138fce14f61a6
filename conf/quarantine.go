package conf

import (
	"fmt"
	"sort"
	"strings"

	"amavisgo/lookup"
)

// QuarantinePolicy: quarantine, notifications and release (amavis's, Amavis::Conf). Every setting
// here may be overridden by a policy bank.
type QuarantinePolicy struct {
	// Quarantine methods per category ("local:virus-%m"); "" = no quarantine for that category.
	VirusQuarantineMethod       string `toml:"virus_quarantine_method"`
	BannedFilesQuarantineMethod string `toml:"banned_files_quarantine_method"`
	UncheckedQuarantineMethod   string `toml:"unchecked_quarantine_method"`
	SpamQuarantineMethod        string `toml:"spam_quarantine_method"`
	BadHeaderQuarantineMethod   string `toml:"bad_header_quarantine_method"`
	CleanQuarantineMethod       string `toml:"clean_quarantine_method"`
	ArchiveQuarantineMethod     string `toml:"archive_quarantine_method"`

	// Quarantine-to per category and recipient: a *-quarantine name (a file under
	// QUARANTINEDIR), an address (sent through notify_method), or "%a" (the recipient).
	VirusQuarantineTo     AddrMap `toml:"virus_quarantine_to"`
	BannedQuarantineTo    AddrMap `toml:"banned_quarantine_to"`
	UncheckedQuarantineTo AddrMap `toml:"unchecked_quarantine_to"`
	SpamQuarantineTo      AddrMap `toml:"spam_quarantine_to"`
	BadHeaderQuarantineTo AddrMap `toml:"bad_header_quarantine_to"`
	CleanQuarantineTo     AddrMap `toml:"clean_quarantine_to"`
	ArchiveQuarantineTo   AddrMap `toml:"archive_quarantine_to"`
	// MailfromToQuarantine replaces the envelope sender of quarantined copies; unset = original.
	MailfromToQuarantine *string `toml:"mailfrom_to_quarantine"`

	// Administrators per category and recipient (amavis's $virus_admin, %virus_admin, ...).
	VirusAdmin     AddrMap `toml:"virus_admin"`
	BannedAdmin    AddrMap `toml:"banned_admin"` // falls back to virus_admin, as @banned_admin_maps does
	BadHeaderAdmin AddrMap `toml:"bad_header_admin"`
	SpamAdmin      AddrMap `toml:"spam_admin"`
	NewvirusAdmin  AddrMap `toml:"newvirus_admin"`

	// Envelope senders and From: fields of what we originate. Empty = amavis's after-defaults
	// (see NotifyAddrs).
	MailfromNotifyAdmin     string `toml:"mailfrom_notify_admin"`
	MailfromNotifyRecip     string `toml:"mailfrom_notify_recip"`
	MailfromNotifySpamadmin string `toml:"mailfrom_notify_spamadmin"`
	HdrfromNotifySender     string `toml:"hdrfrom_notify_sender"`
	HdrfromNotifyAdmin      string `toml:"hdrfrom_notify_admin"`
	HdrfromNotifyRecip      string `toml:"hdrfrom_notify_recip"`
	HdrfromNotifySpamadmin  string `toml:"hdrfrom_notify_spamadmin"`

	// DsnBcc gets a copy of every DSN sent ("" = nobody).
	DsnBcc string `toml:"dsn_bcc"`

	// Recipient warnings (off by default) and whether non-local recipients get them too.
	Warnvirusrecip  bool `toml:"warnvirusrecip"`
	Warnbannedrecip bool `toml:"warnbannedrecip"`
	Warnbadhrecip   bool `toml:"warnbadhrecip"`
	WarnOffsite     bool `toml:"warn_offsite"`

	// VirusesThatFakeSenderMaps decides per virus name whether the sender address is forged,
	// which suppresses the DSN. Empty = every virus fakes the sender (amavis's default).
	VirusesThatFakeSenderMaps FakeSenderRules `toml:"viruses_that_fake_sender_maps"`

	// Templates: each a file path; "" = our built-in text. Sites may point them at their
	// customised amavis templates (e.g. /etc/amavis/en_US/template-virus-admin.txt).
	NotifySenderTempl      string `toml:"notify_sender_templ"`
	NotifyVirusSenderTempl string `toml:"notify_virus_sender_templ"`
	NotifySpamSenderTempl  string `toml:"notify_spam_sender_templ"`
	NotifyVirusAdminTempl  string `toml:"notify_virus_admin_templ"`
	NotifySpamAdminTempl   string `toml:"notify_spam_admin_templ"`
	NotifyVirusRecipsTempl string `toml:"notify_virus_recips_templ"`

	// Release (AM.PDP request=release / requeue).
	AuthRequiredRelease bool   `toml:"auth_required_release"`
	ReleaseMethod       string `toml:"release_method"` // "" = notify_method
	RequeueMethod       string `toml:"requeue_method"`
	ReleaseFormat       string `toml:"release_format"` // only "resend"
}

func (p *QuarantinePolicy) setDefaults() {
	p.VirusQuarantineMethod = "local:virus-%m"
	p.BannedFilesQuarantineMethod = "local:banned-%m"
	p.SpamQuarantineMethod = "local:spam-%m.gz"
	p.BadHeaderQuarantineMethod = "local:badh-%m"
	p.VirusQuarantineTo = ConstAddr("virus-quarantine")
	p.BannedQuarantineTo = ConstAddr("banned-quarantine")
	p.UncheckedQuarantineTo = ConstAddr("unchecked-quarantine")
	p.SpamQuarantineTo = ConstAddr("spam-quarantine")
	p.BadHeaderQuarantineTo = ConstAddr("bad-header-quarantine")
	p.CleanQuarantineTo = ConstAddr("clean-quarantine")
	p.ArchiveQuarantineTo = ConstAddr("archive-quarantine")
	p.AuthRequiredRelease = true
	p.RequeueMethod = "smtp:[127.0.0.1]:25"
	p.ReleaseFormat = "resend"
}

func (p *QuarantinePolicy) validate() error {
	for key, m := range map[string]string{
		"virus_quarantine_method": p.VirusQuarantineMethod, "banned_files_quarantine_method": p.BannedFilesQuarantineMethod,
		"unchecked_quarantine_method": p.UncheckedQuarantineMethod, "spam_quarantine_method": p.SpamQuarantineMethod,
		"bad_header_quarantine_method": p.BadHeaderQuarantineMethod, "clean_quarantine_method": p.CleanQuarantineMethod,
		"archive_quarantine_method": p.ArchiveQuarantineMethod,
	} {
		if err := checkQuarantineMethod(m); err != nil {
			return invalid(key, "%v", err)
		}
	}
	if p.ReleaseMethod != "" {
		if _, err := ParseMethod(p.ReleaseMethod); err != nil {
			return invalid("release_method", "%v", err)
		}
	}
	if _, err := ParseMethod(p.RequeueMethod); err != nil {
		return invalid("requeue_method", "%v", err)
	}
	if p.ReleaseFormat != "resend" {
		return invalid("release_format", "%q is not supported (only \"resend\")", p.ReleaseFormat)
	}
	return nil
}

// checkQuarantineMethod accepts "", local:<file template>, sql: and smtp:/lmtp: methods.
func checkQuarantineMethod(m string) error {
	switch {
	case m == "", m == "sql:":
		return nil
	case strings.HasPrefix(m, "local:"):
		name := strings.TrimPrefix(m, "local:")
		if name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("method %q: local: wants a file name template such as virus-%%m", m)
		}
		return nil
	}
	_, err := ParseMethod(m)
	return err
}

// Release is release_method, falling back to notify_method, as Amavis::Notify does.
func (p *Policy) Release() Method {
	if p.ReleaseMethod == "" {
		return p.Notify()
	}
	m, _ := ParseMethod(p.ReleaseMethod)
	return m
}

// Requeue is requeue_method, parsed.
func (p *Policy) Requeue() Method { m, _ := ParseMethod(p.RequeueMethod); return m }

// NotifyAddrs are the originator addresses after amavis's after-defaults (Amavis::Conf).
type NotifyAddrs struct {
	HdrfromSender, HdrfromAdmin, HdrfromSpamadmin, HdrfromRecip string // From: fields
	MailfromAdmin, MailfromSpamadmin, MailfromRecip             string // bare
}

// NotifyAddrs resolves the hdrfrom_* / mailfrom_* settings for this host.
func (c *Config) NotifyAddrs(p *Policy) NotifyAddrs {
	name := `"Content-filter at ` + c.Myhostname + `"`
	postmaster := "postmaster@" + c.Myhostname
	n := NotifyAddrs{HdrfromSender: p.HdrfromNotifySender}
	if n.HdrfromSender == "" {
		n.HdrfromSender = name + " <" + postmaster + ">"
	}
	derive := func(hdr, mail string) string {
		switch {
		case hdr != "":
			return hdr
		case mail != "":
			return name + " <" + mail + ">"
		}
		return n.HdrfromSender
	}
	n.HdrfromAdmin = derive(p.HdrfromNotifyAdmin, p.MailfromNotifyAdmin)
	n.HdrfromSpamadmin = derive(p.HdrfromNotifySpamadmin, p.MailfromNotifySpamadmin)
	n.HdrfromRecip = derive(p.HdrfromNotifyRecip, p.MailfromNotifyRecip)
	// The envelope sender defaults to the address inside the From: field.
	n.MailfromAdmin = p.MailfromNotifyAdmin
	if n.MailfromAdmin == "" {
		n.MailfromAdmin = AngleAddr(n.HdrfromAdmin)
	}
	n.MailfromSpamadmin = p.MailfromNotifySpamadmin
	if n.MailfromSpamadmin == "" {
		n.MailfromSpamadmin = AngleAddr(n.HdrfromSpamadmin)
	}
	n.MailfromRecip = p.MailfromNotifyRecip
	if n.MailfromRecip == "" {
		n.MailfromRecip = AngleAddr(n.HdrfromRecip)
	}
	return n
}

// AngleAddr returns the address between the last <...> of a From: value, or the value itself.
func AngleAddr(s string) string {
	i := strings.LastIndex(s, "<")
	j := strings.LastIndex(s, ">")
	if i >= 0 && j > i {
		return s[i+1 : j]
	}
	return strings.TrimSpace(s)
}

// AddrMap is a per-recipient setting, amavis's "$x" plus "%x" pair: a TOML string (the same
// value for everyone) or a table looked up as amavis's hash lookups are (docs/lookup-tables.md):
// "user+ext@domain", "user@domain", "user@", "domain", ".domain" (and subdomains), ".".
type AddrMap struct {
	all   string
	byKey lookup.HashTable
	first lookup.Maps // per-user tables asked before the rest: SQL's, then LDAP's (Prepend)
}

// ConstAddr is an AddrMap with one value for every recipient.
func ConstAddr(v string) AddrMap { return AddrMap{all: v} }

// UnmarshalTOML takes a string or a table of strings.
func (m *AddrMap) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		*m = ConstAddr(x)
		return nil
	case map[string]any:
		out := AddrMap{byKey: lookup.HashTable{}}
		for k, val := range x {
			s, ok := val.(string)
			if !ok {
				return fmt.Errorf("value for %q must be a string", k)
			}
			out.byKey[strings.ToLower(k)] = s // query keys are lower case
		}
		*m = out
		return nil
	}
	return fmt.Errorf("want an address (string) or a table of address -> value")
}

// MarshalTOML writes the value back as the loader takes it (showconfig).
func (m AddrMap) MarshalTOML() ([]byte, error) {
	if m.byKey == nil {
		return []byte(tomlString(m.all)), nil
	}
	keys := make([]string, 0, len(m.byKey))
	for k, v := range m.byKey {
		keys = append(keys, tomlString(k)+" = "+tomlString(lookup.String(v)))
	}
	sort.Strings(keys)
	return []byte("{ " + strings.Join(keys, ", ") + " }"), nil
}

// Lookup gives the value for recipient addr ("" = none).
func (m AddrMap) Lookup(addr string, o lookup.Options) string {
	if v, _, ok := m.first.Lookup(addr, o); ok {
		return lookup.String(v)
	}
	if m.byKey == nil {
		return m.all
	}
	v, _, _ := m.byKey.Lookup(addr, o)
	return lookup.String(v)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
