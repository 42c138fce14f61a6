package verdict

import (
	"testing"

	"amavisgo/conf"
	"amavisgo/smtp"
)

func TestActionWord(t *testing.T) {
	P, D, R, B := conf.D_PASS, conf.D_DISCARD, conf.D_REJECT, conf.D_BOUNCE
	for _, tc := range []struct {
		local       bool
		destiny     conf.Destiny
		code        int // of the recipient's reply
		tagged      bool
		dsn         DSN
		originating bool
		want        string
	}{
		{true, P, 250, false, NoDSN, false, "RelayedInbound"},
		{true, P, 250, true, NoDSN, false, "RelayedTaggedInbound"},
		{false, P, 250, false, NoDSN, false, "RelayedOpenRelay"},
		{false, P, 250, false, NoDSN, true, "RelayedOutbound"},
		{true, P, 250, false, NoDSN, true, "RelayedInternal"},
		{true, D, 250, false, NoDSN, false, "DiscardedInbound"},
		{true, R, 554, false, NoDSN, false, "RejectedInbound"},
		{true, R, 554, false, NoDSN, true, "RejectedInternal"},
		{true, R, 250, false, DSNSent, false, "BouncedInbound"}, // SMTP partial reject: amavis bounced
		{true, B, 250, false, DSNSent, false, "BouncedInbound"},
		{true, B, 250, false, DSNSuppressed, false, "NoBounceInbound"},
		{true, P, 451, false, NoDSN, false, "TempFailedInbound"},
	} {
		r := &Recipient{Local: tc.local, Destiny: tc.destiny, Reply: smtp.Reply{Code: tc.code}, Tagged: tc.tagged, DSN: tc.dsn}
		if got := ActionWord(r, tc.originating); got != tc.want {
			t.Errorf("ActionWord(%+v, %v) = %q, want %q", *r, tc.originating, got, tc.want)
		}
	}
	// amavis's check_mail sorts RelayedUntagged* (logged as Relayed*) after RelayedTagged*.
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"RelayedOpenRelay", "RelayedTaggedInbound", "RelayedOpenRelay"}, "{RelayedTaggedInbound,RelayedOpenRelay,Quarantined}"},
		{[]string{"RelayedInbound", "BouncedInbound", "RelayedTaggedOutbound"}, "{BouncedInbound,RelayedTaggedOutbound,RelayedInbound,Quarantined}"},
		{[]string{"TempFailedInbound", "RejectedInbound", "RelayedInternal"}, "{RejectedInbound,RelayedInternal,TempFailedInbound,Quarantined}"},
	} {
		if got := Actions(tc.words, "Quarantined"); got != tc.want {
			t.Errorf("Actions(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
	if got := Actions([]string{"DiscardedInbound"}); got != "{DiscardedInbound}" {
		t.Errorf("Actions = %q", got)
	}
}

func TestLogCategory(t *testing.T) {
	for _, tc := range []struct {
		v    Verdict
		want string
	}{
		{Verdict{CCats: CCats{{1, 0}}}, "CLEAN"},
		{Verdict{CCats: CCats{{4, 7}, {4, 0}, {1, 0}}}, "BAD-HEADER-7"},
		{Verdict{CCats: CCats{{4, 7}, {4, 0}, {1, 0}}, Blocked: true, Blocking: CCat{4, 0}}, "BAD-HEADER-0"},
		{Verdict{CCats: CCats{{7, 1}, {7, 0}, {1, 0}}}, "UNCHECKED-ENCRYPTED"},
		{Verdict{CCats: CCats{{7, 2}, {7, 0}, {1, 0}}}, "UNCHECKED"},
		{Verdict{CCats: CCats{{3, 0}, {1, 0}}, Blocked: true, Blocking: CCat{3, 0}}, "OVERSIZED"},
		{Verdict{CCats: CCats{{2, 2}, {2, 0}, {1, 0}}, Blocked: true, Blocking: CCat{2, 2}}, "MTA-BLOCKED"},
		{Verdict{CCats: CCats{{9, 0}, {1, 0}}, Viruses: []string{"A", "B"}}, "INFECTED (A, B)"},
		{Verdict{}, "OTHER"},
	} {
		if got := tc.v.LogCategory(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.v.CCats, got, tc.want)
		}
	}
}

func TestCCats(t *testing.T) {
	var l CCats
	l.Add(CC_CLEAN, 0)
	l.Add(CC_BADH, 7)
	l.Add(CC_VIRUS, 0)
	l.Add(CC_BADH, 2)
	l.Add(CC_BADH, 7)
	want := "9 4,7 4,2 4 1"
	got := ""
	for i, c := range l {
		if i > 0 {
			got += " "
		}
		got += c.String()
	}
	if got != want || l.Main().Name() != "Virus" || (CCat{4, 2}).Name() != "BadHdr8bit" || (CCat{4, 9}).Name() != "BadHdr" {
		t.Errorf("ccats %q, want %q", got, want)
	}
}

func TestNextHopFailed(t *testing.T) {
	for _, tc := range []struct{ conf, resp, want string }{
		{"", "550 5.1.1 from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <b@example.com>: Recipient address rejected",
			"550 5.1.1 id=12345-03 - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <b@example.com>: Recipient address rejected"},
		{"", "451 4.5.0 From MTA() during fwd-connect (All attempts (1) failed connecting to smtp:[127.0.0.1]:10025): id=12345-03",
			"451 4.5.0 id=12345-03 - Temporary MTA failure on relaying, From MTA() during fwd-connect (All attempts (1) failed connecting to smtp:[127.0.0.1]:10025): id=12345-03"},
		{"soft_bounce = true", "550 5.1.1 from MTA(x): 550 no",
			"450 4.1.1 id=12345-03 - Rejected by next-hop MTA on relaying, from MTA(x): 550 no"},
	} {
		cfg := parseConf(t, tc.conf)
		v := mustDecide(t, input(cfg, dateFrom))
		r := v.Recips[0]
		r.Reply = smtp.ParseReply(tc.resp)
		v.NextHopFailed(r)
		if text(r.Reply) != tc.want || !r.Blocked || v.LogCategory() != "MTA-BLOCKED" {
			t.Errorf("reply %q\n want %q (category %q)", text(r.Reply), tc.want, v.LogCategory())
		}
		if want := map[byte]conf.Destiny{'5': conf.D_REJECT, '4': conf.D_TEMPFAIL}[tc.resp[0]]; r.Destiny != want {
			t.Errorf("destiny %v, want %v", r.Destiny, want)
		}
	}
}
