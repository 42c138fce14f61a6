package unpack

import (
	"bytes"
	"io"
	"mime"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	"amavisgo/hdr"
)

// field is one unfolded header field; name is lower-case.
type field struct {
	name, value string
}

// header returns the first value of field name, and how many fields had that name.
type header []field

func (h header) get(name string) (string, int) {
	v, n := "", 0
	for _, f := range h {
		if f.name == name {
			if n == 0 {
				v = f.value
			}
			n++
		}
	}
	return v, n
}

// isFieldStart tells whether line begins a header field: a name of printable
// characters other than ':', optional blanks, then ':'.
func isFieldStart(line []byte) bool {
	for i, c := range line {
		switch {
		case c == ':':
			return i > 0
		case c == ' ' || c == '\t':
			// "Name :" is tolerated, "Na me:" is not
			rest := bytes.TrimLeft(line[i:], " \t")
			return i > 0 && len(rest) > 0 && rest[0] == ':'
		case c < 33 || c > 126:
			return false
		}
	}
	return false
}

// splitHeader separates the header block of an entity from its body. It is lenient the way mail
// clients are: a line without a colon inside the header is skipped (and reported), an entity
// that does not start with a header has none, and a missing blank line leaves an empty body.
func splitHeader(data []byte, errs *[]string) (header, []byte) {
	var h header
	// Continuation lines after a line that is no field go on the field before it; its value
	// then grows here, as appending to the string would copy it once per such line.
	var more []byte
	done := func() {
		if more != nil {
			h[len(h)-1].value = string(more)
			more = nil
		}
	}
	for pos := 0; pos < len(data); {
		f, _ := hdr.Next(data[pos:]) // a line and its continuation lines
		line, cont := f, []byte(nil)
		next := len(data) // after the first line
		if i := bytes.IndexByte(f, '\n'); i >= 0 {
			line, cont, next = f[:i], f[i+1:], pos+i+1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
			done()
			return h, data[next:]
		case line[0] == ' ' || line[0] == '\t':
			// continuation lines before the first field: nothing to continue
		case isFieldStart(line):
			done()
			i := bytes.IndexByte(line, ':')
			h = append(h, field{name: strings.ToLower(string(bytes.TrimRight(line[:i], " \t"))),
				value: hdr.JoinLines(f[i+1:])})
		case len(h) == 0:
			if pos == 0 && bytes.HasPrefix(line, []byte("From ")) {
				break // an mbox separator line
			}
			// no header at all: everything is body
			return nil, data[pos:]
		default:
			if len(*errs) < maxHeaderErrors {
				*errs = append(*errs, "couldn't parse head; error near: "+clip(string(line), 60))
			}
			if len(cont) > 0 {
				if more == nil {
					more = []byte(h[len(h)-1].value)
				}
				more = append(append(more, ' '), hdr.JoinLines(cont)...)
			}
		}
		pos += len(f)
	}
	done()
	if len(h) > 0 {
		*errs = append(*errs, "unexpected end of header")
	}
	return h, nil
}

// maxHeaderErrors bounds the lines reported of one header: a million bad lines must not become
// a million messages.
const maxHeaderErrors = 20

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "[...]"
	}
	return s
}

// param is one parameter of a structured field, attribute in lower case.
type param struct {
	attr, value string
}

// parseStructured splits "type/sub; a=b; c="d"" leniently: empty parameters (";;") are skipped,
// a value runs to the next ';' unless quoted ("a=b" in "boundary=a=b" is kept whole), and an
// unterminated quote runs to the end of the field.
func parseStructured(s string) (string, []param) {
	i := strings.IndexByte(s, ';')
	if i < 0 {
		return strings.ToLower(strings.TrimSpace(s)), nil
	}
	v := strings.ToLower(strings.TrimSpace(s[:i]))
	var ps []param
	rest := s[i+1:]
	for len(rest) > 0 {
		rest = strings.TrimLeft(rest, " \t;")
		if rest == "" {
			break
		}
		eq := strings.IndexAny(rest, "=;")
		if eq < 0 || rest[eq] == ';' {
			if eq < 0 {
				break
			}
			rest = rest[eq:]
			continue
		}
		attr := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			k := 1
			for ; k < len(rest); k++ {
				c := rest[k]
				if c == '\\' && k+1 < len(rest) {
					k++
					b.WriteByte(rest[k])
					continue
				}
				if c == '"' {
					break
				}
				b.WriteByte(c)
			}
			val = b.String()
			if k < len(rest) {
				rest = rest[k+1:]
				if j := strings.IndexByte(rest, ';'); j >= 0 {
					rest = rest[j:]
				} else {
					rest = ""
				}
			} else {
				rest = ""
			}
		} else {
			j := strings.IndexByte(rest, ';')
			if j < 0 {
				j = len(rest)
			}
			val = strings.TrimSpace(rest[:j])
			rest = rest[j:]
		}
		if attr != "" {
			ps = append(ps, param{attr, val})
		}
	}
	return v, ps
}

// paramValues returns the values of parameter name: plain ones, and the RFC 2231 form
// (name*, name*0, name*1*, ...) assembled. It returns the raw forms and the decoded forms.
func paramValues(ps []param, name string) (raw, decoded []string) {
	type seg struct {
		n   int
		ext bool
		val string
	}
	var segs []seg
	for _, p := range ps {
		switch {
		case p.attr == name:
			raw = append(raw, p.value)
			decoded = append(decoded, decodeWords(p.value))
		case strings.HasPrefix(p.attr, name+"*"):
			s := p.attr[len(name)+1:]
			ext := strings.HasSuffix(s, "*") || s == ""
			s = strings.TrimSuffix(s, "*")
			n := 0
			if s != "" {
				var err error
				if n, err = strconv.Atoi(s); err != nil || n < 0 || n > 999 {
					continue
				}
			}
			segs = append(segs, seg{n, ext, p.value})
		}
	}
	if len(segs) == 0 {
		return raw, decoded
	}
	sort.SliceStable(segs, func(a, b int) bool { return segs[a].n < segs[b].n })
	var rawB strings.Builder
	var bytesB []byte
	cs := ""
	for i, s := range segs {
		v := s.val
		rawB.WriteString(v)
		if s.ext {
			if i == 0 {
				// charset'language'value
				if a := strings.IndexByte(v, '\''); a >= 0 {
					if b := strings.IndexByte(v[a+1:], '\''); b >= 0 {
						cs = v[:a]
						v = v[a+1+b+1:]
					}
				}
			}
			bytesB = append(bytesB, pctDecode(v)...)
		} else {
			bytesB = append(bytesB, v...)
		}
	}
	raw = append(raw, rawB.String())
	decoded = append(decoded, toUTF8(cs, bytesB))
	return raw, decoded
}

func pctDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if h, ok := unhex(s[i+1]); ok {
				if l, ok := unhex(s[i+2]); ok {
					out = append(out, h<<4|l)
					i += 2
					continue
				}
			}
		}
		out = append(out, s[i])
	}
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// toUTF8 converts b from charset cs; unknown charsets and undeclared 8-bit bytes
// are taken as ISO-8859-1 when they are not valid UTF-8 (as amavis does).
func toUTF8(cs string, b []byte) string {
	if cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		if r, err := charset.Reader(cs, bytes.NewReader(b)); err == nil {
			if out, err := io.ReadAll(io.LimitReader(r, 1<<16)); err == nil {
				return string(out)
			}
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeWords decodes RFC 2047 encoded words (also inside quoted strings, as clients do).
func decodeWords(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			return d
		}
	}
	return toUTF8("", []byte(s))
}
