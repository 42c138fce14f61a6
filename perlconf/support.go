package perlconf

import (
	"fmt"
	"regexp"
)

// features are the parts of amavis that amavisgo does not implement (yet) and whose settings,
// once the feature is switched on, change what happens to mail: a configuration that switches
// one on does not load unless allow_unimplemented = true. Their other variables only warn.
// When a feature is implemented (its settings added to conf), set implemented and its
// variables are read through conf's keys like any other.
var features = []feature{
	{
		name: "spam checking", implemented: false,
		vars:   regexp.MustCompile(`^[$@%](sa_|spam_|penpals_|bounce_killer|whitelist_sender|blacklist_sender|score_sender|per_recip_(white|black)list|reputation|crm114|dspam|bogo|enable_anomy|sa_|first_spam|virus_name_to_spam_score|addr_extension_spam|spam|originating_.*spam|.*_spam_)`),
		active: spamActive,
	},
	{
		name: "SQL lookups and logging", implemented: false,
		vars: regexp.MustCompile(`(?i)sql|partition_tag|timestamp_fmt_mysql`),
		active: func(in *Interp) (string, bool) {
			for _, n := range []string{"lookup_sql_dsn", "storage_sql_dsn"} {
				if len(in.Array(n)) > 0 {
					return "@" + n, true
				}
			}
			return "", false
		},
	},
	{
		name: "LDAP lookups", implemented: false,
		vars: regexp.MustCompile(`ldap`),
		active: func(in *Interp) (string, bool) {
			return "$enable_ldap", in.Scalar("enable_ldap").Truth()
		},
	},
	{
		name: "DKIM signing and verification", implemented: false,
		vars: regexp.MustCompile(`dkim|signed_header_fields`),
		active: func(in *Interp) (string, bool) {
			for _, n := range []string{"enable_dkim_verification", "enable_dkim_signing"} {
				if in.Scalar(n).Truth() {
					return "$" + n, true
				}
			}
			return "dkim_key()", len(in.dkimKeys) > 0
		},
	},
}

type feature struct {
	name        string
	implemented bool
	vars        *regexp.Regexp
	// active reports whether the configuration switches the feature on, and by which variable.
	active func(*Interp) (string, bool)
}

// spamActive: amavis checks spam unless @bypass_spam_checks_maps answers true for everyone
// (Debian's 20-package sets it to (1)).
func spamActive(in *Interp) (string, bool) {
	for _, v := range in.Array("bypass_spam_checks_maps") {
		if v.Kind == ScalarRef {
			v = v.R.V
		}
		switch v.Kind {
		case Undef:
			continue
		case Str, Num:
			return "@bypass_spam_checks_maps", !v.Truth()
		case HashRef:
			if len(v.H.Keys) == 0 {
				continue
			}
		case ArrayRef:
			if len(v.A.E) == 0 {
				continue
			}
		}
		return "@bypass_spam_checks_maps", true
	}
	return "@bypass_spam_checks_maps", true
}

// retired are the variables amavis 2.13 ties to a warning (deprecate_var): setting one has no
// effect.
var retired = map[string]bool{
	"$insert_received_line": true, "$relayhost_is_client": true, "$warnvirussender": true,
	"$warnspamsender": true, "$sa_spam_report_header": true, "$sa_spam_modifies_subj": true,
	"$sa_auto_whitelist": true, "$sa_timeout": true, "$syslog_priority": true, "$SYSLOG_LEVEL": true,
	"$notify_xmailer_header": true,
}

// featureOf returns the unimplemented feature a variable belongs to, or nil.
func featureOf(name string) *feature {
	for i := range features {
		if !features[i].implemented && features[i].vars.MatchString(name) {
			return &features[i]
		}
	}
	return nil
}

// warn records a warning once per message.
func (in *Interp) warn(p Pos, msg string) {
	line := fmt.Sprintf("%s: %s", p, msg)
	if in.warned == nil {
		in.warned = map[string]bool{}
	}
	if !in.warned[line] {
		in.warned[line] = true
		in.Warnings = append(in.Warnings, line)
	}
}
