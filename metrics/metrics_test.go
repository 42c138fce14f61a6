package metrics

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

func scrapeText(t testing.TB, s *Set) string {
	t.Helper()
	families, err := s.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// A message counts as amavis's check_mail counts it: each direction it travels once, each
// distinct outcome once with and without its direction, Relayed for both kinds of relaying.
func TestMessageCounts(t *testing.T) {
	s := New("test", func() int { return 2 })
	s.Message(&Message{
		Originating: true, Size: 1000, Category: "Spam",
		Recipients: []Recipient{
			{Local: true, Status: "RelayedTagged"}, {Local: true, Status: "RelayedTagged"},
			{Local: false, Status: "RelayedUntagged"}, {Local: false, Status: "Bounced"},
		},
		Sections: [7]time.Duration{0, 0, 0, 0, 0, time.Millisecond, 2 * time.Millisecond},
	})
	s.Message(&Message{Category: "Clean", Recipients: []Recipient{{Local: true, Status: "bogus"}}})
	c, _, err := ReadCounters(strings.NewReader(scrapeText(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"InMsgs": 2, "InMsgsOriginating": 1, "InMsgsInternal": 1, "InMsgsOutbound": 1, "InMsgsInbound": 1,
		"InMsgsRecips": 5, "InMsgsRecipsInternal": 2, "InMsgsRecipsOutbound": 2, "InMsgsRecipsOriginating": 4,
		"InMsgsSize": 1000, "InMsgsSizeInternal": 1000,
		"InMsgsStatusRelayedTagged": 1, "InMsgsStatusRelayedTaggedInternal": 1, "InMsgsStatusRelayedTaggedOriginating": 1,
		"InMsgsStatusRelayedUntaggedOutbound": 1, "InMsgsStatusRelayed": 1, "InMsgsStatusRelayedInternal": 1,
		"InMsgsStatusRelayedOutbound": 1, "InMsgsStatusRelayedOriginating": 1, "InMsgsStatusBouncedOutbound": 1,
		"InMsgsStatusUnknown": 1, "InMsgsStatusUnknownInbound": 1,
		"ContentSpamMsgs": 1, "ContentSpamMsgsOriginating": 1, "ContentSpamMsgsInternal": 1, "ContentSpamMsgsOutbound": 1,
		"ContentCleanMsgs": 1, "ContentCleanMsgsInbound": 1, "TimeElapsedSending": 1, "TimeElapsedTotal": 2,
	} {
		if c[k] != want {
			t.Errorf("%s = %v, want %v", k, c[k], want)
		}
	}
	// and the rest, each 1 or the size: the Bounced status without direction and for Originating,
	// RelayedUntagged likewise, InMsgsRecipsInbound, InMsgsSizeOriginating and Outbound, Local.
	if len(c) != 38 || c["InMsgsRecipsLocal"] != 3 {
		t.Errorf("%d counters, want 38: %v", len(c), c)
	}
}

// Virus names beyond the cap count as "other": the registry does not grow without bound.
func TestVirusNamesBounded(t *testing.T) {
	s := New("test", func() int { return 2 })
	for i := range maxVirusNames + 50 {
		s.Message(&Message{Category: "Virus", Viruses: []string{"V" + strings.Repeat("x", i)}})
	}
	text := scrapeText(t, s)
	if n := strings.Count(text, "amavis_virus_detections_total{"); n != maxVirusNames+1 {
		t.Errorf("%d virus series, want %d", n, maxVirusNames+1)
	}
	if !strings.Contains(text, `amavis_virus_detections_total{name="other"} 50`) {
		t.Error(`no "other" series with the 50 names past the cap`)
	}
}

// A nil Set (metrics off) counts nothing and does not fail.
func TestNilSet(t *testing.T) {
	var s *Set
	s.Message(&Message{})
	s.Sent("Relay", 1)
	s.Scanned("x", "clean", time.Second)
	s.Logged(0)
	s.Reloaded(true)
	s.Quarantined("Virus", 1)
	s.QuarantineFailed()
	p := s.Enter()
	p.Set(StateVirus, "1-01")
	s.Leave(p)
}

// amavisd-agent's layout: name, total, rate per hour, share of the total it belongs to.
func TestWriteAgent(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	WriteAgent(&b, Counters{"InMsgs": 4, "ContentVirusMsgs": 1, "InMsgsSize": 3 << 20, "TimeElapsedTotal": 2000,
		"virus.byname.Eicar-Test-Signature": 1}, start, start.Add(2*time.Hour+3*time.Second+450*time.Millisecond))
	want := "sysUpTime       TimeTicks 720345 (0 days, 2:00:03.45)\n" +
		"ContentVirusMsgs                         1      0/h    25.0 % (InMsgs)\n" +
		"InMsgs                                   4      2/h   100.0 % (InMsgs)\n" +
		"InMsgsSize                               3MB    1MB/h 100.0 % (InMsgsSize)\n" +
		"TimeElapsedTotal                         2 s      0.500 s/msg (InMsgs)\n" +
		"\n" +
		"virus.byname.Eicar-Test-Signature        1      0/h  100.0 % (ContentVirusMsgs)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	// a total of 0: "---" in the share's column, for sizes one column short as in amavisd-agent
	b.Reset()
	WriteAgent(&b, Counters{"InMsgs": 0, "ContentCleanMsgs": 0, "InMsgsSize": 0}, start, start.Add(time.Hour))
	want = "sysUpTime       TimeTicks 360000 (0 days, 1:00:00.00)\n" +
		"ContentCleanMsgs                         0      0/h     --- % (InMsgs)\n" +
		"InMsgs                                   0      0/h     --- % (InMsgs)\n" +
		"InMsgsSize                               0MB    0MB/h  --- % (InMsgsSize)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func FuzzReadCounters(f *testing.F) {
	f.Add("amavis_in_messages_total 3\n")
	f.Add("# TYPE amavis_log_entries_total counter\namavis_log_entries_total{level=\"Warning\"} 2\n")
	f.Add("amavis_check_duration_seconds_sum{section=\"Total\"} 1.5\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, _, err := ReadCounters(strings.NewReader(text))
		if err == nil && c == nil {
			t.Fatal("no counters and no error")
		}
	})
}
