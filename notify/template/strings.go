package template

import (
	"encoding/base64"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// perlNum is the number a Perl string holds: its leading decimal, 0 when none.
func perlNum(s string) float64 {
	s = strings.TrimLeft(s, " \t\n")
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.' || end == 0 && (s[end] == '-' || s[end] == '+')) {
		end++
	}
	for end > 0 {
		if v, err := strconv.ParseFloat(s[:end], 64); err == nil {
			return v
		}
		end--
	}
	return 0
}

func numStr(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// WrapString folds s into lines of at most width columns, as amavis's wrap_string
// (Amavis::rfc2821_2822_Tools) does for the wrap macro: every line starts with prefix; a
// continuation line has its leading blank replaced by indent when indent is set (hasIndent),
// and only an empty indent drops the blanks at the end of lines. Tabs count to the next
// multiple of 8. Line breaks in s are unfolded first.
func WrapString(s string, width int, prefix string, indent string, hasIndent bool) string {
	chunks := wrapChunks(unfold(s))
	plain := hasIndent && indent == ""
	var result, line strings.Builder
	result.Grow(len(s) + len(s)/32 + len(prefix)) // a few line breaks more than s
	lineWhite := true                             // line holds only blanks (or nothing)
	col := displayedLength(prefix, 0)
	contin := false
	add := func(x string) {
		line.WriteString(x)
		lineWhite = lineWhite && strings.Trim(x, " \t") == ""
	}
	flush := func() {
		if contin {
			result.WriteByte('\n')
		} else {
			contin = true
		}
		result.WriteString(prefix)
		if plain {
			result.WriteString(strings.TrimRight(line.String(), " \t"))
		} else {
			result.WriteString(line.String())
		}
		line.Reset()
		lineWhite = true
	}
	for k := 0; k < len(chunks); k++ {
		chunk := chunks[k]
		last := k == len(chunks)-1
		if hasIndent && contin && line.Len() == 0 && chunk != "" && (chunk[0] == ' ' || chunk[0] == '\t') {
			chunk = indent + chunk[1:]
		}
		l := displayedLength(chunk, col)
		if l <= width || last && lineWhite {
			add(chunk)
			col = l
			continue
		}
		solid := strings.TrimRight(chunk, " \t")
		whiteTail := chunk[len(solid):]
		minLen := displayedLength(solid, col)
		switch {
		case !last && (minLen <= width || lineWhite):
			add(solid)
			col = minLen
			if !plain {
				for whiteTail != "" {
					d := displayedLength(whiteTail[:1], col)
					if d > width {
						break
					}
					add(whiteTail[:1])
					col = d
					whiteTail = whiteTail[1:]
				}
				if whiteTail != "" {
					chunks[k+1] = whiteTail + chunks[k+1]
				}
			}
		case lineWhite:
			// cannot happen: a chunk holds a non-blank character
			add(chunk)
			col = l
		default:
			flush()
			col = displayedLength(prefix, 0)
			k-- // the chunk again, on the new line
		}
	}
	if !lineWhite {
		flush()
	}
	return result.String()
}

// unfold joins lines: a line break becomes a blank unless a blank already follows it.
func unfold(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\n' {
			b.WriteByte(s[i])
		} else if i+1 == len(s) || s[i+1] != ' ' && s[i+1] != '\t' {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// wrapChunks cuts s where wrap_string may break it: the first chunk runs to the end of the
// first word, each later one starts with exactly one blank, and the blanks after a word
// but one stay with it.
func wrapChunks(s string) []string {
	white := func(c byte) bool { return c == ' ' || c == '\t' }
	i := 0
	for i < len(s) && white(s[i]) {
		i++
	}
	if i == len(s) {
		return nil
	}
	// every chunk but the first starts with a blank: a bound that spares regrowing the slice
	out := make([]string, 0, strings.Count(s, " ")+strings.Count(s, "\t")+1)
	start := 0
	for {
		for i < len(s) && !white(s[i]) {
			i++
		}
		j := i
		for j < len(s) && white(s[j]) {
			j++
		}
		if j == len(s) {
			return append(out, s[start:])
		}
		out = append(out, s[start:j-1])
		start, i = j-1, j
	}
}

func displayedLength(s string, col int) int {
	for _, r := range s {
		if r == '\t' {
			col += 8 - col%8
		} else {
			col++
		}
	}
	return col
}

// decodeText turns octets into text as amavis's safe_decode_mime does: RFC 2047
// encoded-words decoded, other bytes taken as UTF-8 when valid, else as Windows-1252/Latin-1.
func decodeText(s string) string {
	if strings.Contains(s, "=?") {
		var d mime.WordDecoder
		if out, err := d.DecodeHeader(s); err == nil {
			s = out
		}
	}
	return latin1Fallback(s)
}

func latin1Fallback(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

// mailAddrDecode is amavis's mail_addr_decode: an all-ASCII domain lowercased, an IDN's
// A-labels turned to Unicode, and unless octets, a non-ASCII local part or domain read as
// UTF-8 (Latin-1 when not valid UTF-8). Angle brackets stay.
func mailAddrDecode(addr string, octets bool) string {
	inner, bracketed := addr, false
	if len(addr) >= 2 && addr[0] == '<' && addr[len(addr)-1] == '>' {
		inner, bracketed = addr[1:len(addr)-1], true
	}
	local, domain, hasDomain := inner, "", false
	if i := strings.LastIndexByte(inner, '@'); i >= 0 {
		local, domain, hasDomain = inner[:i], inner[i+1:], true
		if strings.HasPrefix(strings.ToLower(domain), "xn--") || strings.Contains(strings.ToLower(domain), ".xn--") {
			if u, err := idna.ToUnicode(domain); err == nil {
				domain = u
			}
		}
		if isASCII(domain) {
			domain = strings.ToLower(domain)
		} else if !octets {
			domain = latin1Fallback(domain)
		}
	}
	if !octets && !isASCII(local) {
		local = latin1Fallback(local)
	}
	out := local
	if hasDomain {
		out += "@" + domain
	}
	if bracketed {
		return "<" + out + ">"
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// mimeDecode is amavis's mime_decode macro: the decoded text, cut to maxLen characters when
// maxLen > 0, followed by " (raw: ...)" with the original when bothIfDiff and they differ.
func mimeDecode(s string, maxLen int, bothIfDiff bool) string {
	if s == "" {
		return ""
	}
	chars := decodeText(s)
	if maxLen <= 0 {
		if bothIfDiff && chars != s {
			chars += " (raw: " + s + ")"
		}
		return chars
	}
	if utf8.RuneCountInString(chars) > maxLen {
		chars = string([]rune(chars)[:maxLen])
	}
	if !bothIfDiff {
		return chars
	}
	if len(s) > len(chars) {
		s = s[:len(chars)]
	}
	if s != chars {
		chars += " (raw: " + s + ")"
	}
	return chars
}

// mime2utf8 is amavis's mime2utf8 macro: mimeDecode with the cut made in bytes, at a
// character boundary.
func mime2utf8(s string, maxLen int, bothIfDiff bool) string {
	if s == "" {
		return ""
	}
	out := decodeText(s)
	if maxLen > 0 && len(out) > maxLen {
		cut := maxLen
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut]
	}
	if !bothIfDiff {
		return out
	}
	if maxLen > 0 && len(s) > maxLen {
		s = s[:maxLen]
	}
	if out != s {
		return out + " (raw: " + s + ")"
	}
	return out
}

// moreBuiltins are the string helpers of amavis's %builtins beyond those in builtins.
var moreBuiltins = map[string]Func{
	"index": func(a ...string) any {
		a = pad(a, 3)
		pos := 0
		if len(a) > 3 {
			pos = max(int(perlNum(a[3])), 0)
		}
		if pos > len(a[1]) {
			pos = len(a[1])
		}
		i := strings.Index(a[1][pos:], a[2])
		if i >= 0 {
			i += pos
		}
		return strconv.Itoa(i)
	},
	"incr": func(a ...string) any { return step(a, 1) },
	"decr": func(a ...string) any { return step(a, -1) },
	"min":  func(a ...string) any { return extreme(a[1:], func(x, y float64) bool { return x < y }) },
	"max":  func(a ...string) any { return extreme(a[1:], func(x, y float64) bool { return x > y }) },
	"rot13": func(a ...string) any {
		return strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return 'a' + (r-'a'+13)%26
			case r >= 'A' && r <= 'Z':
				return 'A' + (r-'A'+13)%26
			}
			return r
		}, pad(a, 2)[1])
	},
	"b64encode": func(a ...string) any {
		out := make([]string, len(a)-1)
		for i, s := range a[1:] {
			out[i] = base64.StdEncoding.EncodeToString([]byte(s))
		}
		return strings.Join(out, " ")
	},
	"mail_addr_decode":        func(a ...string) any { return mailAddrDecode(pad(a, 2)[1], false) },
	"mail_addr_decode_octets": func(a ...string) any { return mailAddrDecode(pad(a, 2)[1], true) },
	"mime_decode": func(a ...string) any {
		a = pad(a, 4)
		return mimeDecode(a[1], int(perlNum(a[2])), perlTrue(a[3]))
	},
	"mime2utf8": func(a ...string) any {
		a = pad(a, 4)
		return mime2utf8(a[1], int(perlNum(a[2])), perlTrue(a[3]))
	},
}

// perlTrue is Perl's truth of a string: not "" and not "0".
func perlTrue(s string) bool { return s != "" && s != "0" }

// step is incr and decr: the first argument plus or minus each of the others (1 when none).
func step(a []string, sign float64) string {
	a = pad(a, 2)
	v := perlNum(a[1])
	if len(a) == 2 {
		return numStr(v + sign)
	}
	for _, x := range a[2:] {
		v += sign * perlNum(x)
	}
	return numStr(v)
}

// extreme is min and max over the non-blank arguments, "" when there are none.
func extreme(args []string, better func(x, y float64) bool) string {
	found, best := false, 0.0
	for _, s := range args {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if v := perlNum(s); !found || better(v, best) {
			found, best = true, v
		}
	}
	if !found {
		return ""
	}
	return numStr(best)
}
