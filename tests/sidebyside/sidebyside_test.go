package sidebyside

import (
	"fmt"
	"io"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"amavisgo/internal/testenv"
)

// pair is Debian's amavisd and ours, configured alike.
type pair struct{ amavis, ours *side }

func startPair(t *testing.T, clamd *testenv.Clamd, s settings) *pair {
	t.Helper()
	var p pair
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.ours = startSide(t, "ours", clamd, s) }()
	p.amavis = startSide(t, "amavis", clamd, s)
	wg.Wait()
	if p.ours == nil {
		t.FailNow()
	}
	return &p
}

// comparison is one aspect of one case on both sides, normalised.
type comparison struct {
	caseName, aspect string
	amavis, ours     string
}

func (c comparison) same() bool { return c.amavis == c.ours }

// compare normalises both outcomes of a case and lists their aspects.
func compare(name string, p *pair, a, o *outcome) []comparison {
	na := func(s string) string {
		return normalise(s, a.ids, []string{p.amavis.port, p.amavis.next.Port()})
	}
	no := func(s string) string {
		return normalise(s, o.ids, []string{p.ours.port, p.ours.next.Port()})
	}
	cs := []comparison{
		{name, "reply", na(strings.Join(a.transcript, "\n")), no(strings.Join(o.transcript, "\n"))},
		{name, "log", na(strings.Join(a.log, "\n")), no(strings.Join(o.log, "\n"))},
	}
	// Transactions pair up by their envelope; their order (a notice before or after the
	// message) is an aspect of its own. clamd's output in a notice is too (scanners, not
	// notices: amavis has clamd scan the parts directory, we the message's).
	ta, to := transactions(a.nexthop), transactions(o.nexthop)
	var orderA, orderO []string
	for _, x := range ta {
		orderA = append(orderA, envelope(na(x)))
	}
	for _, y := range to {
		orderO = append(orderO, envelope(no(y)))
	}
	cs = append(cs, comparison{name, "next hop order", strings.Join(orderA, "\n"), strings.Join(orderO, "\n")})
	used := make([]bool, len(to))
	for _, x := range ta {
		x = na(x)
		y := ""
		for j, c := range to {
			if !used[j] && envelope(no(c)) == envelope(x) {
				used[j], y = true, no(c)
				break
			}
		}
		if !strings.HasPrefix(x, "MAIL FROM:<"+sender+">") {
			cs = append(cs, comparison{name, "notice text " + envelope(x), noticeText(x), noticeText(y)},
				comparison{name, "scanner output in " + envelope(x), strings.Join(scannerOutput.FindAllString(x, -1), ""),
					strings.Join(scannerOutput.FindAllString(y, -1), "")})
			x, y = scannerOutput.ReplaceAllString(x, ""), scannerOutput.ReplaceAllString(y, "")
		}
		cs = append(cs, comparison{name, "next hop " + envelope(x), x, y})
	}
	for j, c := range to {
		if !used[j] {
			y := no(c)
			cs = append(cs, comparison{name, "next hop " + envelope(y), "", y})
		}
	}
	qa, qo := sortedValues(a.quarantine), sortedValues(o.quarantine)
	for i := 0; i < max(len(qa), len(qo)); i++ {
		var x, y string
		if i < len(qa) {
			x = na(qa[i])
		}
		if i < len(qo) {
			y = no(qo[i])
		}
		cs = append(cs, comparison{name, fmt.Sprintf("quarantine #%d", i+1), x, y})
	}
	if a.release != "" || o.release != "" {
		ra, ro := strings.Split(na(a.release), "--- "), strings.Split(no(o.release), "--- ")
		for i := range max(len(ra), len(ro)) {
			var x, y string
			if i < len(ra) {
				x = ra[i]
			}
			if i < len(ro) {
				y = ro[i]
			}
			what, _, _ := strings.Cut(x+y, " ---")
			if i == 0 {
				what = "release"
			}
			cs = append(cs, comparison{name, "AM.PDP reply: " + what, x, y})
		}
	}
	return cs
}

// envelope names a transaction at the next hop by its sender and recipients.
func envelope(s string) string {
	var env []string
	for _, l := range strings.Split(s, "\n") {
		if l == "DATA" {
			break
		}
		f := strings.Fields(l)
		if len(f) >= 2 {
			env = append(env, f[1])
		}
	}
	return strings.Join(env, " ")
}

func sortedValues(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// transactions cuts the next hop's line stream into transactions, MAIL FROM to the final dot,
// leaving out session commands (EHLO, RSET, NOOP, QUIT), which the other fidelity work covers.
func transactions(lines []string) []string {
	var out []string
	var cur []string
	in, data := false, false
	for _, l := range lines {
		switch {
		case data && l == ".":
			cur = append(cur, l)
			out = append(out, strings.Join(cur, "\n"))
			cur, in, data = nil, false, false
		case data:
			cur = append(cur, l)
		case strings.HasPrefix(strings.ToUpper(l), "MAIL FROM:"):
			cur, in = []string{l}, true
		case in && strings.ToUpper(l) == "DATA":
			cur, data = append(cur, l), true
		case in && strings.HasPrefix(strings.ToUpper(l), "RCPT TO:"):
			cur = append(cur, l)
		}
	}
	return out
}

// TestSideBySide sends the same messages to Debian's amavisd-new and to ours, under each
// final destiny for viruses and banned contents, and reports what differs. Aspects listed
// in mustMatch fail the test when they differ; the others are reported.
func TestSideBySide(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two daemons per destiny")
	}
	clamd := testenv.StartClamd(t)
	type tcase struct {
		name  string
		msg   string
		rcpts []string // default: rcpt
	}
	var all []comparison
	var mu sync.Mutex
	for _, destiny := range []string{"D_PASS", "D_DISCARD", "D_BOUNCE", "D_REJECT"} {
		t.Run(destiny, func(t *testing.T) {
			p := startPair(t, clamd, settings{destiny: destiny})
			var cases []tcase
			switch destiny {
			case "D_DISCARD":
				cases = append(cases,
					tcase{"clean", message("clean mail", "Hello.\n", "", "", "", ""), nil},
					tcase{"bad-header", message("caf\xc3\xa9 8-bit subject", "Hello.\n", "", "", "", ""), nil},
					// one recipient taken, one refused by the next hop: a DSN naming the Remote-MTA
					tcase{"next-hop-refuses", message("partly refused", "Hello.\n", "", "", "", ""), []string{rcpt, refused}},
				)
			case "D_BOUNCE":
				// a UTF-8 Subject: quoted-printable text, the header as message/global-headers
				// (an ASCII Message-ID: amavis's %m would show a UTF-8 one encoded twice)
				cases = append(cases, tcase{"eicar-utf8-subject", strings.Replace(message("eicar \xc3\xa9t\xc3\xa9 \xe2\x82\xac", testenv.EICAR+"\n", "", "", "", ""),
					"Message-ID: <eicar-\xc3\xa9t\xc3\xa9-\xe2\x82\xac@", "Message-ID: <eicar-utf8@", 1), nil},
					// two recipients: X-Envelope-To on one line, a warning to each
					tcase{"eicar-two-rcpts", message("eicar twice", testenv.EICAR+"\n", "", "", "", ""), []string{rcpt, "second@example.com"}})
				// a duplicate Subject is a bad header for both
				cases = append(cases, tcase{"bad-header", strings.Replace(message("bounced bad header", "Hello.\n", "", "", "", ""),
					"Subject: ", "Subject: once\r\nSubject: ", 1), nil})
			}
			w := eicarWrappings()
			for _, k := range []string{"eicar-body", "eicar-b64", "eicar-qp", "eicar-zip", "eicar-gz"} {
				cases = append(cases, tcase{k, w[k], nil})
			}
			cases = append(cases, tcase{"banned", message("banned exe", "see attachment\n", "invoice.pdf.exe", "application/octet-stream", "base64", b64([]byte("just text\n"))), nil})
			for _, c := range cases {
				name := destiny + "/" + c.name
				rcpts := c.rcpts
				if rcpts == nil {
					rcpts = []string{rcpt}
				}
				a := p.amavis.run(t, c.msg, rcpts)
				o := p.ours.run(t, c.msg, rcpts)
				if destiny == "D_DISCARD" && c.name == "eicar-body" {
					releaseBoth(t, p, a, o)
				}
				cs := compare(name, p, a, o)
				mu.Lock()
				all = append(all, cs...)
				mu.Unlock()
				for _, c := range cs {
					if !c.same() && mustMatch(c) {
						t.Errorf("%s, %s: amavis and ours differ:\n%s", c.caseName, c.aspect, diff(c.amavis, c.ours))
					}
				}
			}
		})
	}
	report(t, all)
}

// releaseBoth releases each side's quarantined copy of the message and records the client's
// output, the log lines and what the release sent on.
func releaseBoth(t *testing.T, p *pair, a, o *outcome) {
	for _, x := range []struct {
		sd *side
		o  *outcome
	}{{p.amavis, a}, {p.ours, o}} {
		var name string // as the log names it: relative to QUARANTINEDIR
		for path := range x.o.quarantine {
			name, _ = filepath.Rel(filepath.Join(x.sd.home, "virusmails"), path)
		}
		if name == "" {
			x.o.release = "(nothing quarantined)"
			continue
		}
		lines, logFrom := len(x.sd.next.Lines()), x.sd.logSize()
		x.o.release = x.sd.release(t, name)
		// a release of a message not in the quarantine, and a request AM.PDP does not know
		x.o.release += "--- no such message ---\n" + x.sd.ampdp(t, "request=release\nmail_id=AAAAAAAAAAAA\nquar_type=F\nmail_file=A/virus-AAAAAAAAAAAA\n")
		x.o.release += "--- unknown request ---\n" + x.sd.ampdp(t, "request=frobnicate\n")
		// a release to another recipient than the blocked one (amavisd-release's third argument)
		x.o.release += "--- another recipient ---\n" + x.sd.release(t, name, "", "other@example.com")
		x.o.log = append(x.o.log, "--- release ---")
		x.o.log = append(x.o.log, x.sd.logLines(logFrom)...)
		x.o.nexthop = append(x.o.nexthop, x.sd.next.Lines()[lines:]...)
		x.o.collectIDs()
	}
}

// mustMatch names the aspects this branch made equal: they stay equal. The text of each
// notice and DSN is Debian's template as amavis expands it.
func mustMatch(c comparison) bool {
	return strings.HasPrefix(c.caseName, "notice text") || strings.HasPrefix(c.aspect, "notice text")
}

// noticeText is the text of a notice or DSN transaction: its first text/plain part (or its
// body when it is text/plain itself), quoted-printable decoded, without trailing blank lines.
func noticeText(tx string) string {
	lines := strings.Split(tx, "\n")
	for i, l := range lines {
		if l == "DATA" {
			lines = lines[i+1:]
			break
		}
	}
	var text []string
	inHeader, isText, qp, collecting := true, false, false, false
	for _, l := range lines {
		switch {
		case l == "." || strings.HasPrefix(l, "--BOUNDARY"):
			if collecting {
				return finishText(text, qp)
			}
			inHeader, isText, qp = true, false, false
		case inHeader && l == "":
			inHeader = false
			collecting = isText
		case inHeader:
			ll := strings.ToLower(l)
			if strings.HasPrefix(ll, "content-type: text/plain") {
				isText = true
			}
			if strings.HasPrefix(ll, "content-transfer-encoding: quoted-printable") {
				qp = true
			}
		case collecting:
			text = append(text, strings.TrimPrefix(l, "."))
		}
	}
	return finishText(text, qp)
}

// scannerOutput is a line of clamd's output in a notice: amavis has clamd scan its parts
// directory, we the message's directory (scanners, not notices; the next hop aspect shows it).
var scannerOutput = regexp.MustCompile(`(?m)^  (email\.txt|(parts/)?p\d+): .*\n`)

func finishText(lines []string, qp bool) string {
	s := strings.Join(lines, "\n") + "\n"
	if qp {
		b, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(s)))
		if err == nil {
			s = string(b)
		}
	}
	return strings.TrimRight(scannerOutput.ReplaceAllString(s, ""), "\n")
}

// report writes the summary to the test log and, when SIDEBYSIDE_REPORT names a file, the
// differences in full there (and the identical aspects too with SIDEBYSIDE_ALL set).
func report(t *testing.T, all []comparison) {
	same := 0
	var b strings.Builder
	for _, c := range all {
		if c.same() {
			same++
			if os.Getenv("SIDEBYSIDE_ALL") != "" { // the identical aspects too
				fmt.Fprintf(&b, "=== %s: %s (identical)\n%s\n", c.caseName, c.aspect, c.ours)
			}
			continue
		}
		fmt.Fprintf(&b, "=== %s: %s\n%s\n", c.caseName, c.aspect, diff(c.amavis, c.ours))
	}
	t.Logf("side by side: %d of %d aspects identical", same, len(all))
	if f := os.Getenv("SIDEBYSIDE_REPORT"); f != "" {
		os.WriteFile(f, []byte(fmt.Sprintf("%d of %d aspects identical\n\n%s", same, len(all), b.String())), 0o644)
	}
}

// diff is a line diff: lines only amavis has start with "-", only ours with "+".
func diff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	// longest common subsequence, fine for a few hundred lines
	n, m := len(x), len(y)
	l := make([][]int, n+1)
	for i := range l {
		l[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if x[i] == y[j] {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && x[i] == y[j]:
			out.WriteString("  " + x[i] + "\n")
			i++
			j++
		case j < m && (i == n || l[i][j+1] >= l[i+1][j]):
			out.WriteString("+ " + y[j] + "\n")
			j++
		default:
			out.WriteString("- " + x[i] + "\n")
			i++
		}
	}
	return out.String()
}
