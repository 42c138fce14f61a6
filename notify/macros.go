package notify

import (
	"bytes"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"amavisgo/delivery"
	"amavisgo/hdr"
	"amavisgo/notify/template"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// RFC2822Date is amavis's date form (rfc2822_timestamp), the day padded with a space:
// "Fri,  4 Dec 2026 09:44:18 +0000 (UTC)".
func RFC2822Date(t time.Time) string { return t.Format("Mon, _2 Jan 2006 15:04:05 -0700 (MST)") }

// header is the original header section taken apart, for %j, %m, [:header_field|X] ...
type header []field

type field struct{ name, value string } // value unfolded, without the leading space

func parseHeader(b []byte) header {
	var h header
	// Continuation lines after a line without a colon go on the field before it; its value
	// then grows here, as appending to the string would copy it once per such line.
	var more []byte
	done := func() {
		if more != nil {
			h[len(h)-1].value = string(more)
			more = nil
		}
	}
	rest := bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	for len(rest) > 0 {
		f, after := hdr.Next(rest)
		if f[0] == '\n' {
			break // the empty line ending the header section
		}
		if name, body, ok := hdr.Cut(f); ok {
			done()
			h = append(h, field{name: textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(string(name))), value: unfold(body)})
			rest = after
			continue
		}
		line, cont, _ := bytes.Cut(f, []byte("\n"))
		if len(h) == 0 {
			// before the first field each line may start one, a continuation line too
			rest = rest[min(len(line)+1, len(rest)):]
			continue
		}
		if len(cont) > 0 {
			if more == nil {
				more = []byte(h[len(h)-1].value)
			}
			more = append(append(more, ' '), unfold(cont)...)
		}
		rest = after
	}
	done()
	return h
}

// unfold is a field body as amavis's header_field macro gives it: line breaks before a
// blank taken out (the blank stays), leading and trailing blanks trimmed.
func unfold(body []byte) string {
	out := make([]byte, 0, len(body))
	for i, c := range body {
		if c == '\n' && i+1 < len(body) && (body[i+1] == ' ' || body[i+1] == '\t') {
			continue
		}
		out = append(out, c)
	}
	return strings.Trim(string(out), " \t\n")
}

// get is the j-th field of that name, counting from the top when j >= 0 and from the bottom
// when j < 0 (-1 = the last one), as amavis's header_field macro.
func (h header) get(name string, j int) string {
	name = textproto.CanonicalMIMEHeaderKey(name)
	var vals []string
	for _, f := range h {
		if f.name == name {
			vals = append(vals, f.value)
		}
	}
	if j < 0 {
		j += len(vals)
	}
	if j < 0 || j >= len(vals) {
		return ""
	}
	return vals[j]
}

// macros builds the values of amavis's notification macros for message m. f is the From:
// of the notification, to its recipients (for %T).
func (n *Notifier) macros(m *Message, f string, to []string, willDSN bool) template.Macros {
	h := parseHeader(m.Header)
	var delivered, failed, failedFull, rcpts []string
	for _, r := range m.Recipients {
		rcpts = append(rcpts, r.Addr)
		q := delivery.Bracket(r.Addr)
		// Passed and not yet forwarded counts as delivered, as amavis's "WILL BE relayed".
		if !r.Blocked && (r.Reply == (smtp.Reply{}) || r.Reply.Class() == 2) {
			delivered = append(delivered, q)
			continue
		}
		failed = append(failed, q)
		said := ""
		if mta := remoteMTA(m, r); mta != "" {
			said = " [" + mta + "] said:" // as amavis's delivery_short_report: "[[127.0.0.1]:10025]"
		}
		failedFull = append(failedFull, q+":"+said+"\n   "+r.Reply.String())
	}
	clientAddrPort := ""
	if m.ClientAddr != "" {
		clientAddrPort = "[" + m.ClientAddr + "]"
		if m.ClientPort != "" {
			clientAddrPort += ":" + m.ClientPort
		}
	}
	local := ""
	if m.Originating {
		local = "1"
	}
	firstRcvd := h.get("Received", 0)
	mv := template.Macros{
		// %S is the sender as amavis keeps it for compatibility; sender_notified is ours.
		"s": delivery.Bracket(m.Sender), "o": m.Sender, "S": delivery.Bracket(m.Sender), "sender_notified": boolStr(willDSN),
		"R": rcpts, "D": delivered, "O": failed, "N": failedFull,
		"V": m.Viruses, "v": m.ScannerOutput, "W": m.Scanners, "X": m.BadHeaders,
		"F": m.BannedReason, "q": m.Quarantined,
		"j": headerField(h, "Subject", "", ""), "m": firstMsgID(h.get("Message-Id", 0)), "r": firstMsgID(h.get("Resent-Message-Id", 0)),
		"n": m.LogID, "log_id": m.LogID, "LOGID": m.LogID,
		"i": m.MailID, "mail_id": m.MailID, "MAILID": m.MailID, "secret_id": m.SecretID,
		"h": n.Config.Myhostname, "HOSTNAME": n.Config.Myhostname,
		"d": RFC2822Date(m.Received), "date_unix_utc": strconv.FormatInt(m.Received.Unix(), 10),
		"y": strconv.FormatInt(n.now().Sub(m.Received).Milliseconds(), 10),
		"z": strconv.FormatInt(m.Size, 10), "b": m.BodyDigest, "Q": m.QueueID,
		"a": m.ClientAddr, "client_addr": m.ClientAddr, "client_port": m.ClientPort,
		"client_addr_port": clientAddrPort, "g": m.ClientName, "client_helo": m.ClientHelo,
		"e": m.OriginatorIP, "t": firstRcvd, "l": local, "p": m.PolicyBank,
		"f": f, "T": to, "C": []string{}, "B": []string{},
		"H":    headerLines(m.Header),
		"dkim": "", "tls_in": "",
		"c": verdict.Hits(m.Recipients), "SCORE": verdict.Hits(m.Recipients),
		"ccat_maj":  strconv.Itoa(m.Category.Major),
		"ccat_min":  strconv.Itoa(m.Category.Minor),
		"ccat_name": m.Category.Name(),
		"ccat": template.Func(func(a ...string) any {
			a = append(a, "", "")
			c := m.Category
			if strings.EqualFold(strings.TrimSpace(a[2]), "main") {
				c = m.MainCategory
			}
			blocked := false
			for _, r := range m.Recipients {
				blocked = blocked || r.Blocked
			}
			switch strings.ToLower(strings.TrimSpace(a[1])) {
			case "name":
				return c.Name()
			case "major":
				return strconv.Itoa(c.Major)
			case "minor":
				return strconv.Itoa(c.Minor)
			case "is_blocking":
				return boolStr(blocked)
			case "is_nonblocking":
				return boolStr(!blocked)
			case "is_blocked_by_nonmain":
				return boolStr(blocked && m.Category != m.MainCategory)
			}
			return "(" + strconv.Itoa(c.Major) + "," + strconv.Itoa(c.Minor) + ")"
		}),
	}
	n.moreMacros(m, h, mv)
	return mv
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// headerLines is %H: each field of the original header, folded lines joined.
func headerLines(b []byte) []string {
	var out []string
	for f := range hdr.Fields(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))) {
		if f[0] == '\n' {
			break // the empty line ending the header section
		}
		out = append(out, strings.TrimRight(string(f), "\n"))
	}
	return out
}
