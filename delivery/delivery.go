// Package delivery is how quarantine and notify hand mail they originate to the next hop:
// DSNs, admin notices, quarantine copies for addresses, released messages. delivery/amavissmtp
// implements Sender with the daemon's own SMTP/LMTP client.
package delivery

import (
	"context"
	"io"
	"strconv"
	"strings"

	"amavisgo/conf"
	"amavisgo/smtp"
)

// Sender sends one message to the next hop named by via (notify_method, release_method, ...).
// from is the bare envelope sender ("" = null sender <>), rcpts the bare recipients.
//
// A transaction that could not be made at all (connection refused, greeting 4xx, timeout) is
// an error. Otherwise there is one Result per recipient, in rcpts order, with the next hop's
// answer for it (RCPT rejection or the reply to the final dot).
type Sender interface {
	Send(ctx context.Context, via conf.Method, from string, rcpts []string, msg io.Reader) ([]Result, error)
}

// Result is the next hop's answer for one recipient, wrapped as amavis reports it:
// "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 3F1A2B".
type Result struct {
	Rcpt  string
	Reply smtp.Reply
}

// Wrap turns a next hop's reply into amavis's `<code> <enh> from MTA(<method>): <reply>`,
// making up an enhanced code (class.0.0) when the reply has none. A multi-line reply is
// joined with spaces.
func Wrap(via conf.Method, rep smtp.Reply) smtp.Reply {
	text := "from MTA(" + via.String() + "): " + strings.Join(strings.Fields(rep.String()), " ")
	if rep.Code < 100 || rep.Code > 999 {
		return smtp.Reply{Code: 451, Enh: "4.5.0", Text: text}
	}
	enh := strconv.Itoa(rep.Class()) + ".0.0"
	if c := rep.Class(); rep.Enh != "" && (c == 2 || c == 4 || c == 5) {
		enh = rep.Enh
	}
	return smtp.Reply{Code: rep.Code, Enh: enh, Text: text}
}

// Bracket is smtp.Quote for addresses that may come quoted already (the sender and
// recipients of an AM.PDP request): a local part that is a quoted string is kept as it is,
// and an empty one before a domain is written "", as amavis's qquote_rfc2821_local does.
func Bracket(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	local := addr
	if at >= 0 {
		local = addr[:at]
	}
	switch {
	case at == 0:
		return `<""` + addr + ">"
	case len(local) > 1 && local[0] == '"' && local[len(local)-1] == '"':
		return "<" + addr + ">"
	}
	return smtp.Quote(addr)
}

// ToCRLF returns a writer that writes to w with every bare LF turned into CRLF: what quarantine
// and notify hand a Sender has LF line ends (amavis's files do), SMTP wants CRLF.
func ToCRLF(w io.Writer) io.Writer { return &crlfWriter{w: w} }

type crlfWriter struct {
	w      io.Writer
	lastCR bool
	buf    []byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	c.buf = c.buf[:0]
	for _, b := range p {
		if b == '\n' && !c.lastCR {
			c.buf = append(c.buf, '\r')
		}
		c.buf = append(c.buf, b)
		c.lastCR = b == '\r'
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Options are the parameters amavis gives the mail it originates (Amavis::Out::SMTP's
// mail_via_smtp for an initial submission): ENVID and BODY on MAIL, ORCPT on each RCPT,
// sent when the next hop offers DSN (and 8BITMIME for BODY).
type Options struct {
	ENVID string // xtext; "" for none
	Body  string // "7BIT" or "8BITMIME"; "" for none
	ORCPT bool   // each recipient's ORCPT=rfc822;<its address>
}

type optionsKey struct{}

// WithOptions returns a context that makes a Sender send with o.
func WithOptions(ctx context.Context, o Options) context.Context {
	return context.WithValue(ctx, optionsKey{}, o)
}

// OptionsFrom returns the options WithOptions put in ctx, the zero Options when none.
func OptionsFrom(ctx context.Context) Options {
	o, _ := ctx.Value(optionsKey{}).(Options)
	return o
}

// XText encodes s as RFC 3461 xtext: bytes outside "!".."~", "+" and "=" as +HH.
func XText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			b.WriteString("+" + strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
