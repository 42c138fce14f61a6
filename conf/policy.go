package conf

import (
	"reflect"

	"amavisgo/lookup"
)

// Policy holds the settings a policy bank may override ("dynamic" variables in amavis). It is
// made of groups, one per subsystem, each in its own file; TOML sees one flat set of keys.
type Policy struct {
	ProtocolPolicy
	VerdictPolicy
	QuarantinePolicy
	DKIMPolicy  // enable_dkim_signing, enable_dkim_verification... (conf/dkim.go)
	AMPDPPolicy // prepend_header_fields_hdridx (conf/ampdp.go)
	HeaderFixPolicy
	LogPolicy
	SpamPolicy // conf/spam.go

	// PolicyBankPath records the banks loaded, "ORIGINATING/MYNETS" (amavis's %p); "" for the base.
	PolicyBankPath string `toml:"-"`
}

// ProtocolPolicy: the SMTP/LMTP dialog, access control and forwarding.
type ProtocolPolicy struct {
	Protocol    string        `toml:"protocol"` // "", "SMTP", "LMTP" or "AM.PDP"
	InetACL     lookup.IPList `toml:"inet_acl"`
	Originating bool          `toml:"originating"`
	LogLevel    int           `toml:"log_level"`

	ForwardMethod string `toml:"forward_method"`
	NotifyMethod  string `toml:"notify_method"` // default: forward_method

	SmtpdGreetingBanner   string `toml:"smtpd_greeting_banner"`
	SmtpdQuitBanner       string `toml:"smtpd_quit_banner"`
	SmtpdMessageSizeLimit int64  `toml:"smtpd_message_size_limit"`
	SmtpdRecipientLimit   int    `toml:"smtpd_recipient_limit"`
	// SmtpdDiscardEhloKeywords are EHLO keywords not announced (removing 8BITMIME also
	// removes SMTPUTF8).
	SmtpdDiscardEhloKeywords []string `toml:"smtpd_discard_ehlo_keywords"`

	PropagateDSNIfPossible      bool `toml:"propagate_dsn_if_possible"`
	TerminateDSNOnNotifySuccess bool `toml:"terminate_dsn_on_notify_success"`

	X_HEADER_TAG  string `toml:"X_HEADER_TAG"`
	X_HEADER_LINE string `toml:"X_HEADER_LINE"` // default: "amavis at " + mydomain
}

func (p *ProtocolPolicy) setDefaults() {
	p.InetACL = lookup.MustIPList("127.0.0.1", "[::1]")
	p.ForwardMethod = "smtp:[127.0.0.1]:10025"
	p.SmtpdGreetingBanner = "${helo-name} ${protocol} ${product} service ready"
	p.SmtpdQuitBanner = "${helo-name} ${product} closing transmission channel"
	p.SmtpdRecipientLimit = 1100
	p.PropagateDSNIfPossible = true
	p.X_HEADER_TAG = "X-Virus-Scanned"
}

func (p *ProtocolPolicy) validate() error {
	switch p.Protocol {
	case "", "SMTP", "LMTP", "AM.PDP":
	default:
		return invalid("protocol", "unknown protocol %q (SMTP, LMTP or AM.PDP)", p.Protocol)
	}
	if _, err := ParseMethod(p.ForwardMethod); err != nil {
		return invalid("forward_method", "%v", err)
	}
	if p.NotifyMethod != "" {
		if _, err := ParseMethod(p.NotifyMethod); err != nil {
			return invalid("notify_method", "%v", err)
		}
	}
	if p.SmtpdMessageSizeLimit < 0 {
		return invalid("smtpd_message_size_limit", "must not be negative")
	}
	if p.SmtpdRecipientLimit < 1 {
		return invalid("smtpd_recipient_limit", "must be at least 1")
	}
	return nil
}

// Forward is forward_method, parsed (validated at load).
func (p *Policy) Forward() Method { m, _ := ParseMethod(p.ForwardMethod); return m }

// Notify is notify_method, parsed; it defaults to forward_method.
func (p *Policy) Notify() Method {
	if p.NotifyMethod == "" {
		return p.Forward()
	}
	m, _ := ParseMethod(p.NotifyMethod)
	return m
}

// XHeaderLine is X_HEADER_LINE with its after-default, "amavis at <mydomain>".
func (c *Config) XHeaderLine(p *Policy) string {
	if p.X_HEADER_LINE != "" {
		return p.X_HEADER_LINE
	}
	return "amavis at " + c.Mydomain
}

func (p *Policy) setDefaults() {
	p.ProtocolPolicy.setDefaults()
	p.VerdictPolicy.setDefaults()
	p.QuarantinePolicy.setDefaults()
	p.DKIMPolicy.setDefaults()
	p.HeaderFixPolicy.setDefaults()
	p.SpamPolicy.setDefaults()
}

func (p *Policy) validate() error {
	if err := p.ProtocolPolicy.validate(); err != nil {
		return err
	}
	if err := p.VerdictPolicy.validate(); err != nil {
		return err
	}
	if err := p.DKIMPolicy.validate(); err != nil {
		return err
	}
	if err := p.LogPolicy.validate(); err != nil {
		return err
	}
	if err := p.SpamPolicy.validate(); err != nil {
		return err
	}
	return p.QuarantinePolicy.validate()
}

// clone copies a policy so that a bank can be decoded over it: maps, slices and pointers are copied too,
// because the TOML decoder merges into an existing map and reuses a slice's array, which must
// not be the base bank's.
func (p *Policy) clone() *Policy {
	c := *p
	copyMapsAndSlices(reflect.ValueOf(&c).Elem())
	return &c
}

func copyMapsAndSlices(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.Struct:
			copyMapsAndSlices(f)
		case reflect.Slice:
			if !f.IsNil() {
				f.Set(reflect.AppendSlice(reflect.MakeSlice(f.Type(), 0, f.Len()), f))
			}
		case reflect.Pointer: // e.g. a spam level: the decoder writes through it
			if !f.IsNil() && f.Elem().Kind() != reflect.Struct {
				c := reflect.New(f.Type().Elem())
				c.Elem().Set(f.Elem())
				f.Set(c)
			}
		case reflect.Map:
			if f.IsNil() {
				continue
			}
			m := reflect.MakeMapWithSize(f.Type(), f.Len())
			iter := f.MapRange()
			for iter.Next() {
				m.SetMapIndex(iter.Key(), iter.Value())
			}
			f.Set(m)
		}
	}
}
