package amavis

import (
	"bytes"
	"strings"
	"time"

	"amavisgo/hdr"
)

// receivedFields returns the parts of amavis's Received field body (as
// make_received_header_field in Amavis::rfc2821_2822_Tools), each an unbreakable chunk for
// hdr.Fold that starts with its blank:
//
//	from <helo|unknown> ([<client ip>]) by <localhost_name> (<myhostname> [<socket ip>])
//	(amavis, port <n>|unix socket) with <proto> id <mail_id> for <rcpt>; <date>
func receivedFields(m *Message, localhostName, myhostname string) []string {
	helo := m.Conn.Helo
	if helo == "" {
		helo = "unknown"
	}
	from := " from " + helo
	if m.Conn.PeerIP != "" {
		from += " ([" + ipv6Tag(m.Conn.PeerIP) + "])"
	}
	if localhostName == "" {
		localhostName = "localhost"
	}
	by := " by " + localhostName
	if m.Conn.LocalIP != "" {
		by += " (" + myhostname + " [" + ipv6Tag(m.Conn.LocalIP) + "])"
	}
	if m.Conn.LocalPort == "" {
		by += " (amavis, unix socket)"
	} else {
		by += " (amavis, port " + m.Conn.LocalPort + ")"
	}
	chunks := []string{from, by}
	switch p := m.Proto; p {
	case "SMTP", "ESMTP", "LMTP", "UTF8SMTP", "UTF8LMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "LMTPS", "LMTPA":
		chunks = append(chunks, " with "+p)
	}
	if m.MailID != "" {
		chunks = append(chunks, " id "+m.MailID)
	}
	if len(m.Recips) == 1 { // do not disclose recipients when there are several
		chunks = append(chunks, " for "+m.Recips[0].AddrSMTP)
	}
	chunks[len(chunks)-1] += ";"
	return append(chunks, " "+rfc2822Date(m.RxTime))
}

// receivedStyle folds the Received field as amavis does: at 78 columns, the first chunk on the
// name's line.
var receivedStyle = hdr.Style{Width: 78, EOL: "\r\n"}

func ipv6Tag(ip string) string {
	if strings.Count(ip, ":") >= 2 {
		return "IPv6:" + ip
	}
	return ip
}

// rfc2822Date is amavis's date format: "Sun, 22 Nov 2026 09:45:23 +0000 (UTC)", the day
// space-padded as strftime's %e.
func rfc2822Date(t time.Time) string {
	return t.Format("Mon, _2 Jan 2006 15:04:05 -0700 (MST)")
}

// headerCapture keeps the start of the message (its header section, up to a limit) while
// the message streams to the spool, so that header fields can be read without re-reading
// the file.
type headerCapture struct {
	buf      []byte
	limit    int
	done     bool // the header/body separator was seen, or the limit reached
	complete bool // the separator was seen: buf is the whole header section
}

func (h *headerCapture) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	start := len(h.buf) - 3
	if start < 0 {
		start = 0
	}
	take := p
	if room := h.limit - len(h.buf); len(take) > room {
		take, h.done = take[:room], true
	}
	h.buf = append(h.buf, take...)
	if end := headerEnd(h.buf, start); end >= 0 {
		h.buf, h.done, h.complete = h.buf[:end], true, true
	}
	return len(p), nil
}

// headerEnd finds the empty line that ends the header section, searching from "from";
// it returns the length of the header without the empty line, or -1.
func headerEnd(b []byte, from int) int {
	if len(b) > 0 && (b[0] == '\n' || bytes.HasPrefix(b, []byte("\r\n"))) {
		return 0
	}
	for i := bytes.IndexByte(b[from:], '\n'); i >= 0; {
		at := from + i + 1 // start of the next line
		rest := b[at:]
		if len(rest) > 0 && rest[0] == '\n' || bytes.HasPrefix(rest, []byte("\r\n")) {
			return at
		}
		from = at
		i = bytes.IndexByte(b[from:], '\n')
	}
	return -1
}
