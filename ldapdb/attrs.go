// Package ldapdb is amavis's LDAP lookups (Amavis::Lookup::LDAP, Amavis::LDAP::Connection,
// README.ldap): a recipient's entries in the directory, searched once per message, become a
// lookup.Record whose rows are the entries (the most specific key first) and whose fields are
// the amavis attributes, lower-cased.
package ldapdb

import (
	"strings"

	"amavisgo/lookup"
)

// Attr is one of amavis's LDAP attributes: how its value is read and which *_maps setting
// amavis puts it in front of (Amavis.pm's list of LDAPattr objects).
type Attr struct {
	Name    string // as the schema spells it; entries are read case-insensitively
	Kind    lookup.FieldKind
	Setting string // the TOML key (amavis's variable) the attribute overrides
	// List attributes are multivalued (the white and black lists): the row holds every value
	// as a []string.
	List bool
}

// Field is the name of the attribute's field in a fetched row.
func (a Attr) Field() string { return strings.ToLower(a.Name) }

// Attrs are all of amavis's attributes (Amavis::Lookup::LDAP's @ldap_attrs; amavis reads no
// others from an entry, so amavisSpamTag3Level and amavisSpamSubjectTag3, which Amavis.pm
// puts in front of their maps, never answer there and are not read here). Booleans hold
// TRUE or FALSE in the directory; a fetched row has "Y" or "N" for them, the form
// lookup.FieldBool reads.
var Attrs = []Attr{
	{"amavisLocal", lookup.FieldBoolDefaultTrue, "local_domains_maps", false},
	{"amavisVirusLover", lookup.FieldBool, "virus_lovers_maps", false},
	{"amavisSpamLover", lookup.FieldBool, "spam_lovers_maps", false},
	{"amavisUncheckedLover", lookup.FieldBool, "unchecked_lovers_maps", false},
	{"amavisBannedFilesLover", lookup.FieldBool, "banned_files_lovers_maps", false},
	{"amavisBadHeaderLover", lookup.FieldBool, "bad_header_lovers_maps", false},
	{"amavisBypassVirusChecks", lookup.FieldBool, "bypass_virus_checks_maps", false},
	{"amavisBypassSpamChecks", lookup.FieldBool, "bypass_spam_checks_maps", false},
	{"amavisBypassBannedChecks", lookup.FieldBool, "bypass_banned_checks_maps", false},
	{"amavisBypassHeaderChecks", lookup.FieldBool, "bypass_header_checks_maps", false},
	{"amavisSpamTagLevel", lookup.FieldNumber, "spam_tag_level_maps", false},
	{"amavisSpamTag2Level", lookup.FieldNumber, "spam_tag2_level_maps", false},
	{"amavisSpamKillLevel", lookup.FieldNumber, "spam_kill_level_maps", false},
	{"amavisSpamDsnCutoffLevel", lookup.FieldNumber, "spam_dsn_cutoff_level_maps", false},
	{"amavisSpamQuarantineCutoffLevel", lookup.FieldNumber, "spam_quarantine_cutoff_level_maps", false},
	{"amavisSpamSubjectTag", lookup.FieldString, "spam_subject_tag_maps", false},
	{"amavisSpamSubjectTag2", lookup.FieldString, "spam_subject_tag2_maps", false},
	{"amavisVirusQuarantineTo", lookup.FieldString, "virus_quarantine_to", false},
	{"amavisSpamQuarantineTo", lookup.FieldString, "spam_quarantine_to", false},
	{"amavisBannedQuarantineTo", lookup.FieldString, "banned_quarantine_to", false},
	{"amavisUncheckedQuarantineTo", lookup.FieldString, "unchecked_quarantine_to", false},
	{"amavisBadHeaderQuarantineTo", lookup.FieldString, "bad_header_quarantine_to", false},
	{"amavisCleanQuarantineTo", lookup.FieldString, "clean_quarantine_to", false},
	{"amavisArchiveQuarantineTo", lookup.FieldString, "archive_quarantine_to", false},
	{"amavisMessageSizeLimit", lookup.FieldNumber, "message_size_limit_maps", false},
	{"amavisAddrExtensionVirus", lookup.FieldString, "addr_extension_virus_maps", false},
	{"amavisAddrExtensionSpam", lookup.FieldString, "addr_extension_spam_maps", false},
	{"amavisAddrExtensionBanned", lookup.FieldString, "addr_extension_banned_maps", false},
	{"amavisAddrExtensionBadHeader", lookup.FieldString, "addr_extension_bad_header_maps", false},
	{"amavisWarnVirusRecip", lookup.FieldBool, "warnvirusrecip_maps", false},
	{"amavisWarnBannedRecip", lookup.FieldBool, "warnbannedrecip_maps", false},
	{"amavisWarnBadHeaderRecip", lookup.FieldBool, "warnbadhrecip_maps", false},
	{"amavisNewVirusAdmin", lookup.FieldString, "newvirus_admin", false},
	{"amavisVirusAdmin", lookup.FieldString, "virus_admin", false},
	{"amavisSpamAdmin", lookup.FieldString, "spam_admin", false},
	{"amavisBannedAdmin", lookup.FieldString, "banned_admin", false},
	{"amavisBadHeaderAdmin", lookup.FieldString, "bad_header_admin", false},
	{"amavisBannedRuleNames", lookup.FieldString, "banned_filename_maps", false},
	{"amavisDisclaimerOptions", lookup.FieldString, "disclaimer_options_bysender_maps", false},
	{"amavisForwardMethod", lookup.FieldString, "forward_method_maps", false},
	{"amavisSaUserConf", lookup.FieldString, "sa_userconf_maps", false},
	{"amavisSaUserName", lookup.FieldString, "sa_username_maps", false},
	// Amavis::SpamControl compares the sender with these lists itself, before
	// whitelist_sender_maps and blacklist_sender_maps: they are put in front of no setting.
	{"amavisWhitelistSender", lookup.FieldString, "whitelist_sender_maps", true},
	{"amavisBlacklistSender", lookup.FieldString, "blacklist_sender_maps", true},
}
