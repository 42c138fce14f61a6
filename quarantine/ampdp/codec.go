// Package ampdp speaks amavis's AM.PDP protocol (Amavis::In::AMPDP, amavis's README.protocol):
// requests and responses made of name=value lines ended by an empty line, with %XX encoding; and a
// server for a connection on a listener whose policy bank says protocol = "AM.PDP", answering
// request=release and request=requeue from the quarantine (amavisd-release, amavisd-requeue).
package ampdp

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// Attr is one name=value line, decoded.
type Attr struct{ Name, Value string }

// Request is a request's attributes in arrival order; repeated names (recipient) form lists.
type Request []Attr

// Get is the first value of name ("" when absent).
func (r Request) Get(name string) string {
	for _, a := range r {
		if a.Name == name {
			return a.Value
		}
	}
	return ""
}

// Has reports whether name occurs at all.
func (r Request) Has(name string) bool {
	for _, a := range r {
		if a.Name == name {
			return true
		}
	}
	return false
}

// All is every value of name in order.
func (r Request) All(name string) []string {
	var out []string
	for _, a := range r {
		if a.Name == name {
			out = append(out, a.Value)
		}
	}
	return out
}

// Limits on what one request may hold, so that a client cannot make us hold unbounded memory.
const (
	MaxLine    = 64 << 10
	MaxAttrs   = 10000
	MaxRequest = 1 << 20 // bytes in one request
)

// ErrTooLong is a request beyond MaxLine, MaxAttrs or MaxRequest.
var ErrTooLong = errors.New("AM.PDP request too large")

// ReadRequest reads lines up to the empty line that ends a request. It returns io.EOF when the
// connection ends cleanly between requests. Lines that are not name=value (or "name: value")
// are returned in bad, for the log, and otherwise ignored, as amavis does.
func ReadRequest(br *bufio.Reader) (req Request, bad []string, err error) {
	size := 0
	for {
		line, err := readLine(br)
		size += len(line) + 2
		if size > MaxRequest {
			return req, bad, ErrTooLong
		}
		if err != nil {
			if err == io.EOF && (len(req) > 0 || len(bad) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return req, bad, err
		}
		if line == "" {
			return req, bad, nil
		}
		if len(req) >= MaxAttrs {
			return req, bad, ErrTooLong
		}
		a, ok := ParseLine(line)
		if !ok {
			bad = append(bad, line)
			continue
		}
		req = append(req, a)
	}
}

// readLine reads one line without its LF or CRLF, bounded by MaxLine.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > MaxLine {
			return "", ErrTooLong
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// ParseLine decodes one line, "name=value" or "name: value", NUL-free in the name.
func ParseLine(line string) (Attr, bool) {
	i := strings.IndexAny(line, "=:")
	if i < 0 || strings.IndexByte(line[:i], 0) >= 0 {
		return Attr{}, false
	}
	name, value := line[:i], line[i+1:]
	if line[i] == ':' {
		value = strings.TrimLeft(value, " \t")
	}
	return Attr{Name: Decode(name), Value: Decode(value)}, true
}

// Decode undoes %XX encoding; a % not followed by two hex digits stays as it is.
func Decode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Encode makes one response line: the name with all but letters, digits and "._+-" encoded,
// then each field encoded separately ("%", space and bytes outside 0x21-0x7E) and joined by
// spaces, so that "setreply=250 2.0.0 Ok,%20queued" keeps its three fields apart.
func Encode(name string, fields ...string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._+-", c) >= 0 {
			b.WriteByte(c)
		} else {
			writeHex(&b, c)
		}
	}
	b.WriteByte('=')
	for j, f := range fields {
		if j > 0 {
			b.WriteByte(' ')
		}
		for i := 0; i < len(f); i++ {
			c := f[i]
			if c >= 0x21 && c <= 0x7e && c != '%' {
				b.WriteByte(c)
			} else {
				writeHex(&b, c)
			}
		}
	}
	return b.String()
}

// WriteResponse writes the lines, each ended by CRLF, and the empty line that ends a response.
func WriteResponse(w io.Writer, lines []string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeHex(b *strings.Builder, c byte) {
	const digits = "0123456789abcdef"
	b.WriteByte('%')
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&15])
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
