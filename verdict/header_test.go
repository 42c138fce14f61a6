package verdict

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

var defaultTests = HeaderTests{"other": true, "mime": true, "syntax": true, "empty": true, "long": true,
	"control": true, "8bit": true, "missing": true, "multiple": true}

const dateFrom = "Date: Sun, 22 Nov 2026 09:45:23 +0000\r\nFrom: a@example.net\r\n"

func TestCheckHeader(t *testing.T) {
	long := "Subject: " + strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name, header string
		tests        HeaderTests
		smtputf8     bool
		minor        int
		findings     []string
	}{
		{"clean", dateFrom + "Subject: hi\r\n", defaultTests, false, 0, nil},
		{"8-bit, not UTF-8", dateFrom + "Subject: caf\xe9 ok\r\n", defaultTests, false, 2,
			[]string{`Non-encoded non-ASCII data (and not UTF-8) (char E9 hex): Subject: caf\x{E9} ok`}},
		{"valid UTF-8 is accepted", dateFrom + "Subject: café\r\n", defaultTests, false, 0, nil},
		{"valid UTF-8 with the utf8 test", dateFrom + "Subject: café crème\r\n", withTest("utf8"), false, 2,
			[]string{`Non-encoded UTF-8 string in non-EAI mail (char C3 A8 hex): Subject: caf\x{C3}\x{A9} cr\x{C3}\x{A8}me`}},
		{"UTF-8 with the utf8 test but SMTPUTF8", dateFrom + "Subject: café\r\n", withTest("utf8"), true, 0, nil},
		{"UTF-8 C1 control", dateFrom + "Subject: a\xc3\xa9b\xc2\x85c\r\n", defaultTests, false, 2,
			[]string{`UTF-8 string contains C1 Controls (char C2 85 hex): Subject: a\x{C3}\x{A9}b\x{C2}\x{85}c`}},
		{"missing Date", "From: a@example.net\r\nSubject: x\r\n", defaultTests, false, 7,
			[]string{`Missing required header field: "Date"`}},
		{"missing Date and From", "Subject: x\r\n", defaultTests, false, 7,
			[]string{`Missing required header field: "Date"`, `Missing required header field: "From"`}},
		{"duplicate Subject", dateFrom + "Subject: a\r\nsubject: b\r\n", defaultTests, false, 8,
			[]string{`Duplicate header field: "Subject"`}},
		{"three To", dateFrom + "To: a\r\nTo: b\r\nTo: c\r\n", defaultTests, false, 8,
			[]string{`Header field occurs more than once: "To" occurs 3 times`}},
		{"a line over 998 characters", dateFrom + long + "\r\n", defaultTests, false, 5,
			[]string{"Header line longer than 998 characters: Subject: " + strings.Repeat("x", 41) + "[...]"}},
		{"998 characters are fine", dateFrom + long[:998] + "\r\n", defaultTests, false, 0, nil},
		{"a bare CR", dateFrom + "Subject: a\rb\r\n", defaultTests, false, 3,
			[]string{"Improper use of control character (char 0D hex): Subject: a\rb"}},
		{"a NUL", dateFrom + "Subject: a\x00b\r\n", defaultTests, false, 3,
			[]string{"Improper use of control character (char 00 hex): Subject: a\x00b"}},
		{"whitespace-only continuation", dateFrom + "Subject: a\r\n \t\r\n b\r\n", defaultTests, false, 4,
			[]string{"Improper folded header field made up entirely of whitespace (char 20 09 hex): Subject: a\n \t\n b"}},
		{"no colon", dateFrom + "This is not a header\r\n", defaultTests, false, 6,
			[]string{"Invalid header field syntax: This is not a header"}},
		{"a space in the name", dateFrom + "Bad Name: x\r\n", defaultTests, false, 6,
			[]string{"Invalid header field syntax: Bad Name: x"}},
		{"a name starting with --", dateFrom + "--boundary: x\r\n", defaultTests, false, 6,
			[]string{"Invalid header field syntax: --boundary: x"}},
		{"non-ASCII in the name", dateFrom + "X-T\xe9st: x\r\n", defaultTests, false, 6,
			[]string{`Invalid header field name, contains non-ASCII char (char E9 hex): X-T\x{E9}st: x`}},
		{"obsolete blank before the colon is fine", dateFrom + "Subject : x\r\n", defaultTests, false, 0, nil},
		{"the highest minor wins", "Subject: caf\xe9\r\nSubject: x\r\n", defaultTests, false, 8,
			[]string{`Non-encoded non-ASCII data (and not UTF-8) (char E9 hex): Subject: caf\x{E9}`,
				`Missing required header field: "Date"`, `Missing required header field: "From"`, `Duplicate header field: "Subject"`}},
		{"disabled tests", "Subject: caf\xe9\r\n", HeaderTests{"syntax": true}, false, 0, nil},
		{"long context is shortened", dateFrom + "Subject: " + strings.Repeat("word ", 20) + "caf\xe9 and then some more text\r\n", defaultTests, false, 2,
			[]string{`Non-encoded non-ASCII data (and not UTF-8) (char E9 hex): Subject: ...d word word word word caf\x{E9} and then some [...]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			findings, minor := CheckHeader([]byte(tc.header), tc.tests, tc.smtputf8)
			if minor != tc.minor || !reflect.DeepEqual(findings, tc.findings) {
				t.Errorf("got %d %q\nwant %d %q", minor, findings, tc.minor, tc.findings)
			}
		})
	}
}

func withTest(name string) HeaderTests {
	t := HeaderTests{}
	for k, v := range defaultTests {
		t[k] = v
	}
	t[name] = true
	return t
}

// The reply for each bad-header minor as amavis gives it: the blocking category is BADH
// itself (the destiny table has no minors), so the text is the generic one.
func TestBadHeaderReplyAndAlert(t *testing.T) {
	cfg := parseConf(t, `final_bad_header_destiny = "D_REJECT"`)
	in := input(cfg, "")
	in.Header = []byte(dateFrom + "Subject: caf\xe9\r\n")
	v := mustDecide(t, in)
	if r := v.Recips[0]; text(r.Reply) != "554 5.6.0 Reject, id=12345-03 - BAD HEADER" || !r.CCats.Has(CC_BADH, 2) {
		t.Errorf("reply %q ccats %v", text(r.Reply), r.CCats)
	}
}

func TestFieldString(t *testing.T) {
	f := Field{Name: "X-Amavis-Alert", Value: "BANNED, message contains " + strings.Repeat("application/octet-stream,.exe,.exe-ms,run.exe ", 3)}
	got := f.String()
	for _, line := range strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line longer than 78: %q", line)
		}
	}
	if strings.ReplaceAll(got, "\r\n ", " ") != "X-Amavis-Alert: "+f.Value+"\r\n" {
		t.Errorf("unfolded %q", got)
	}
	if got := (Field{Name: "Subject", Value: "***INFECTED*** café"}).String(); got != "Subject: =?UTF-8?q?***INFECTED***_caf=C3=A9?=\r\n" {
		t.Errorf("encoded %q", got)
	}
}

func TestTagSubject(t *testing.T) {
	for _, tc := range []struct{ body, tag, want string }{
		{" hello", "***INFECTED*** ", " ***INFECTED*** hello"},
		{"hello", "***INFECTED*** ", " ***INFECTED*** hello"},
		{" ***INFECTED*** hello ***INFECTED*** x", "***INFECTED*** ", " ***INFECTED*** hello x"},
		{" ab", "x ", " x ab"}, // a short tag is not removed elsewhere
		{" x x", "x ", " x x x"},
	} {
		if got := TagSubject(tc.body, tc.tag); got != tc.want {
			t.Errorf("TagSubject(%q, %q) = %q, want %q", tc.body, tc.tag, got, tc.want)
		}
	}
}

func FuzzCheckHeader(f *testing.F) {
	for _, s := range []string{dateFrom + "Subject: caf\xe9\r\n", "X: a\r\n \r\n", "\r\n", " x\n", "a\rb", "--x: y\n", "X-\xff: \xc2\x85\xe0\x82\x80"} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, utf8Test bool) {
		tests := defaultTests
		if utf8Test {
			tests = withTest("utf8")
		}
		findings, minor := CheckHeader(raw, tests, false)
		if (len(findings) == 0) != (minor == 0) || minor < 0 || minor > 8 {
			t.Fatalf("minor %d with findings %q", minor, findings)
		}
		for _, s := range findings {
			if nonASCII(s) >= 0 {
				t.Fatalf("finding not sanitized: %q", s)
			}
		}
	})
}

func TestEditHeader(t *testing.T) {
	orig := "Received: from x\r\n by y\r\nX-Amavis-Hold: forged\r\nSubject: ***INFECTED*** hello\r\n world\r\nx-virus-scanned: old\r\nTo: b@example.com\r\n"
	h := HeaderEdits{Delete: []string{"X-Amavis-Hold", "X-Virus-Scanned"}, SubjectTag: "***INFECTED*** ",
		Add: []Field{{Name: "X-Virus-Scanned", Value: "amavis at example.com"}}}
	want := "Received: from x\r\n by y\r\nSubject: ***INFECTED*** hello\r\n world\r\nTo: b@example.com\r\n"
	if got := string(h.EditHeader([]byte(orig))); got != want {
		t.Errorf("EditHeader:\n%q\nwant\n%q", got, want)
	}
	if got := string(h.Prepend()); got != "X-Virus-Scanned: amavis at example.com\r\n" {
		t.Errorf("Prepend %q", got)
	}
	same := []byte("Subject: x\n")
	if got := (HeaderEdits{}).EditHeader(same); &got[0] != &same[0] {
		t.Error("no edits must return the header untouched")
	}
	if got := string((HeaderEdits{SubjectTag: "***UNCHECKED*** "}).EditHeader([]byte("subject:hi\nsubject: again"))); got != "subject: ***UNCHECKED*** hi\nsubject: ***UNCHECKED*** again" {
		t.Errorf("every Subject is tagged, the last without a line end: %q", got)
	}
}

func FuzzEditHeader(f *testing.F) {
	f.Add([]byte("Subject: a\r\n b\r\nX-Amavis-Hold: x\r\n"), "***INFECTED*** ")
	f.Add([]byte(" lead\nSubject:\n"), "")
	f.Fuzz(func(t *testing.T, orig []byte, tag string) {
		out := HeaderEdits{Delete: []string{"X-Amavis-Hold"}, SubjectTag: tag}.EditHeader(orig)
		for _, fld := range SplitHeader(out) {
			if strings.EqualFold(fieldName(fld), "X-Amavis-Hold") {
				t.Fatalf("deleted field left in %q", out)
			}
		}
		if tag == "" && !strings.Contains(strings.ToLower(string(orig)), "x-amavis-hold") && string(out) != string(orig) {
			t.Fatalf("changed without cause: %q -> %q", orig, out)
		}
	})
}

// TestCheckHeaderHugeFolded: a field folded into a megabyte of continuation lines is split and
// tested in linear time and memory (issue 22: 4 s and 13 GB allocated for 1 MB), and its
// finding is still reported. The guard is the bytes allocated, which do not depend on the
// machine's load; the time bound is a generous guard against a hang.
func TestCheckHeaderHugeFolded(t *testing.T) {
	var f strings.Builder
	f.WriteString(dateFrom + "Subject: start\r\n")
	for f.Len() < 1<<20 {
		f.WriteString("\tfolded words of a long header 0123456\r\n")
	}
	f.WriteString("\tcaf\xe9\r\n")
	h := []byte(f.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	findings, minor := CheckHeader(h, defaultTests, false)
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes: %v, %.1f MB allocated", len(h), el, float64(alloc)/(1<<20))
	if len(findings) != 1 || minor != 2 ||
		!strings.HasPrefix(findings[0], "Non-encoded non-ASCII data (and not UTF-8) (char E9 hex): Subject: ...") ||
		!strings.HasSuffix(findings[0], `0123456\x{0A}\x{09}caf\x{E9}`) {
		t.Errorf("findings %q, minor %d", findings, minor)
	}
	if limit := uint64(16 * len(h)); alloc > limit {
		t.Errorf("allocated %d bytes for a %d-byte header, more than %d", alloc, len(h), limit)
	}
	if el > 5*time.Second {
		t.Errorf("took %v", el)
	}
}
