package quarantine

import (
	"strings"
	"testing"
)

func TestFields(t *testing.T) {
	two, six := 2.0, 6.31
	for _, tc := range []struct {
		name string
		a    Alerts
		s    *SpamInfo
		want string
	}{
		{"EICAR, no spam check", Alerts{Viruses: []string{"Eicar-Test-Signature"}}, nil,
			"X-Amavis-Alert: INFECTED, message contains virus: Eicar-Test-Signature\nX-Spam-Flag: NO\nX-Spam-Score: 0\nX-Spam-Level:\n" +
				"X-Spam-Status: No, score=x tag=x tag2=x kill=x tests=[] autolearn=unavailable"},
		{"spam", Alerts{}, &SpamInfo{MinLevel: 7.5, MaxLevel: 7.5, Tag: &two, Tag2: &six, Kill: &six, Tag2Reached: true, KillReached: true,
			Tests: []string{"FAKE_RULE_B=2", "FAKE_RULE_A=1.1", "A_VERY_LONG_RULE_NAME_TO_FORCE_FOLDING=4.4"}, LevelChar: "*"},
			"X-Spam-Flag: YES\nX-Spam-Score: 7.5\nX-Spam-Level: *******\n" +
				"X-Spam-Status: Yes, score=7.5 tag=2 tag2=6.31 kill=6.31\n tests=[A_VERY_LONG_RULE_NAME_TO_FORCE_FOLDING=4.4, FAKE_RULE_A=1.1,\n FAKE_RULE_B=2] autolearn=unavailable"},
		{"banned and bad header, blacklisted", Alerts{Banned: ".exe,.exe-ms,run.exe", BadHeader: "Non-encoded 8-bit data"},
			&SpamInfo{MinLevel: 1.25, MaxLevel: 3.1234, Blacklisted: true, Autolearn: "no", LevelChar: "*"},
			"X-Amavis-Alert: BANNED, message contains .exe,.exe-ms,run.exe\nX-Amavis-Alert: BAD HEADER SECTION, Non-encoded 8-bit data\n" +
				"X-Spam-Flag: NO\nX-Spam-Score: 64\nX-Spam-Level: " + strings.Repeat("*", 64) + "\n" +
				"X-Spam-Status: No, score=1.25..3.123 tag=x tag2=x kill=x BLACKLISTED tests=[]\n autolearn=no"},
	} {
		if got := strings.Join(Fields(tc.a, tc.s), "\n"); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// The leading fields of a quarantined copy as amavis's hdr writes them (values checked against
// Amavis::Out::EditHeader): X-Envelope-To on one line while the addresses fit, an empty
// X-Envelope-To-Blocked without a blank after the colon, X-Amavis-Alert folded as in the
// forwarded copy.
func TestStoredFieldsFolding(t *testing.T) {
	four := []string{"recipient-number-1@example.com", "recipient-number-2@example.com", "recipient-number-3@example.com", "recipient-number-4@example.com"}
	for _, tc := range []struct{ got, want string }{
		{addrField("X-Envelope-To:", []string{"x@example.com", "y@example.com"}), "X-Envelope-To: <x@example.com>, <y@example.com>"},
		{addrField("X-Envelope-To-Blocked:", nil), "X-Envelope-To-Blocked:"},
		{addrField("X-Envelope-To:", four), "X-Envelope-To: <recipient-number-1@example.com>,\n <recipient-number-2@example.com>, <recipient-number-3@example.com>,\n <recipient-number-4@example.com>"},
		{Fields(Alerts{Viruses: []string{"Eicar-Test-Signature.UNOFFICIAL"}}, nil)[0], "X-Amavis-Alert: INFECTED, message contains virus:\n Eicar-Test-Signature.UNOFFICIAL"},
		{Fields(Alerts{Banned: "application/octet-stream,.asc,invoice.pdf.exe"}, nil)[0], "X-Amavis-Alert: BANNED, message contains\n application/octet-stream,.asc,invoice.pdf.exe"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q\nwant %q", tc.got, tc.want)
		}
	}
}
