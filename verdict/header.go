package verdict

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"amavisgo/hdr"
)

// HeaderTests selects the bad-header tests (allowed_header_tests).
type HeaderTests map[string]bool

// maxHeaderFindings bounds the findings of one message, as amavis does.
const maxHeaderFindings = 100

// maxHeaderBytes bounds the header section examined (amavis's 4 MiB sanity limit).
const maxHeaderBytes = 4 << 20

// fieldName returns the name of a field ("" when the field has no valid name): printable
// ASCII but ":" (or any non-ASCII byte), then optional blanks (obsolete syntax), then ":".
// The tests work on bytes, as amavis's do on octets, hence no regexp (Go's decode UTF-8).
func fieldName(f string) string {
	i := 0
	for i < len(f) && (f[i] >= '!' && f[i] <= '~' && f[i] != ':' || f[i] >= 0x80) {
		i++
	}
	j := i
	for j < len(f) && (f[j] == ' ' || f[j] == '\t') {
		j++
	}
	if i == 0 || j >= len(f) || f[j] != ':' {
		return ""
	}
	return f[:i]
}

// lineWhere returns the start and end of the first line of f (without its LF) that ok accepts.
func lineWhere(f string, ok func(line string) bool) (int, int, bool) {
	for start := 0; start < len(f); {
		end := strings.IndexByte(f[start:], '\n')
		if end < 0 {
			end = len(f)
		} else {
			end += start
		}
		if ok(f[start:end]) {
			return start, end, true
		}
		start = end + 1
	}
	return 0, 0, false
}

func blankLine(f string) bool { _, _, ok := lineWhere(f, allBlank); return ok }

func longLine(f string) bool {
	_, _, ok := lineWhere(f, func(l string) bool { return len(l) > 998 })
	return ok
}

func hasC1(s string) bool { _, _, ok := findC1(s); return ok }

func allBlank(line string) bool {
	return line != "" && strings.Trim(line, " \t") == ""
}

// findC1 finds a UTF-8 encoded C1 control (U+0080..U+009F), also in its overlong forms.
func findC1(s string) (int, int, bool) {
	for i := 0; i < len(s); i++ {
		for _, pre := range []string{"\xC2", "\xE0\x82", "\xF0\x80\x82"} {
			if strings.HasPrefix(s[i:], pre) && i+len(pre) < len(s) && s[i+len(pre)] >= 0x80 && s[i+len(pre)] <= 0x9f {
				return i, i + len(pre) + 1, true
			}
		}
	}
	return 0, 0, false
}

// findUTF8Char finds the first complete multi-byte UTF-8 sequence.
func findUTF8Char(s string) (int, int, bool) {
	for i := 0; i < len(s); i++ {
		n := 0
		switch c := s[i]; {
		case c >= 0xC0 && c <= 0xDF:
			n = 1
		case c >= 0xE0 && c <= 0xEF:
			n = 2
		case c >= 0xF0 && c <= 0xF4:
			n = 3
		default:
			continue
		}
		ok := true
		for k := 1; ok && k <= n; k++ {
			ok = i+k < len(s) && s[i+k] >= 0x80 && s[i+k] <= 0xBF
		}
		if ok {
			return i, i + n + 1, true
		}
	}
	return 0, 0, false
}

// requiredOnce are the fields RFC 5322, 2045 and 2183 allow at most once; Date and From are
// also required.
var requiredOnce = []string{"Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Subject",
	"Message-ID", "References", "In-Reply-To", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "Content-ID", "Content-Description", "Content-Disposition",
	"Auto-Submitted"}

// SplitHeader splits a raw header section (CRLF or LF line ends, without the empty line
// that ends it) into fields, each with its continuation lines and its final LF, as amavis
// keeps them.
func SplitHeader(raw []byte) []string {
	if len(raw) > maxHeaderBytes {
		raw = raw[:maxHeaderBytes]
	}
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	var fields []string
	for f := range hdr.Fields(raw) {
		fields = append(fields, string(f))
	}
	return fields
}

// CheckHeader runs amavis's bad-header tests (check_header_validity in
// Amavis::Unpackers::Validity) on the original header section and returns the findings (%X,
// e.g. `Missing required header field: "Date"`) and the minor category of CC_BADH (the highest
// found; 0 when the header is fine). smtputf8 accepts UTF-8 in field bodies even when the utf8
// test is enabled. MIME errors are not examined here.
func CheckHeader(raw []byte, tests HeaderTests, smtputf8 bool) (findings []string, minor int) {
	counts := map[string]int{}
	for _, f := range SplitHeader(raw) {
		if len(findings) >= maxHeaderFindings {
			break
		}
		s, m := checkField(f, tests, smtputf8, counts)
		if s != "" {
			findings = append(findings, s)
			minor = max(minor, m)
		}
	}
	for _, name := range requiredOnce {
		n := counts[strings.ToLower(name)]
		switch {
		case n == 0 && tests["missing"] && (name == "Date" || name == "From"):
			findings = append(findings, fmt.Sprintf("Missing required header field: %q", name))
			minor = max(minor, 7)
		case n == 2 && tests["multiple"]:
			findings = append(findings, fmt.Sprintf("Duplicate header field: %q", name))
			minor = max(minor, 8)
		case n > 2 && tests["multiple"]:
			findings = append(findings, fmt.Sprintf("Header field occurs more than once: %q occurs %d times", name, n))
			minor = max(minor, 8)
		}
	}
	for i, s := range findings {
		findings[i] = sanitize(s)
	}
	return findings, minor
}

// checkField tests one field; the first failing test is its finding.
func checkField(f string, tests HeaderTests, smtputf8 bool, counts map[string]int) (string, int) {
	name := fieldName(f)
	if name != "" {
		counts[strings.ToLower(name)]++
	}
	var msg1, msg2, mid string
	msg2Set := false
	pos := -1 // end of the offending text in f
	minor := 0
	switch {
	case name == "" || strings.HasPrefix(name, "--"):
		if tests["syntax"] {
			msg1, msg2, msg2Set, minor = "Invalid header field syntax", strings.TrimSuffix(f, "\n"), true, 6
		}
	case tests["syntax"] && nonASCII(name) >= 0:
		i := nonASCII(name)
		msg1, mid, pos, minor = "Invalid header field name, contains non-ASCII char", name[i:i+1], i+1, 6
	case tests["empty"] && blankLine(f):
		a, b, _ := lineWhere(f, allBlank)
		msg1, mid, pos, minor = "Improper folded header field made up entirely of whitespace", f[a:b], b, 4
	case tests["long"] && longLine(f):
		a, b, _ := lineWhere(f, func(l string) bool { return len(l) > 998 })
		msg1, msg2, msg2Set, minor = "Header line longer than 998 characters", f[a:b], true, 5
		if len(msg2) > 55 {
			msg2 = msg2[:50] + "[...]"
		}
	case tests["control"] && strings.ContainsAny(f, "\x00\r"):
		i := strings.IndexAny(f, "\x00\r")
		msg1, mid, pos, minor = "Improper use of control character", f[i:i+1], i+1, 3
	case tests["8bit"] && nonASCII(f) >= 0:
		i := nonASCII(f)
		mid, pos = f[i:i+1], i+1
		switch {
		case !utf8.ValidString(f):
			msg1 = "Non-encoded non-ASCII data (and not UTF-8)"
		case hasC1(f[pos:]):
			a, b, _ := findC1(f[pos:])
			mid, pos = f[pos+a:pos+b], pos+b
			msg1 = "UTF-8 string contains C1 Controls"
		case smtputf8:
			// UTF-8 field bodies are valid with SMTPUTF8
		case tests["utf8"]:
			msg1 = "Non-encoded UTF-8 string in non-EAI mail"
			if a, b, ok := findUTF8Char(f[pos:]); ok {
				mid, pos = f[pos+a:pos+b], pos+b
			}
		}
		if msg1 != "" {
			minor = 2
		}
	}
	if msg1 == "" {
		return "", 0
	}
	if !msg2Set {
		pre := f[:pos-len(mid)]
		post := strings.TrimSuffix(f[pos:], "\n")
		if len(mid) > 20 {
			mid = truncateUTF8(mid, 15) + "[...]"
		}
		if len(post) > 20 {
			post = truncateUTF8(post, 15) + "[...]"
		}
		if len(pre)-len(name)-2 > 50-len(post) {
			pre = name + ": ..." + pre[len(pre)-(45-len(post)):]
		}
		msg2 = pre + mid + post
	}
	if mid != "" && len(mid) <= 4 {
		hex := make([]string, len(mid))
		for i := 0; i < len(mid); i++ {
			hex[i] = fmt.Sprintf("%02X", mid[i])
		}
		msg1 += " (char " + strings.Join(hex, " ") + " hex)"
	}
	return msg1 + ": " + msg2, minor
}

func nonASCII(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return i
		}
	}
	return -1
}

// truncateUTF8 cuts s to at most n bytes without splitting a UTF-8 character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sanitize writes C0 controls and non-ASCII bytes as \x{HH}, as amavis does with its
// findings, when the text holds any non-ASCII byte.
func sanitize(s string) string {
	if nonASCII(s) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || (c == '\\' && strings.HasPrefix(s[i+1:], "x{")) {
			fmt.Fprintf(&b, `\x{%02X}`, c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
