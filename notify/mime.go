package notify

import (
	"crypto/rand"
	"encoding/hex"
	"mime"
	"strings"

	"amavisgo/hdr"
)

// part is one MIME body part after the template's text.
type part struct {
	contentType, description, body string
}

// compose turns a template's expansion into the message text (LF line ends): the template's
// header fields, with set replacing or adding fields (From, To, Date), then a multipart body
// of mainType (multipart/report; report-type=..., multipart/mixed) holding the template's
// text and parts, or the text alone when mainType is "".
func compose(expanded string, set [][2]string, mainType string, parts []part, mailID string) string {
	expanded = strings.ReplaceAll(expanded, "\r\n", "\n")
	headText, body, found := strings.Cut(expanded, "\n\n")
	if !found {
		headText, body = expanded, ""
	}
	var fields [][2]string
	// the last field's value and continuation lines, joined when the field ends: appending
	// them one by one to a string copies the value once per line
	var pieces []string
	end := func() {
		if len(pieces) > 1 {
			fields[len(fields)-1][1] = strings.Join(pieces, " ")
		}
		pieces = pieces[:0]
	}
	for _, line := range strings.Split(headText, "\n") {
		switch {
		case line == "":
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			pieces = append(pieces, strings.TrimSpace(line))
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok || !fieldName(strings.TrimSpace(name)) {
				body = line + "\n" + body // not a header field: the text starts here
				continue
			}
			end()
			fields = append(fields, [2]string{strings.TrimSpace(name), strings.TrimSpace(value)})
			pieces = append(pieces, fields[len(fields)-1][1])
		}
	}
	end()
	var out []string
	replaced := map[string]bool{}
	for _, f := range fields {
		lname := strings.ToLower(f[0])
		if strings.HasPrefix(lname, "content-") || lname == "mime-version" || f[1] == "" {
			continue
		}
		for _, s := range set {
			if strings.EqualFold(s[0], f[0]) {
				f[1] = s[1]
				replaced[lname] = true
			}
		}
		out = append(out, fold(f[0], f[1]))
	}
	var top []string
	for _, s := range set {
		if !replaced[strings.ToLower(s[0])] {
			top = append(top, fold(s[0], s[1]))
		}
	}
	out = append(top, out...)
	text := strings.TrimRight(body, "\n") + "\n"
	var b strings.Builder
	for _, f := range out {
		b.WriteString(f + "\n")
	}
	b.WriteString("MIME-Version: 1.0\n")
	if mainType == "" {
		b.WriteString("Content-Type: text/plain; charset=" + charset(text) + "\n")
		b.WriteString("Content-Transfer-Encoding: " + cte(text) + "\n\n")
		b.WriteString(text)
		return b.String()
	}
	boundary := "----------=_" + mailID + "-" + randomHex()
	b.WriteString("Content-Type: " + mainType + ";\n boundary=\"" + boundary + "\"\n")
	b.WriteString("Content-Transfer-Encoding: 7bit\n\n")
	b.WriteString("This is a multi-part message in MIME format.\n")
	all := append([]part{{"text/plain; charset=" + charset(text), "Notification", text}}, parts...)
	for _, p := range all {
		b.WriteString("\n--" + boundary + "\n")
		b.WriteString("Content-Type: " + p.contentType + "\n")
		b.WriteString("Content-Disposition: inline\n")
		b.WriteString("Content-Transfer-Encoding: " + cte(p.body) + "\n")
		b.WriteString("Content-Description: " + p.description + "\n\n")
		b.WriteString(strings.TrimRight(p.body, "\n") + "\n")
	}
	b.WriteString("\n--" + boundary + "--\n")
	return b.String()
}

// fold writes one header field, RFC 2047-encoding a non-ASCII value and folding at spaces
// to keep lines within 78 columns where possible.
func fold(name, value string) string {
	if !isASCII(value) {
		value = mime.QEncoding.Encode("utf-8", value)
	}
	return foldWords(name + ": " + value)
}

// foldWords folds a field ("Name: value") at its blanks with LF, as amavis's template wrap
// does: runs of blanks become one, the value's first word may go to a continuation line.
func foldWords(field string) string {
	words := strings.Fields(field)
	if len(words) == 0 {
		return ""
	}
	for i := 1; i < len(words); i++ {
		words[i] = " " + words[i]
	}
	return string(hdr.Fold(nil, words[0], words[1:], hdr.Style{Width: 78, EOL: "\n", FirstMoves: true}))
}

// fieldName reports an RFC 5322 field name: printable ASCII without colon.
func fieldName(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return s != ""
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func charset(s string) string {
	if isASCII(s) {
		return "us-ascii"
	}
	return "UTF-8"
}

func cte(s string) string {
	if isASCII(s) {
		return "7bit"
	}
	return "8bit"
}

func randomHex() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
