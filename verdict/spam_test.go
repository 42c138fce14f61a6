package verdict

import (
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
)

// debianSpam are Debian's spam settings (conf.d/20-debian_defaults) with example.com local.
const debianSpam = `
local_domains_maps = [["acl", [".example.com"]]]
sa_tag_level_deflt = 2.0
sa_tag2_level_deflt = 6.31
sa_kill_level_deflt = 6.31
sa_dsn_cutoff_level = 10
sa_spam_subject_tag = "***SPAM*** "
`

func spamInput(t *testing.T, cfg *conf.Config, score float64, tests ...string) Input {
	in := input(cfg, plainHeader+"\nhello\n")
	in.Spam = &SpamInput{Scanned: true, Score: score, Tests: []string{strings.Join(tests, ",")}}
	return in
}

func prepend(v *Verdict, r *Recipient) string {
	h := v.HeaderEdits(r, "CnZaXJZ2eOZf", false)
	return strings.ReplaceAll(string(h.Prepend()), "\r\n", "\n")
}

// TestSpamHeaders: the X-Spam-* block of amavis's verified example (score 7.5), for the local
// recipient only, and the subject tag.
func TestSpamHeaders(t *testing.T) {
	cfg := parseConf(t, debianSpam)
	v := mustDecide(t, spamInput(t, cfg, 7.5, "FAKE_RULE_A", "FAKE_RULE_B"))
	local, remote := v.Recips[0], v.Recips[1]
	want := "X-Virus-Scanned: amavis at !change-mydomain-variable!.example.com\n" +
		"X-Spam-Flag: YES\nX-Spam-Score: 7.5\nX-Spam-Level: *******\n" +
		"X-Spam-Status: Yes, score=7.5 tagged_above=2 required=6.31 tests=[FAKE_RULE_A,\n" +
		" FAKE_RULE_B] autolearn=unavailable\n"
	if got := prepend(v, local); got != want {
		t.Errorf("local:\n%s\nwant:\n%s", got, want)
	}
	if got := prepend(v, remote); strings.Contains(got, "X-Spam") {
		t.Errorf("remote got spam fields:\n%s", got)
	}
	h := v.HeaderEdits(local, "CnZaXJZ2eOZf", false)
	if h.SubjectTag != "***SPAM*** " || !h.Tagged {
		t.Errorf("subject tag %q, tagged %v", h.SubjectTag, h.Tagged)
	}
	if got := string(h.EditHeader([]byte("Subject: test VIAGRA\n"))); got != "Subject: ***SPAM*** test VIAGRA\n" {
		t.Errorf("subject %q", got)
	}
	if want := "Yes, score=7.5 tagged_above=2 required=6.31 tests=[FAKE_RULE_A, FAKE_RULE_B] autolearn=unavailable"; h.SpamStatus != want {
		t.Errorf("spam-tag status %q", h.SpamStatus)
	}
	if v.LogCategory() != "SPAM" || !local.CCats.Has(CC_SPAM, 0) || !local.CCats.Has(CC_SPAMMY, 0) || !local.CCats.Has(CC_CLEAN, 1) {
		t.Errorf("category %s, %v", v.LogCategory(), local.CCats)
	}
	if v.Hits() != "7.5" || local.Blocked {
		t.Errorf("hits %s, blocked %v", v.Hits(), local.Blocked)
	}
}

// TestSpamLevels walks the levels: below tag nothing, tag -> CC_CLEAN,1 with X-Spam-Flag: NO,
// tag2 -> SPAMMY, kill -> SPAM with final_spam_destiny, lovers, bypass, DSN cutoff.
func TestSpamLevels(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		score      float64
		cat        string
		flag       string // X-Spam-Flag of the local recipient, "" for none
		blocked    bool
		dsnOff     bool
	}{
		{"ham", "", 1.5, "CLEAN", "", false, false},
		{"tagged", "", 2, "CLEAN", "NO", false, false},
		{"spammy", "[[spam_kill_level_maps]]\nconstant = 9", 7, "SPAMMY", "YES", false, false},
		{"spam passed", "", 7, "SPAM", "YES", false, false},
		{"spam discarded", `final_spam_destiny = "D_DISCARD"`, 7, "SPAM", "", true, false},
		{"spam bounced over cutoff", `final_spam_destiny = "D_BOUNCE"`, 12, "SPAM", "", true, true},
		{"spam lover", "final_spam_destiny = \"D_DISCARD\"\n[[spam_lovers_maps]]\nacl = [\"b@example.com\"]", 7, "SPAM", "YES", false, false},
		// the level counts for the DSN even for a recipient that bypasses the checks (Amavis::Notify)
		{"bypass", "bypass_spam_checks_maps = [true]", 1000, "CLEAN", "", false, true},
		{"tag undefined: always tagged", "[[spam_tag_level_maps]]\nhash = { \"b@example.com\" = \"\" }", -5, "CLEAN", "NO", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseConf(t, debianSpam+tc.conf+"\n")
			v := mustDecide(t, spamInput(t, cfg, tc.score, "X"))
			r := v.Recips[0]
			cat := v.LogCategory()
			if cat != tc.cat || r.Blocked != tc.blocked || (r.DSNSuppress != "") != tc.dsnOff {
				t.Errorf("%s blocked=%v dsnSuppress=%q, want %s %v %v", cat, r.Blocked, r.DSNSuppress, tc.cat, tc.blocked, tc.dsnOff)
			}
			if tc.blocked {
				return
			}
			got := prepend(v, r)
			if tc.flag == "" && strings.Contains(got, "X-Spam-Flag") || tc.flag != "" && !strings.Contains(got, "X-Spam-Flag: "+tc.flag+"\n") {
				t.Errorf("want flag %q:\n%s", tc.flag, got)
			}
		})
	}
}

// TestSenderLists: a whitelisted sender is not spam at GTUBE's score, a blacklisted one is spam
// without any score; score_sender_maps adds AM.WBL in front of the tests; AllListed.
func TestSenderLists(t *testing.T) {
	cfg := parseConf(t, debianSpam+`
[[whitelist_sender_maps]]
acl = ["friend@example.org"]
[[blacklist_sender_maps]]
acl = [".spammer.example"]
[[score_sender_maps]]
senders = { "soft@example.org" = -2.5 }
`)
	for _, tc := range []struct {
		sender, from string
		score        float64
		scanned      bool
		want         string // the local copy's added block
		allListed    bool
	}{
		{"friend@example.org", "friend@example.org", 1000, true,
			"X-Spam-Flag: NO\nX-Spam-Score: 0\nX-Spam-Level:\nX-Spam-Status: No, score=1000 tagged_above=2 required=6.31 WHITELISTED\n tests=[GTUBE] autolearn=unavailable\n", true},
		{"x@mail.spammer.example", "x@mail.spammer.example", 0, false,
			"X-Spam-Flag: YES\nX-Spam-Score: 64\nX-Spam-Level: ****************************************************************\nX-Spam-Status: Yes, score=x tagged_above=2 required=6.31 BLACKLISTED tests=[]\n autolearn=unavailable\n", true},
		{"anyone@example.net", "friend@example.org", 20, true, // the From address counts too
			"X-Spam-Flag: NO\nX-Spam-Score: 0\nX-Spam-Level:\nX-Spam-Status: No, score=20 tagged_above=2 required=6.31 WHITELISTED\n tests=[GTUBE] autolearn=unavailable\n", true},
		{"friend@example.org", "friend@example.org", 11.9, true, // whitelisted: tagged only 10 points higher
			"", true},
		{"soft@example.org", "soft@example.org", 5, true,
			"X-Spam-Flag: NO\nX-Spam-Score: 2.5\nX-Spam-Level: **\nX-Spam-Status: No, score=2.5 tagged_above=2 required=6.31 tests=[AM.WBL=-2.5,\n GTUBE] autolearn=unavailable\n", false},
	} {
		t.Run(tc.sender+"/"+tc.from, func(t *testing.T) {
			in := input(cfg, "From: "+tc.from+"\nDate: Sun, 22 Nov 2026 09:45:23 +0000\nMessage-ID: <m1@example.net>\nSubject: x\n\nhi\n")
			in.Sender = tc.sender
			in.Recipients = recips("b@example.com")
			if got := AllListed(&cfg.Policy, in.Sender, in.Header, in.Recipients); got != tc.allListed {
				t.Errorf("AllListed %v", got)
			}
			in.Spam = &SpamInput{Scanned: tc.scanned, Score: tc.score}
			if tc.scanned {
				in.Spam.Tests = []string{"GTUBE"}
			}
			v := mustDecide(t, in)
			got := strings.TrimPrefix(prepend(v, v.Recips[0]), "X-Virus-Scanned: amavis at !change-mydomain-variable!.example.com\n")
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestHits(t *testing.T) {
	cfg := parseConf(t, debianSpam)
	in := spamInput(t, cfg, 6.3100000000000005, "GTUBE=0")
	v := mustDecide(t, in)
	if v.Hits() != "6.31" {
		t.Errorf("hits %q", v.Hits())
	}
	v.Recips[1].Spam.Level = 9.5
	if v.Hits() != "6.31..9.5" {
		t.Errorf("hits %q", v.Hits())
	}
	in.Spam = nil
	if v := mustDecide(t, in); v.Hits() != "-" {
		t.Errorf("hits without a spam check %q", v.Hits())
	}
}

// TestRemoveExistingSpamHeaders: incoming X-Spam-* fields are deleted from every copy, unless
// remove_existing_spam_headers_maps says no for the recipient.
func TestRemoveExistingSpamHeaders(t *testing.T) {
	cfg := parseConf(t, debianSpam+"[[remove_existing_spam_headers_maps]]\nhash = { \"c@remote.example\" = false }\n")
	in := input(cfg, "From: a@example.net\nX-Spam-Flag: YES\nX-Spam-Status: Yes, faked\nSubject: s\n\nhi\n")
	in.Spam = &SpamInput{Scanned: true, Score: 0}
	v := mustDecide(t, in)
	for i, want := range []string{"From: a@example.net\nSubject: s\n", "From: a@example.net\nX-Spam-Flag: YES\nX-Spam-Status: Yes, faked\nSubject: s\n"} {
		h := v.HeaderEdits(v.Recips[i], "", false)
		if got := string(h.EditHeader(in.Header)); got != want {
			t.Errorf("%s: %q, want %q", v.Recips[i].Addr, got, want)
		}
	}
}

// TestSubjectTagMacros: the macros of a spam subject tag, as amavis expands them.
func TestSubjectTagMacros(t *testing.T) {
	cfg := parseConf(t, strings.Replace(debianSpam, `sa_spam_subject_tag = "***SPAM*** "`,
		`sa_spam_subject_tag = "[_SCORE_/_REQD_ _YESNO_ _YESNOCAPS_ _HOSTNAME_ _U_ _LOGID_ _MAILID_ _X_SCORE_] "`, 1)+
		"myhostname = \"mx.example.com\"\n")
	in := spamInput(t, cfg, 7.25, "A")
	in.Received = time.Date(2026, 11, 22, 9, 45, 23, 0, time.UTC)
	v := mustDecide(t, in)
	h := v.HeaderEdits(v.Recips[0], "CnZaXJZ2eOZf", false)
	if want := "[7.25/6.31 Yes YES mx.example.com 20261122T094523Z 12345-03 CnZaXJZ2eOZf _X7.25] "; h.SubjectTag != want {
		t.Errorf("tag %q, want %q", h.SubjectTag, want)
	}
}
