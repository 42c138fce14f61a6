package conf

import (
	"strings"

	"amavisgo/lookup"
	"amavisgo/spam"
)

// SpamGlobal holds the spam engines (Amavis::SpamControl calls them); like the virus scanners
// they are built at start-up and on reload, so they are process-wide here.
type SpamGlobal struct {
	// SpamScanners are amavis's @spam_scanners, asked in order; their scores add up. Empty:
	// no spam checking at all (no X-Spam-* fields, Hits "-").
	SpamScanners []spam.Entry `toml:"spam_scanners"`
	// SaMailBodySizeLimit: spamd gets at most this much of the body (0: all of it).
	SaMailBodySizeLimit int64 `toml:"sa_mail_body_size_limit"`
}

func (s *SpamGlobal) validate() error {
	if err := spam.ValidateList(s.SpamScanners); err != nil {
		return invalid("spam_scanners", "%v", err)
	}
	if s.SaMailBodySizeLimit < 0 {
		return invalid("sa_mail_body_size_limit", "must not be negative")
	}
	return nil
}

// SpamPolicy: spam levels, sender lists, spam header fields (amavis's Amavis::Conf :sa group).
// A level left unset never triggers, except the tag level: unset, every recipient gets the
// X-Spam-* fields. Each *_maps is asked first; the level_deflt value answers when no table does.
type SpamPolicy struct {
	SaTagLevelDeflt         *float64 `toml:"sa_tag_level_deflt"`
	SaTag2LevelDeflt        *float64 `toml:"sa_tag2_level_deflt"`
	SaTag3LevelDeflt        *float64 `toml:"sa_tag3_level_deflt"`
	SaKillLevelDeflt        *float64 `toml:"sa_kill_level_deflt"`
	SaDsnCutoffLevel        *float64 `toml:"sa_dsn_cutoff_level"`
	SaQuarantineCutoffLevel *float64 `toml:"sa_quarantine_cutoff_level"`

	SpamTagLevelMaps               lookup.Maps `toml:"spam_tag_level_maps"`
	SpamTag2LevelMaps              lookup.Maps `toml:"spam_tag2_level_maps"`
	SpamTag3LevelMaps              lookup.Maps `toml:"spam_tag3_level_maps"`
	SpamKillLevelMaps              lookup.Maps `toml:"spam_kill_level_maps"`
	SpamDsnCutoffLevelMaps         lookup.Maps `toml:"spam_dsn_cutoff_level_maps"`
	SpamQuarantineCutoffLevelMaps  lookup.Maps `toml:"spam_quarantine_cutoff_level_maps"`
	SpamNotifyadminCutoffLevelMaps lookup.Maps `toml:"spam_notifyadmin_cutoff_level_maps"`

	// Subject tags: CC_CLEAN,1 (tag level), CC_SPAMMY (tag2), CC_SPAMMY,1 (tag3). Macros
	// _SCORE_ _REQD_ _YESNO_ _YESNOCAPS_ _HOSTNAME_ _DATE_ _U_ _LOGID_ _MAILID_ are expanded.
	SaSpamSubjectTag1   string      `toml:"sa_spam_subject_tag1"`
	SaSpamSubjectTag    string      `toml:"sa_spam_subject_tag"`
	SpamSubjectTagMaps  lookup.Maps `toml:"spam_subject_tag_maps"`
	SpamSubjectTag2Maps lookup.Maps `toml:"spam_subject_tag2_maps"`
	SpamSubjectTag3Maps lookup.Maps `toml:"spam_subject_tag3_maps"`
	SaSpamLevelChar     string      `toml:"sa_spam_level_char"`

	// RemoveExistingSpamHeaders deletes incoming X-Spam-* fields from the copies of local
	// recipients; remove_existing_spam_headers_maps decides per recipient first.
	RemoveExistingSpamHeaders     bool        `toml:"remove_existing_spam_headers"`
	RemoveExistingSpamHeadersMaps lookup.Maps `toml:"remove_existing_spam_headers_maps"`

	// Sender lists, looked up with the envelope sender and each From address.
	WhitelistSenderMaps lookup.Maps     `toml:"whitelist_sender_maps"`
	BlacklistSenderMaps lookup.Maps     `toml:"blacklist_sender_maps"`
	ScoreSenderMaps     ScoreSenderMaps `toml:"score_sender_maps"`

	// SpamScannerFailure: "pass" (amavis: a failed engine counts as score 0) or "tempfail"
	// (451: the MTA keeps the message and retries).
	SpamScannerFailure string `toml:"spam_scanner_failure"`
}

func (p *SpamPolicy) setDefaults() {
	p.SaSpamLevelChar = "*"
	p.RemoveExistingSpamHeaders = true
	p.SpamScannerFailure = "pass"
}

func (p *SpamPolicy) validate() error {
	switch p.SpamScannerFailure {
	case "pass", "tempfail":
	default:
		return invalid("spam_scanner_failure", "%q: want \"pass\" or \"tempfail\"", p.SpamScannerFailure)
	}
	for i, e := range p.ScoreSenderMaps {
		if len(e.Senders) == 0 {
			return invalid("score_sender_maps", "entry %d has no senders", i+1)
		}
	}
	return nil
}

// ScoreSenderMaps is amavis's @score_sender_maps: for the recipients an entry names, a table of
// senders and the points added to their mail's score (test AM.WBL); every matching entry counts.
//
//	[[score_sender_maps]]
//	recipients = ["."]        # an acl of recipients; empty: every recipient
//	senders = { "friend@example.org" = -3, ".spammer.example" = 5 }
type ScoreSenderMaps []ScoreSenderEntry

// ScoreSenderEntry is one table of score_sender_maps.
type ScoreSenderEntry struct {
	Recipients []string           `toml:"recipients"`
	Senders    map[string]float64 `toml:"senders"`
}

// Score is the sum of the points the entries matching recipient give sender.
func (m ScoreSenderMaps) Score(recipient, sender string, o lookup.Options) float64 {
	var sum float64
	for _, e := range m {
		if len(e.Recipients) > 0 && !lookup.NewMaps(lookup.ACL(e.Recipients)).Bool(recipient, o) {
			continue
		}
		h := lookup.HashTable{}
		for k, v := range e.Senders {
			h[strings.ToLower(k)] = v
		}
		if v, _, ok := h.Lookup(sender, o); ok {
			if n, ok := lookup.Number(v); ok {
				sum += n
			}
		}
	}
	return sum
}

// Level looks up a spam level for addr: the maps first, then the level_deflt value; nil when
// neither has one (the level is undefined).
func Level(m lookup.Maps, deflt *float64, addr string, o lookup.Options) *float64 {
	if v, _, found := m.Lookup(addr, o); found {
		if n, ok := lookup.Number(v); ok {
			return &n
		}
		return nil
	}
	return deflt
}

// SubjectTag looks up a subject tag for addr: the maps first, then the default string.
func SubjectTag(m lookup.Maps, deflt, addr string, o lookup.Options) string {
	if v, _, found := m.Lookup(addr, o); found {
		return lookup.String(v)
	}
	return deflt
}
