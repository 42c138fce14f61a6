package conf

import (
	"strings"
	"testing"
)

const debianSpam = `
sa_tag_level_deflt = 2.0
sa_tag2_level_deflt = 6.31
sa_kill_level_deflt = 6.31
sa_dsn_cutoff_level = 10
sa_mail_body_size_limit = 204800
sa_spam_subject_tag = "***SPAM*** "
spam_scanner_failure = "tempfail"

[[spam_scanners]]
name = "Local spamd"
type = "Amavis::SpamControl::SpamdClient"
address = "127.0.0.1:783"

[[spam_scanners]]
name = "Local Rspamd"
type = "rspamd"
url = "http://127.0.0.1:11333/checkv2"
score_factor = 0.420666
mta_name = "mx.example.com"

[[score_sender_maps]]
recipients = [".example.com"]
senders = { "friend@example.org" = -3, ".spammer.example" = 5.5 }

[[whitelist_sender_maps]]
acl = ["boss@example.org"]

[policy_bank.MYNETS]
bypass_spam_checks_maps = [true]
sa_tag2_level_deflt = 8
`

func TestSpamSettings(t *testing.T) {
	c, err := Parse("a.toml", []byte(debianSpam))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SpamScanners) != 2 || c.SpamScanners[1].MTAName != "mx.example.com" || *c.SpamScanners[1].ScoreFactor != 0.420666 {
		t.Errorf("spam_scanners %+v", c.SpamScanners)
	}
	if *c.SaTagLevelDeflt != 2 || *c.SaKillLevelDeflt != 6.31 || c.SaTag3LevelDeflt != nil || c.SpamScannerFailure != "tempfail" {
		t.Errorf("levels %v %v %v", c.SaTagLevelDeflt, c.SaKillLevelDeflt, c.SaTag3LevelDeflt)
	}
	o := c.LookupOptions()
	if got := c.ScoreSenderMaps.Score("u@example.com", "x@mail.spammer.example", o); got != 5.5 {
		t.Errorf("score_sender_maps: %v", got)
	}
	if got := c.ScoreSenderMaps.Score("u@other.example", "x@mail.spammer.example", o); got != 0 {
		t.Errorf("score_sender_maps for another recipient: %v", got)
	}
	b, err := c.Bank(&c.Policy, "MYNETS")
	if err != nil || *b.SaTag2LevelDeflt != 8 || *c.SaTag2LevelDeflt != 6.31 || !b.BypassSpamChecksMaps.Bool("x@y", o) {
		t.Errorf("bank: %v", err)
	}
	showRoundTrip(t, "a.toml", []byte(debianSpam))
	for _, bad := range []string{
		"spam_scanner_failure = \"maybe\"\n",
		"[[spam_scanners]]\nname = \"x\"\ntype = \"dspam\"\n",
		"[[spam_scanners]]\nname = \"x\"\ntype = \"spamd\"\nurl = \"http://a/\"\n",
	} {
		if _, err := Parse("a.toml", []byte(bad)); err == nil || !strings.Contains(err.Error(), "spam") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
