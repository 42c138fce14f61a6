// Package smtp is amavisgo's SMTP/LMTP protocol code: the server side that Postfix talks to
// (a session state machine with XFORWARD, DSN parameters and a streaming DATA reader) and the
// client side that re-injects mail through forward_method (XFORWARD, pipelining, a connection
// cache). It knows the protocol and nothing of policy: what to answer after DATA is the
// Handler's business. Its Reply is the daemon's one reply type: every stage returns one, and
// replies travel between packages as Reply values, parsed only where they come off the wire.
package smtp

import (
	"strconv"
	"strings"
)

// Reply is one SMTP reply: a code, an optional enhanced status code (RFC 3463) and a text.
// A text with "\n" in it becomes a multi-line reply on the wire.
type Reply struct {
	Code int
	Enh  string // "2.0.0", or "" for none
	Text string
}

// String is the reply as amavis writes it in logs and in nested replies: "250 2.0.0 Ok".
func (r Reply) String() string {
	var b strings.Builder
	b.Grow(8 + len(r.Enh) + len(r.Text))
	b.WriteString(strconv.Itoa(r.Code))
	if r.Enh != "" {
		b.WriteByte(' ')
		b.WriteString(r.Enh)
	}
	if r.Text != "" {
		b.WriteByte(' ')
		b.WriteString(r.Text)
	}
	return b.String()
}

// Class is the first digit of the code: 2, 3, 4 or 5.
func (r Reply) Class() int { return r.Code / 100 }

// ProcessingFailed is amavis's reply when a section of its processing failed: the MTA keeps
// the message and retries. logID is the log id (%n), section amavis's name for the stage
// ("virus_scan", "quar+notif", ...), what the failure.
func ProcessingFailed(logID, section, what string) Reply {
	return Reply{Code: 451, Enh: "4.5.0", Text: "Error in processing, id=" + logID + ", " + section + " FAILED: " + what}
}

// maxReplyLine is RFC 5321's 512 octets per reply line, less the CRLF.
const maxReplyLine = 510

// AppendWire appends the reply in wire form: CRLF-terminated lines, split at "\n" and wherever
// a line would exceed 512 octets, each line repeating the code and enhanced code (RFC 2034).
func (r Reply) AppendWire(b []byte) []byte {
	code := strconv.Itoa(r.Code)
	enh := ""
	if r.Enh != "" {
		enh = r.Enh + " "
	}
	room := maxReplyLine - len(code) - 1 - len(enh)
	if room < 1 {
		room = 1
	}
	tail := r.Text
	for len(tail) > room || strings.IndexByte(tail, '\n') >= 0 {
		head := tail
		if len(head) > room {
			head = head[:room]
		}
		if i := strings.IndexByte(head, '\n'); i >= 0 {
			head = head[:i+1]
		}
		tail = tail[len(head):]
		b = append(b, code...)
		b = append(b, '-')
		b = append(b, enh...)
		b = append(b, strings.TrimSuffix(head, "\n")...)
		b = append(b, '\r', '\n')
	}
	b = append(b, code...)
	b = append(b, ' ')
	b = append(b, enh...)
	b = append(b, tail...)
	return append(b, '\r', '\n')
}

// ParseReply splits one reply line ("250 2.0.0 Ok: queued as X") into its parts. A line
// that does not start with a 3-digit code gives Code 0 and the whole line as Text.
func ParseReply(line string) Reply {
	if len(line) < 3 || !isDigits(line[:3]) {
		return Reply{Text: line}
	}
	code, _ := strconv.Atoi(line[:3])
	rest := line[3:]
	if rest != "" && (rest[0] == ' ' || rest[0] == '-') {
		rest = rest[1:]
	}
	r := Reply{Code: code}
	if enh, text, ok := cutEnhanced(rest); ok {
		r.Enh, rest = enh, text
	}
	r.Text = rest
	return r
}

// cutEnhanced recognizes a leading enhanced status code "c.d.d" (class 2, 4 or 5) followed
// by a space or the end.
func cutEnhanced(s string) (enh, rest string, ok bool) {
	end := strings.IndexByte(s, ' ')
	if end < 0 {
		end = len(s)
	}
	e := s[:end]
	parts := strings.Split(e, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.ContainsAny(parts[0], "245") {
		return "", s, false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || !isDigits(p) {
			return "", s, false
		}
	}
	if end < len(s) {
		end++
	}
	return e, s[end:], true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
