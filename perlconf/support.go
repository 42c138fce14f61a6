package perlconf

import (
	"fmt"
	"regexp"
)

// features are the parts of amavis that amavisgo does not implement (yet) and whose settings,
// once the feature is switched on, change what happens to mail: a configuration that switches
// one on does not load unless allow_unimplemented = true. Their other variables only warn.
// Spam checking, SQL, LDAP and DKIM are implemented: their variables are read through conf's
// keys like any other; what remains of them is here.
var features = []feature{
	{
		// Amavis::SpamControl adds $bounce_killer_score to a bounce that does not refer to a
		// message we sent
		name: "the bounce killer", vars: regexp.MustCompile(`^\$bounce_killer`),
		active: func(in *Interp) (string, bool) {
			return "$bounce_killer_score", spamOn(in) && in.Scalar("bounce_killer_score").Number() > 0
		},
	},
	{
		// Amavis::SpamControl lowers the score of a reply to mail the recipient sent, found in
		// the SQL log
		name: "pen pals", vars: regexp.MustCompile(`^\$penpals_`),
		active: func(in *Interp) (string, bool) {
			return "$penpals_bonus_score", spamOn(in) && in.Scalar("penpals_bonus_score").Number() > 0 &&
				len(in.Array("storage_sql_dsn")) > 0
		},
	},
}

type feature struct {
	name string
	vars *regexp.Regexp
	// active reports whether the configuration switches the feature on, and by which variable.
	active func(*Interp) (string, bool)
}

// spamOn reports whether amavis checks spam at all.
func spamOn(in *Interp) bool {
	_, on := spamActive(in)
	return on
}

// spamActive: amavis checks spam unless @bypass_spam_checks_maps answers true for everyone
// (Debian's 20-package sets it to (1)).
func spamActive(in *Interp) (string, bool) {
	for _, v := range in.Array("bypass_spam_checks_maps") {
		switch v = v.deref(); v.Kind {
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
		if features[i].vars.MatchString(name) {
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
