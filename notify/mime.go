package notify

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"amavisgo/notify/template"
)

// part is one MIME body part after the template's text. filename names it in
// Content-Type (name=) and Content-Disposition (filename=) as MIME::Tools writes them.
type part struct {
	contentType, filename, description, body string
	cte                                      string // "" means 7bit or 8bit by its bytes
}

// headersPart is the original header section as amavis attaches it (Amavis::Notify's
// build_mime_entity): after a Return-Path with the envelope sender, as text/rfc822-headers
// (message/global-headers when it has UTF-8), 7bit or 8bit.
func headersPart(sender string, header []byte) part {
	h := "Return-Path: " + sender + "\n" + strings.TrimRight(strings.ReplaceAll(string(header), "\r\n", "\n"), "\n") + "\n"
	if !isASCII(h) && utf8.ValidString(h) {
		return part{"message/global-headers", "header.u8hdr", "Message header section", h, "8bit"}
	}
	return part{"text/rfc822-headers", "header.hdr", "Message header section", h, ""}
}

// compose turns a template's expansion into the message text (LF line ends) the way
// amavis's build_mime_entity does with MIME::Tools: the template's header fields in their
// order (a line that is no field is dropped), set replacing a field of the same name or
// following them; then, with parts, a multipart of mainType (Content-Type, an 8bit
// Content-Transfer-Encoding and MIME-Version before the template's fields, MIME::Tools's
// preamble, the text as the first part), or without parts the text alone (MIME-Version
// first, the part's fields after the template's).
func compose(expanded string, set [][2]string, mainType string, parts []part) string {
	expanded = strings.ReplaceAll(expanded, "\r\n", "\n")
	headText, body, found := strings.Cut(expanded, "\n\n")
	switch {
	case strings.HasPrefix(expanded, "\n"):
		headText, body = "", expanded[1:]
	case !found:
		headText, body = expanded, ""
	}
	if headText != "" {
		headText += "\n"
	}
	var fields [][2]string
	// the last field's value and continuation lines, joined when the field ends: appending
	// them one by one to a string copies the value once per line
	var pieces []string
	end := func() {
		if len(pieces) > 1 {
			fields[len(fields)-1][1] = strings.Join(pieces, "")
		}
		pieces = pieces[:0]
	}
	for _, line := range strings.Split(strings.TrimSuffix(headText, "\n"), "\n") {
		switch {
		case line == "":
		case (line[0] == ' ' || line[0] == '\t') && len(fields) > 0:
			pieces = append(pieces, line) // unfolded as amavis does: the blank stays
		default:
			name, value, ok := strings.Cut(line, ":")
			name = strings.TrimRight(name, " \t")
			if !ok || !fieldName(name) {
				continue // amavis drops a line of the template's header that is no field
			}
			end()
			fields = append(fields, [2]string{name, strings.TrimLeft(value, " \t")})
			pieces = append(pieces, fields[len(fields)-1][1])
		}
	}
	end()
	var out []string
	replaced := map[string]bool{}
	for _, f := range fields {
		lname := strings.ToLower(f[0])
		if strings.HasPrefix(lname, "content-") || lname == "mime-version" || strings.TrimSpace(f[1]) == "" {
			continue
		}
		for _, s := range set {
			if strings.EqualFold(s[0], f[0]) {
				f[1] = s[1]
				replaced[lname] = true
			}
		}
		out = append(out, fold(f[0], strings.TrimRight(f[1], " \t")))
	}
	for _, s := range set {
		if !replaced[strings.ToLower(s[0])] {
			out = append(out, fold(s[0], s[1]))
		}
	}
	textType, textCTE, text := textPart(body)
	var b strings.Builder
	if len(parts) == 0 {
		b.WriteString("MIME-Version: 1.0\n")
		for _, f := range out {
			b.WriteString(f + "\n")
		}
		b.WriteString("Content-Disposition: inline\nContent-Transfer-Encoding: " + textCTE + "\n")
		b.WriteString("Content-Type: " + textType + "\n\n")
		b.WriteString(text)
		return b.String()
	}
	// MIME::Tools's form: time, then (for its process id and counter) random digits
	boundary := "----------=_" + strconv.FormatInt(time.Now().Unix(), 10) + "-" + randomHex() + "-0"
	ct := "Content-Type: " + mainType + "; boundary=\"" + boundary + "\""
	if len(ct) > 78 {
		ct = "Content-Type: " + mainType + ";\n boundary=\"" + boundary + "\""
	}
	b.WriteString(ct + "\nContent-Transfer-Encoding: 8bit\nMIME-Version: 1.0\n")
	for _, f := range out {
		b.WriteString(f + "\n")
	}
	b.WriteString("\nThis is a multi-part message in MIME format...\n")
	all := append([]part{{textType, "", "", text, textCTE}}, parts...)
	for _, p := range all {
		b.WriteString("\n--" + boundary + "\n")
		cte := p.cte
		if cte == "" {
			cte = "7bit"
			if !isASCII(p.body) {
				cte = "8bit"
			}
		}
		if p.filename != "" {
			b.WriteString("Content-Type: " + p.contentType + "; name=\"" + p.filename + "\"\n")
			b.WriteString("Content-Disposition: inline; filename=\"" + p.filename + "\"\n")
		} else {
			b.WriteString("Content-Type: " + p.contentType + "\nContent-Disposition: inline\n")
		}
		b.WriteString("Content-Transfer-Encoding: " + cte + "\n")
		if p.description != "" {
			b.WriteString("Content-Description: " + p.description + "\n")
		}
		b.WriteString("\n" + p.body)
	}
	b.WriteString("\n--" + boundary + "--\n")
	return b.String()
}

// textPart is the template's text as amavis attaches it: us-ascii and 7bit, or UTF-8 in
// quoted-printable (base64 when a fifth or more of its bytes are not ASCII).
func textPart(body string) (contentType, cte, encoded string) {
	n8 := 0
	for i := 0; i < len(body); i++ {
		if body[i] >= 0x80 {
			n8++
		}
	}
	if n8 == 0 {
		return `text/plain; charset="us-ascii"`, "7bit", body
	}
	var b strings.Builder
	if n8 < len(body)/5 {
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(body))
		w.Close()
		return `text/plain; charset="UTF-8"`, "quoted-printable", strings.ReplaceAll(b.String(), "\r\n", "\n")
	}
	enc := base64.StdEncoding.EncodeToString([]byte(body))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n")
	return `text/plain; charset="UTF-8"`, "base64", b.String()
}

// encodedField are the fields whose non-ASCII text amavis's hdr RFC 2047-encodes; it leaves
// others (a message id, say) as they are.
var encodedField = map[string]bool{"subject": true, "comments": true, "from": true, "sender": true, "to": true, "cc": true,
	"resent-from": true, "resent-sender": true, "resent-to": true, "resent-cc": true}

// fold writes one header field as amavis's hdr (Amavis::Out::EditHeader) does:
// RFC 2047-encoding a non-ASCII value of the fields that take it, and when the field is longer than 78 columns,
// wrapping it at blanks (kept as they are) with wrap_string.
func fold(name, value string) string {
	if !isASCII(value) && encodedField[strings.ToLower(name)] {
		value = mime.QEncoding.Encode("utf-8", value)
	}
	f := name + ":"
	if value != "" && value[0] != ' ' && value[0] != '\t' {
		f += " "
	}
	f += value
	if len(f) > 78 {
		f = template.WrapString(f, 78, "", " ", true)
	}
	return f
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

func randomHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
