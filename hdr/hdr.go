// Package hdr takes a raw header section apart into its fields and puts folded fields together
// (RFC 5322 section 2.2). It works on the bytes as they came, CRLF or LF line ends, in time
// linear in the header: no value is built by concatenation line by line, so a field folded over
// megabytes costs what reading it costs.
package hdr

import (
	"bytes"
	"iter"
	"strings"
)

// Next cuts the first field off a header section: its first line and the continuation lines
// (those starting with a blank) that follow, line ends included, and returns it and the rest.
// Any line starts a field, also one without a colon or an empty one; callers that stop at the
// empty line ending the header look at the field's first line.
func Next(h []byte) (field, rest []byte) {
	end := 0
	for {
		i := bytes.IndexByte(h[end:], '\n')
		if i < 0 {
			return h, nil
		}
		end += i + 1
		if end == len(h) || (h[end] != ' ' && h[end] != '\t') {
			return h[:end], h[end:]
		}
	}
}

// Fields yields the fields of a header section in order, as Next cuts them.
func Fields(h []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(h) > 0 {
			var f []byte
			f, h = Next(h)
			if !yield(f) {
				return
			}
		}
	}
}

// Cut splits a field at the first colon of its first line: the name, without the blanks the
// obsolete syntax allows before the colon, and the raw body after the colon. ok is false when
// the first line has no colon.
func Cut(field []byte) (name, body []byte, ok bool) {
	line := field
	if i := bytes.IndexByte(field, '\n'); i >= 0 {
		line = field[:i]
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return nil, nil, false
	}
	return bytes.TrimRight(field[:colon], " \t"), field[colon+1:], true
}

// Unfold removes the line breaks of a folded body (RFC 5322's unfolding): each LF with the CRs
// before it goes, the blanks of the continuation lines stay.
func Unfold(body []byte) string {
	if bytes.IndexByte(body, '\n') < 0 {
		return string(body)
	}
	out := make([]byte, 0, len(body))
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			return string(append(out, body...))
		}
		out = append(out, bytes.TrimRight(body[:i], "\r")...)
		body = body[i+1:]
	}
	return string(out)
}

// JoinLines trims each line of a folded body and joins the lines with one space; the final line
// end starts no line. Blanks at the start or end of the result (from an empty first or last
// line) are kept; callers wanting the bare value trim it.
func JoinLines(body []byte) string {
	var out strings.Builder // one allocation: the result is never longer than body
	out.Grow(len(body))
	for first := true; len(body) > 0; first = false {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if !first {
			out.WriteByte(' ')
		}
		out.Write(bytes.TrimSpace(line))
	}
	return out.String()
}

// Get returns the body of the first field called name (any case), lines joined and trimmed,
// and whether there was one.
func Get(h []byte, name string) (string, bool) {
	for f := range Fields(h) {
		if n, body, ok := Cut(f); ok && strings.EqualFold(string(n), name) {
			return strings.TrimSpace(JoinLines(body)), true
		}
	}
	return "", false
}

// Count counts the fields called name (any case).
func Count(h []byte, name string) int {
	n := 0
	for f := range Fields(h) {
		if fn, _, ok := Cut(f); ok && strings.EqualFold(string(fn), name) {
			n++
		}
	}
	return n
}

// Style is how Fold breaks a field.
type Style struct {
	Width int    // the line length not to exceed where a break can help
	EOL   string // the line end written before a continuation line: "\r\n" or "\n"
	// FirstMoves lets the first chunk go to a continuation line too; otherwise it stays on
	// the line of head, however long.
	FirstMoves bool
}

// Fold appends head (the field's name and colon, or more) and chunks to b, starting a
// continuation line before a chunk that would take the line past s.Width. Chunks are never
// split; each that may start a continuation line begins with the blank that becomes the
// folding white space. No line end follows the last chunk.
func Fold(b []byte, head string, chunks []string, s Style) []byte {
	b = append(b, head...)
	line := len(head)
	for i, c := range chunks {
		if line+len(c) > s.Width && line > 0 && (i > 0 || s.FirstMoves) {
			b = append(b, s.EOL...)
			line = 0
		}
		b = append(b, c...)
		line += len(c)
	}
	return b
}
