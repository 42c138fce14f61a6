package quarantine

import (
	"sort"
	"strconv"
	"strings"

	"amavisgo/hdr"
)

// Alerts are what the X-Amavis-Alert fields of a quarantined copy report.
type Alerts struct {
	Viruses   []string // the message is in CC_VIRUS: the virus names
	Banned    string   // CC_BANNED: the first banned part, amavis's %F
	BadHeader string   // CC_BADH: the first header finding
}

// SpamInfo is what the spam check found, over all recipients, for the quarantine's X-Spam-*
// fields. A nil *SpamInfo means no spam check ran: the fields then say score=x.
type SpamInfo struct {
	MinLevel, MaxLevel float64
	Tag, Tag2, Kill    *float64 // the lowest levels among the recipients; nil = not defined
	Tag2Reached        bool     // some recipient is CC_SPAMMY (X-Spam-Flag: YES)
	KillReached        bool     // some recipient is CC_SPAM
	Blacklisted        bool
	Whitelisted        bool
	Tests              []string // "NAME=score"
	Autolearn          string   // "" = unavailable
	LevelChar          string   // sa_spam_level_char, "" = no X-Spam-Level bar
}

// Fields are the header fields amavis puts in a quarantined copy between X-Quarantine-ID and its
// Received line (Amavis.pm's prepare_header_edits_for_quarantine): X-Amavis-Alert fields, then
// X-Spam-Flag, X-Spam-Score, X-Spam-Level and X-Spam-Status with the tag/tag2/kill keys of the
// quarantine form.
func Fields(a Alerts, s *SpamInfo) []string {
	var out []string
	if len(a.Viruses) > 0 {
		out = append(out, FoldField("X-Amavis-Alert: INFECTED, message contains virus: "+strings.Join(a.Viruses, ", ")))
	}
	if a.Banned != "" {
		out = append(out, FoldField("X-Amavis-Alert: BANNED, message contains "+a.Banned))
	}
	if a.BadHeader != "" {
		out = append(out, FoldField("X-Amavis-Alert: BAD HEADER SECTION, "+a.BadHeader))
	}
	none := s == nil
	if none {
		s = &SpamInfo{LevelChar: "*"}
	}
	flag := "NO"
	if s.Tag2Reached {
		flag = "YES"
	}
	score := s.MaxLevel
	if s.Blacklisted {
		score = max(score, 64)
	}
	bar := 0.0
	switch {
	case s.Whitelisted || none:
	case s.Blacklisted:
		bar = 64
	default:
		bar = min(max(s.MaxLevel, 0), 64)
	}
	level := ""
	if s.LevelChar != "" {
		level = strings.Repeat(s.LevelChar, int(bar))
	}
	yes := "No"
	if s.Tag2Reached || s.KillReached {
		yes = "Yes"
	}
	sl := "x"
	if !none {
		sl = num(s.MinLevel)
		if mx := num(s.MaxLevel); mx != sl {
			sl += ".." + mx
		}
	}
	opt := func(v *float64) string {
		if v == nil {
			return "x"
		}
		return num(*v)
	}
	// the pieces of X-Spam-Status, each with the blank that separates it or starts its line
	pieces := []string{" " + yes + ",", " score=" + sl, " tag=" + opt(s.Tag), " tag2=" + opt(s.Tag2), " kill=" + opt(s.Kill)}
	if s.Blacklisted {
		pieces = append(pieces, " BLACKLISTED")
	}
	if s.Whitelisted {
		pieces = append(pieces, " WHITELISTED")
	}
	tests := append([]string(nil), s.Tests...)
	sort.Strings(tests)
	for i := range tests {
		tests[i] = " " + tests[i] + ","
	}
	if len(tests) > 0 {
		tests[0] = " tests=[" + tests[0][1:]
		tests[len(tests)-1] = strings.TrimSuffix(tests[len(tests)-1], ",") + "]"
	} else {
		tests = []string{" tests=[]"}
	}
	pieces = append(pieces, tests...)
	autolearn := s.Autolearn
	if autolearn == "" {
		autolearn = "unavailable"
	}
	pieces = append(pieces, " autolearn="+autolearn)
	return append(out, "X-Spam-Flag: "+flag, "X-Spam-Score: "+num(score),
		strings.TrimSuffix("X-Spam-Level: "+level, " "), string(hdr.Fold(nil, "X-Spam-Status:", pieces, spamStatusStyle)))
}

// foldField folds a field longer than 78 columns before blanks, as amavis's hdr
// (Amavis::Out::EditHeader) and our forwarded copy do, with LF.
func FoldField(line string) string {
	if len(line) <= 78 {
		return line
	}
	words := strings.Split(line, " ")
	for i := 1; i < len(words); i++ {
		words[i] = " " + words[i]
	}
	return string(hdr.Fold(nil, words[0], words[1:], hdr.Style{Width: 78, EOL: "\n", FirstMoves: true}))
}

// spamStatusStyle folds X-Spam-Status at 78 columns with LF, the quarantine's line end, the
// first piece on the name's line.
var spamStatusStyle = hdr.Style{Width: 78, EOL: "\n"}

// num is a level as amavis prints it: at most three decimals, no trailing zeros.
func num(v float64) string {
	s := strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(v, 'f', 3, 64), "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}
