package verdict

import (
	"bytes"
	"mime"
	"strings"

	"amavisgo/hdr"
)

// Field is a header field to add. A Structured value (X-Spam-Status) is folded as amavis's
// EditHeader folds one: only where a line feed is, each followed by a blank, the pieces joined
// on one line as long as they fit in 78 columns; any other value is wrapped (wrapField).
type Field struct {
	Name, Value string
	Structured  bool
}

// String is the field as it goes on the wire: non-ASCII values RFC 2047-encoded, a value over
// 78 columns wrapped as Amavis::Out::EditHeader's hdr wraps it (wrapField), CRLF at the end.
func (f Field) String() string {
	v := f.Value
	if f.Structured && nonASCII(v) < 0 {
		chunks := strings.Split(" "+v, "\n")
		return string(hdr.Fold(nil, f.Name+":", chunks, hdr.Style{Width: 78, EOL: "\r\n"})) + "\r\n"
	}
	if nonASCII(v) >= 0 {
		v = mime.QEncoding.Encode("UTF-8", v)
	}
	line := f.Name + ":"
	if v != "" && v[0] != ' ' && v[0] != '\t' {
		line += " "
	}
	line += v
	if len(line) <= 78 {
		return unfold(line) + "\r\n"
	}
	return wrapField(line) + "\r\n"
}

// unfold removes the line breaks of a text, keeping a blank where one breaks words.
func unfold(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\n' {
			b.WriteByte(s[i])
		} else if i+1 < len(s) && s[i+1] != ' ' && s[i+1] != '\t' {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// wrapField folds a header field as amavis's wrap_string (Amavis::rfc2821_2822_Tools) does for
// an unstructured field: the text is cut into chunks, each a blank, a word and the blanks after
// it but one; chunks fill a line up to 78 columns (a tab up to the next multiple of 8); a chunk
// that does not fit leaves its word on the line when that fits, with as much of its blanks as
// fit (a line may end in blanks), the rest of them starting the next line. No blank is added
// or removed.
func wrapField(str string) string {
	const width = 78
	chunks := wrapChunks(unfold(str))
	allWhite := func(s string) bool { return strings.Trim(s, " \t") == "" }
	var result strings.Builder
	cur, col := "", 0
	started := false
	flush := func() {
		if started {
			result.WriteString("\r\n")
		}
		started = true
		result.WriteString(cur)
		cur, col = "", 0
	}
	for len(chunks) > 0 {
		chunk := chunks[0]
		chunks = chunks[1:]
		if l := displayedLength(chunk, col); l <= width || len(chunks) == 0 && allWhite(cur) {
			cur, col = cur+chunk, l
			continue
		}
		solid := strings.TrimRight(chunk, " \t")
		tail := chunk[len(solid):]
		if l := displayedLength(solid, col); len(chunks) > 0 && (l <= width || allWhite(cur)) {
			cur, col = cur+solid, l
			for tail != "" {
				d := displayedLength(tail[:1], col)
				if d > width {
					break
				}
				cur, col, tail = cur+tail[:1], d, tail[1:]
			}
			if tail != "" {
				chunks[0] = tail + chunks[0]
			}
			continue
		}
		flush()
		chunks = append([]string{chunk}, chunks...)
	}
	if !allWhite(cur) {
		flush()
	}
	return result.String()
}

// wrapChunks cuts a text into wrapField's chunks: the first from the start to the end of its
// first word, each next one blank, a word, and the blanks after it but the one that starts the
// next chunk.
func wrapChunks(s string) []string {
	var out []string
	start := 0
	i := strings.IndexFunc(s, func(r rune) bool { return r != ' ' && r != '\t' })
	if i < 0 {
		return []string{s}
	}
	for i < len(s) {
		for i < len(s) && s[i] != ' ' && s[i] != '\t' { // the word
			i++
		}
		j := i
		for j < len(s) && (s[j] == ' ' || s[j] == '\t') { // the blanks after it
			j++
		}
		if j < len(s) {
			j-- // the last blank starts the next chunk
		}
		out = append(out, s[start:j])
		start, i = j, j+1
	}
	return out
}

// displayedLength is the column after s when it starts at column col, a tab going to the next
// multiple of 8.
func displayedLength(s string, col int) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\t' {
			col += 8 - col%8
		} else {
			col++
		}
	}
	return col
}

// HeaderEdits are the edits of the header of a passed recipient's copy, as data. The daemon
// removes the fields named in Delete, puts Add on top of the original header in this order
// (then its own Received field), and prepends SubjectTag to the Subject in place
// (TagSubject). Recipients with equal Keys can share one forwarding transaction.
type HeaderEdits struct {
	Delete     []string
	Add        []Field
	SubjectTag string // "" when the Subject stays as it is
	// Tagged is amavis's recip_tagged: the copy carries an alert, X-Spam-Flag: YES or a
	// subject tag (the log says RelayedTagged).
	Tagged bool
	// SpamStatus is X-Spam-Status unfolded, for the level-2 spam-tag line; "" without one.
	SpamStatus string
}

// Key identifies a set of edits, for clustering recipients into transactions: recipients
// with equal keys go in one transaction with the first one's edits. As in amavis,
// X-Quarantine-ID does not count, so it follows the first recipient of a cluster.
func (h HeaderEdits) Key() string {
	var b strings.Builder
	for _, d := range h.Delete {
		b.WriteString("-" + d + "\x00")
	}
	for _, f := range h.Add {
		if f.Name != "X-Quarantine-ID" {
			b.WriteString(f.Name + ":" + f.Value + "\x00")
		}
	}
	b.WriteString("S:" + h.SubjectTag)
	return b.String()
}

// HeaderEdits returns the edits for recipient r's copy (as Amavis.pm's
// add_forwarding_header_edits_per_recip makes them): X-Amavis-Hold, X-Quarantine-ID (local
// recipients, when the message was quarantined; mailID is amavis's mail_id), X-Virus-Scanned
// (X_HEADER_TAG: X_HEADER_LINE, unless r bypasses virus checks), X-Amavis-Alert for a virus, banned
// part or bad header that r lets pass, and the subject tag (***INFECTED***, ***UNCHECKED***) for
// local recipients. Fields that allowed_added_header_fields disables are left out.
func (v *Verdict) HeaderEdits(r *Recipient, mailID string, quarantined bool) HeaderEdits {
	p := v.policy
	var h HeaderEdits
	if p.HeaderFieldAllowed("X-Amavis-Hold") {
		h.Delete = append(h.Delete, "X-Amavis-Hold")
		if v.Hold != "" {
			h.Add = append(h.Add, Field{Name: "X-Amavis-Hold", Value: v.Hold})
		}
	}
	if v.spamChecked && v.removesSpamHeaders(r) {
		h.Delete = append(h.Delete, v.spamPresent...)
	}
	tag := p.X_HEADER_TAG
	addTag := validFieldName(tag) && v.xHeaderLine != "" && v.xTagAllowed()
	if addTag && p.RemoveExistingXScannedHeaders {
		h.Delete = append(h.Delete, tag)
	}
	if r.Local && quarantined && mailID != "" && p.HeaderFieldAllowed("X-Quarantine-ID") {
		h.Add = append(h.Add, Field{Name: "X-Quarantine-ID", Value: "<" + mailID + ">"})
	}
	if addTag && !r.BypassVirus {
		h.Add = append(h.Add, Field{Name: tag, Value: v.xHeaderLine})
	}
	if p.HeaderFieldAllowed("X-Amavis-Alert") {
		if r.CCats.Has(CC_VIRUS, 0) {
			h.Add = append(h.Add, Field{Name: "X-Amavis-Alert", Value: "INFECTED, message contains virus: " + strings.Join(v.Viruses, ", ")})
			h.Tagged = true
		}
		if r.CCats.Has(CC_BANNED, 0) {
			h.Add = append(h.Add, Field{Name: "X-Amavis-Alert", Value: "BANNED, message contains " + r.BannedReason})
			h.Tagged = true
		}
		if r.CCats.Has(CC_BADH, 0) && len(v.BadHeaders) > 0 {
			h.Add = append(h.Add, Field{Name: "X-Amavis-Alert", Value: "BAD HEADER SECTION, " + alertText(strings.TrimSuffix(v.BadHeaders[0], "\n"))})
		}
	}
	if v.spamChecked {
		fields, status := v.spamFields(r)
		h.Add = append(h.Add, fields...)
		h.SpamStatus = status
		if r.Local && r.CCats.Has(CC_SPAMMY, 0) && p.HeaderFieldAllowed("X-Spam-Flag") {
			h.Tagged = true
		}
	}
	if r.Local {
		if t := v.subjectTag(r, mailID); t != "" {
			h.Tagged = true
			if v.hasSubject {
				h.SubjectTag = t
			} else {
				h.Add = append(h.Add, Field{Name: "Subject", Value: strings.TrimRight(t, " \t")})
			}
		}
	}
	return h
}

// xTagAllowed: X_HEADER_TAG is allowed unless allowed_added_header_fields says otherwise
// (amavis adds it to the table itself).
func (v *Verdict) xTagAllowed() bool {
	for k := range v.policy.AllowedAddedHeaderFields {
		if strings.EqualFold(k, v.policy.X_HEADER_TAG) {
			return v.policy.HeaderFieldAllowed(v.policy.X_HEADER_TAG)
		}
	}
	return true
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' || s[i] == ':' {
			return false
		}
	}
	return true
}

// subjectTag is the first non-empty tag of %subject_tag_maps_by_ccat among r's categories:
// VIRUS "***INFECTED*** ", UNCHECKED undecipherable_subject_tag, SPAMMY,1
// spam_subject_tag3_maps, SPAMMY spam_subject_tag2_maps (sa_spam_subject_tag), CLEAN,1
// spam_subject_tag_maps (sa_spam_subject_tag1); SPAM has none of its own.
func (v *Verdict) subjectTag(r *Recipient, mailID string) string {
	for _, c := range r.CCats {
		var t string
		switch c {
		case CCat{CC_VIRUS, 0}:
			t = "***INFECTED*** "
		case CCat{CC_UNCHECKED, 0}:
			t = v.policy.UndecipherableSubjectTag
		default:
			if v.spamChecked {
				t = v.spamSubjectTag(r, c, mailID)
			}
		}
		if t != "" {
			return t
		}
	}
	return ""
}

// TagSubject edits a Subject field body (the text after "Subject:") as amavis does: earlier
// occurrences of the tag are removed (when it is 3 characters or longer) and the tag is put
// in front, after one blank.
func TagSubject(body, tag string) string {
	s := body
	if strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\t") {
		s = s[1:]
	}
	if len(tag) >= 3 {
		s = strings.ReplaceAll(s, tag, "")
	}
	return " " + tag + s
}

// Prepend is the block of added fields that goes on top of the header, in order.
func (h HeaderEdits) Prepend() []byte {
	var b []byte
	for _, f := range h.Add {
		b = append(b, f.String()...)
	}
	return b
}

// EditHeader applies the in-place edits to an original header section (without its empty
// line): fields named in Delete are removed, and each Subject gets the subject tag. Every
// other byte stays as it was, line ends included.
func (h HeaderEdits) EditHeader(orig []byte) []byte {
	if len(h.Delete) == 0 && h.SubjectTag == "" {
		return orig
	}
	out := make([]byte, 0, len(orig)+len(h.SubjectTag)+8)
	for len(orig) > 0 {
		var f []byte
		f, orig = hdr.Next(orig) // with its continuation lines and line ends
		name := fieldName(string(f))
		switch {
		case name != "" && h.deletes(name):
			continue
		case name != "" && h.SubjectTag != "" && strings.EqualFold(name, "Subject"):
			colon := bytes.IndexByte(f, ':')
			out = append(out, f[:colon+1]...)
			out = append(out, TagSubject(string(f[colon+1:]), h.SubjectTag)...)
		default:
			out = append(out, f...)
		}
	}
	return out
}

func (h HeaderEdits) deletes(name string) bool {
	for _, d := range h.Delete {
		if strings.EqualFold(d, name) {
			return true
		}
	}
	return false
}

// alertText is a finding as amavis puts it in X-Amavis-Alert: line breaks and tabs stay (wrapField
// unfolds it), other control characters become blanks.
func alertText(s string) string {
	return strings.Map(func(c rune) rune {
		if c != '\n' && c != '\t' && (c < 0x20 || c == 0x7f) {
			return ' '
		}
		return c
	}, s)
}
