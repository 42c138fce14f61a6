package perlconf

import (
	"os"
	"strings"
)

// setDefaults gives the variables the values amavis has before the first configuration file
// runs (Amavis::Conf's BEGIN blocks and build_default_maps) that files read or refer to: the
// product and version, MYHOME and mydomain, and the default lookup lists, which hold live
// references to the legacy variables (a file that sets @bypass_virus_checks_acl changes what
// @bypass_virus_checks_maps answers).
func setDefaults(in *Interp) {
	set := func(name string, v Value) { in.scalars[name].V = v }
	set("myproduct_name", str("amavis"))
	set("myversion_id", str("2.13.0"))
	set("myversion_date", str("20230106"))
	set("myversion", str("amavis-2.13.0 (20230106)"))
	set("MYHOME", str("/var/amavis"))
	set("mydomain", str("!change-mydomain-variable!.example.com"))
	host, _ := os.Hostname()
	set("myhostname", str(host))
	// the quarantine addresses the default @..._quarantine_to_maps refer to
	for _, q := range []string{"virus", "banned", "unchecked", "spam", "bad_header", "clean", "archive"} {
		set(q+"_quarantine_to", str(strings.ReplaceAll(q, "_", "-")+"-quarantine"))
	}
	set("remove_existing_spam_headers", num(1))
	// the engine amavis asks once spam checking is on
	in.arrays["spam_scanners"].E = []Value{{Kind: ArrayRef, A: &Array{E: words("SpamAssassin Amavis::SpamControl::SpamAssassin")}}}
	in.arrays["inet_acl"].E = words("127.0.0.1 [::1]")
	in.arrays["mynetworks"].E = words("127.0.0.0/8 [::1] 169.254.0.0/16 [fe80::]/10 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 [fc00::]/7")

	sref := func(n string) Value { return Value{Kind: ScalarRef, R: in.scalars[n]} }
	aref := func(n string) Value { return Value{Kind: ArrayRef, A: in.arrays[n]} }
	href := func(n string) Value { return Value{Kind: HashRef, H: in.hashes[n]} }
	maps := func(name string, v ...Value) { in.arrays[name].E = v }
	triple := func(base string) []Value { return []Value{href(base), aref(base + "_acl"), sref(base + "_re")} }

	maps("local_domains_maps", triple("local_domains")...)
	maps("mynetworks_maps", aref("mynetworks"))
	maps("client_ipaddr_policy", aref("mynetworks"), str("MYNETS"))
	maps("ip_repu_ignore_maps", aref("ip_repu_ignore_networks"))
	for _, b := range []string{"bypass_virus_checks", "bypass_spam_checks", "bypass_banned_checks", "bypass_header_checks",
		"virus_lovers", "spam_lovers", "banned_files_lovers", "bad_header_lovers", "whitelist_sender", "blacklist_sender"} {
		maps(b+"_maps", triple(b)...)
	}
	for _, w := range []string{"warnvirusrecip", "warnbannedrecip", "warnbadhrecip", "newvirus_admin", "bad_header_admin",
		"virus_quarantine_to", "banned_quarantine_to", "unchecked_quarantine_to", "spam_quarantine_to",
		"spam_quarantine_bysender_to", "bad_header_quarantine_to", "clean_quarantine_to", "archive_quarantine_to",
		"addr_extension_virus", "addr_extension_spam", "addr_extension_banned", "addr_extension_bad_header",
		"remove_existing_spam_headers"} {
		maps(w+"_maps", sref(w))
	}
	maps("virus_admin_maps", href("virus_admin"), sref("virus_admin"))
	maps("banned_admin_maps", sref("banned_admin"), href("virus_admin"), sref("virus_admin"))
	maps("spam_admin_maps", href("spam_admin"), sref("spam_admin"))
	maps("keep_decoded_original_maps", sref("keep_decoded_original_re"))
	maps("map_full_type_to_short_type_maps", sref("map_full_type_to_short_type_re"))
	maps("banned_filename_maps", str("DEFAULT"))
	maps("viruses_that_fake_sender_maps", sref("viruses_that_fake_sender_re"), num(1))
	maps("spam_tag_level_maps", sref("sa_tag_level_deflt"))
	maps("spam_tag2_level_maps", sref("sa_tag2_level_deflt"))
	maps("spam_tag3_level_maps", sref("sa_tag3_level_deflt"))
	maps("spam_kill_level_maps", sref("sa_kill_level_deflt"))
	maps("spam_dsn_cutoff_level_maps", sref("sa_dsn_cutoff_level"))
	maps("spam_dsn_cutoff_level_bysender_maps", sref("sa_dsn_cutoff_level"))
	maps("spam_quarantine_cutoff_level_maps", sref("sa_quarantine_cutoff_level"))
	maps("spam_subject_tag_maps", sref("sa_spam_subject_tag1"))
	maps("spam_subject_tag2_maps", sref("sa_spam_subject_tag"))
	maps("debug_sender_maps", aref("debug_sender_acl"))
}

func words(s string) []Value {
	f := strings.Fields(s)
	out := make([]Value, len(f))
	for i, w := range f {
		out[i] = str(w)
	}
	return out
}
