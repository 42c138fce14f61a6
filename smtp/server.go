package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Logger receives the session's log lines; levels are amavis's (-3..5).
type Logger interface {
	Enabled(level int) bool
	Logf(level int, format string, args ...any)
}

// Config is what a server session needs to know; the daemon fills it from the policy bank.
type Config struct {
	HeloName   string        // $myheloname: "[127.0.0.1]", "[localhost]" on a Unix socket
	Greeting   string        // the text after "220 ", already expanded
	QuitBanner string        // the text after "221 2.0.0 ", already expanded
	SizeLimit  int64         // smtpd_message_size_limit for the EHLO SIZE keyword; 0: none
	RcptLimit  int           // smtpd_recipient_limit
	Timeout    time.Duration // smtpd_timeout: for each line from the client, from the start of the wait
	// DiscardEHLOKeywords are EHLO keywords not to announce (smtpd_discard_ehlo_keywords).
	DiscardEHLOKeywords []string
	Log                 Logger
	// RcptCheck, when set, is asked about each syntactically valid recipient (the policy's
	// per-recipient checks, such as a declared SIZE over message_size_limit_maps). A nil
	// reply accepts it with the usual 250; a 2xx reply accepts it with that reply; a 421
	// ends the session with the shutdown reply (the recipient could not be checked: amavis's
	// process rundown); any other reply refuses it.
	// A refusal from RcptCheck is not penalized (no "smtp_resp:" line): RcptCheck logs it
	// itself, as amavis does for a declared size over a recipient's limit.
	RcptCheck func(tx *Transaction, rc *Recipient) *Reply
	// OnMail, when set, is told the number of each transaction a MAIL command begins, refused
	// or not (Amavis::In::SMTP gives it a new log id then, "12345-01-2").
	OnMail func(seq int)
}

// Handler processes a message once the client has sent DATA and received 354.
type Handler interface {
	// Data reads the message from r (until io.EOF) and returns the replies to send: one for
	// SMTP, one per recipient of tx (in order) for LMTP. When r fails (the client went away or
	// timed out), Data should return nil; the session then closes without a reply.
	Data(s *Session, tx *Transaction, r *DataReader) []Reply
}

// Finisher is an optional interface of a Handler: Finish is called after the replies to a
// message were sent (or the transfer failed), to clean up after it.
type Finisher interface {
	Finish(tx *Transaction)
}

// XForward holds the attributes of Postfix's XFORWARD command; "" means unknown.
type XForward struct {
	Name, Addr, Port, Proto, Helo, Ident, Source, Login string
}

// attr is the field of the XFORWARD attribute name (upper case), nil for an unknown one.
func (x *XForward) attr(name string) *string {
	switch name {
	case "NAME":
		return &x.Name
	case "ADDR":
		return &x.Addr
	case "PORT":
		return &x.Port
	case "PROTO":
		return &x.Proto
	case "HELO":
		return &x.Helo
	case "IDENT":
		return &x.Ident
	case "SOURCE":
		return &x.Source
	case "LOGIN":
		return &x.Login
	}
	return nil
}

// Recipient is one RCPT TO: as the server accepted it, or as the client sends it.
type Recipient struct {
	Addr     string   // unquoted, without brackets
	AddrSMTP string   // as received, with brackets: "<a@example.com>"
	Notify   []string // DSN NOTIFY values, upper case; nil when not given
	ORCPT    string   // DSN ORCPT as received (addr-type ";" xtext)
}

// Transaction is one MAIL transaction.
type Transaction struct {
	Seq      int    // 1 for the first MAIL of the session, 2 for the next...
	Proto    string // SMTP, ESMTP, LMTP, UTF8SMTP, UTF8LMTP
	From     string // unquoted sender, "" for the null sender
	FromSMTP string // as received: "<a@example.com>"
	Size     int64  // declared SIZE, -1 when not given
	Body     string // "7BIT", "8BITMIME" or ""
	SMTPUTF8 bool
	RET      string // "FULL", "HDRS" or ""
	ENVID    string // xtext as received
	Rcpts    []Recipient
	XForward XForward // the XFORWARD attributes that apply to this transaction
	// Refused, set by the Handler, makes its first reply the only answer to DATA, in LMTP
	// too: the message was refused as a whole (over a size limit, as Amavis::In::SMTP does).
	Refused bool
}

// Session is one SMTP/LMTP connection from a client.
type Session struct {
	cfg  *Config
	conn net.Conn
	h    Handler
	br   *bufio.Reader
	out  []byte
	line []byte

	lmtp       bool
	proto      string
	helo       string
	pipelining bool
	xf         XForward
	tx         *Transaction
	gotRcpt    int
	seq        int

	// newWait: the next read waits for a new line and starts smtpd_timeout afresh.
	newWait bool

	mu      sync.Mutex
	idle    bool // waiting for a command: a shutdown may interrupt
	closing bool
}

// NewSession prepares a session on conn; lmtp selects the initial protocol (the listener's
// policy bank protocol), which EHLO, HELO and LHLO may change.
func NewSession(conn net.Conn, cfg *Config, h Handler, lmtp bool) *Session {
	s := &Session{cfg: cfg, conn: conn, h: h, lmtp: lmtp, proto: "SMTP"}
	s.br = bufio.NewReaderSize(s, 64<<10)
	return s
}

// RemoteAddr is the client's address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// LocalAddr is our socket's address.
func (s *Session) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// LMTP reports whether the session speaks LMTP (after LHLO, or by the listener's protocol).
func (s *Session) LMTP() bool { return s.lmtp }

// Helo is the argument of the client's last HELO/EHLO/LHLO.
func (s *Session) Helo() string { return s.helo }

// Read is the session's view of the connection: each line from the client must be complete
// within smtpd_timeout of the start of the wait for it, and a read while idle fails at once
// after Shutdown. As in Amavis::In::SMTP, which starts smtpd_timeout when it has sent its
// replies, a line arriving in pieces does not restart the timer: a client that trickles
// bytes cannot hold the session for ever.
func (s *Session) Read(p []byte) (int, error) {
	s.mu.Lock()
	if s.closing && s.idle {
		s.mu.Unlock()
		return 0, errShuttingDown
	}
	if s.newWait && s.cfg.Timeout > 0 {
		s.conn.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
	}
	s.newWait = false
	s.mu.Unlock()
	return s.conn.Read(p)
}

// awaitLine starts the wait for a new line from the client.
func (s *Session) awaitLine() { s.newWait = true }

var errShuttingDown = errors.New("shutting down")

// errRundown ends a session whose RcptCheck answered 421; the replies so far, the 421 last,
// are sent first.
var errRundown = errors.New("recipient check failed: session ends")

// Shutdown asks the session to end: an idle session (waiting for a command) gets "421" at
// once; a session receiving or processing a message finishes it and gets "421" before its
// next command.
func (s *Session) Shutdown() {
	s.mu.Lock()
	s.closing = true
	if s.idle {
		s.conn.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
}

// Close drops the connection at once, whatever the session is doing (a shutdown that ran
// out of time).
func (s *Session) Close() error { return s.conn.Close() }

func (s *Session) setIdle(idle bool) bool {
	s.mu.Lock()
	s.idle = idle
	closing := s.closing
	s.mu.Unlock()
	return closing
}

const shutdownReply = "421 4.3.2 Service shutting down, closing channel"

// maxPendingOut bounds the replies held back for a pipelined batch (amavis: 200 lines).
const maxPendingOut = 8 << 10

// Serve runs the session until QUIT, the client leaves, a timeout or Shutdown. It closes
// the connection. The error says why a session ended abnormally (nil after QUIT).
func (s *Session) Serve() error {
	defer s.conn.Close()
	s.reply(Reply{Code: 220, Text: s.cfg.Greeting})
	if err := s.flush(); err != nil {
		return err
	}
	for {
		if s.setIdle(true) {
			return s.abort("shutting down")
		}
		s.awaitLine()
		line, err := readLine(s.br, s.line)
		s.line = line[:0]
		closing := s.setIdle(false)
		switch {
		case err == errLineTooLong:
			s.penalize(Reply{Code: 500, Enh: "5.5.2", Text: "Error: bad syntax"}, "(line too long)")
		case err != nil && closing:
			return s.abort("shutting down")
		case err != nil:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.logf(-1, "Requesting process rundown, task exceeded allowed time during waiting for input from client")
				return s.abort("timed out during waiting for input from client")
			}
			s.logf(3, "%s: notice: client broke the connection without a QUIT (%v)", s.proto, err)
			return err
		default:
			if s.cfg.Log != nil && s.cfg.Log.Enabled(4) {
				s.logf(4, `%s< %s\r\n`, s.proto, line)
			}
			quit, err := s.command(string(line))
			if err == errRundown {
				s.flush()
			}
			if err != nil {
				return err
			}
			if quit {
				return s.flush()
			}
		}
		// RFC 2920: the replies to a pipelined batch go out together once it is consumed, that
		// is before we wait for the client (the next line is not complete in the buffer), so
		// that smtpd_timeout never runs while the client waits for our replies. Without
		// PIPELINING (before EHLO/LHLO, after HELO) each goes at once, as amavis does, and a
		// client that pipelines without reading cannot make us hold more than maxPendingOut
		// bytes of replies.
		if !s.pipelining || !s.lineBuffered() || len(s.out) > maxPendingOut {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
}

// lineBuffered reports whether a whole command line is in the input buffer: reading it will
// not wait for the client.
func (s *Session) lineBuffered() bool {
	buf, _ := s.br.Peek(s.br.Buffered())
	return bytes.Contains(buf, []byte("\r\n"))
}

// abort ends the session with the 421 reply amavis gives when it shuts down or times out.
func (s *Session) abort(why string) error {
	s.out = s.out[:0]
	s.out = append(s.out, shutdownReply...)
	s.out = append(s.out, '\r', '\n')
	s.flush()
	return errors.New(why)
}

func (s *Session) logf(level int, format string, args ...any) {
	if s.cfg.Log != nil && s.cfg.Log.Enabled(level) {
		s.cfg.Log.Logf(level, format, args...)
	}
}

func (s *Session) reply(r Reply) {
	if s.cfg.Log != nil && s.cfg.Log.Enabled(4) {
		s.logf(4, "%s> %s", s.proto, r.String())
	}
	s.out = r.AppendWire(s.out)
}

// penalize sends an error reply and logs it with the offending command, as amavis does
// for the client's mistakes (the command with its line end, as amavis's log shows it).
func (s *Session) penalize(r Reply, cmd string) {
	s.logf(0, `%s: %s; smtp_resp: %s\r\n`, s.proto, r.String(), cmd)
	s.reply(r)
}

func (s *Session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	if s.cfg.Timeout > 0 {
		s.conn.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
	}
	_, err := s.conn.Write(s.out)
	s.out = s.out[:0]
	return err
}

func (s *Session) resetTx() {
	s.tx = nil
	s.gotRcpt = 0
	s.xf = XForward{}
}

func r(code int, enh, text string) Reply { return Reply{Code: code, Enh: enh, Text: text} }

// command handles one command line; quit reports the end of the session.
func (s *Session) command(line string) (quit bool, err error) {
	verb, args, ok := ParseCommand(line)
	if !ok {
		s.penalize(r(500, "5.5.2", "Error: bad syntax"), line)
		return false, nil
	}
	switch verb {
	case "NOOP":
		s.reply(r(250, "2.0.0", "Ok NOOP"))
	case "QUIT":
		if args != "" {
			s.penalize(r(501, "5.5.4", "Error: QUIT does not accept arguments"), line)
			return false, nil
		}
		s.reply(r(221, "2.0.0", s.cfg.QuitBanner))
		return true, nil
	case "RSET", "HELO", "EHLO", "LHLO", "STARTTLS":
		s.resetTx()
		switch {
		case (verb == "RSET" || verb == "STARTTLS") && args != "":
			s.penalize(r(501, "5.5.4", "Error: "+verb+" does not accept arguments"), line)
		case verb == "RSET":
			s.reply(r(250, "2.0.0", "Ok RSET"))
		case verb == "STARTTLS":
			s.reply(r(502, "5.5.1", "Error: command not available"))
		case verb == "HELO":
			s.pipelining, s.lmtp, s.proto, s.helo = false, false, "SMTP", args
			s.reply(Reply{Code: 250, Text: s.cfg.HeloName})
		default:
			s.pipelining, s.lmtp, s.helo = true, verb == "LHLO", args
			s.proto = "ESMTP"
			if s.lmtp {
				s.proto = "LMTP"
			}
			s.reply(Reply{Code: 250, Text: s.cfg.HeloName + "\n" + strings.Join(s.ehloKeywords(), "\n")})
		}
	case "XFORWARD":
		s.xforward(args, line)
	case "HELP":
		s.reply(r(214, "2.0.0", "See amavis home page at:\nhttp://www.ijs.si/software/amavisd/"))
	case "VRFY":
		if args == "" {
			s.penalize(r(501, "5.5.2", "Syntax: VRFY address"), line)
		} else {
			s.reply(r(252, "2.0.0", "Argument not checked"))
		}
	case "MAIL":
		s.mail(args, line)
	case "RCPT":
		if s.rcpt(args, line) {
			return false, errRundown
		}
	case "DATA":
		return false, s.data(args, line)
	case "EXPN", "TURN", "ETRN", "SEND", "SOML", "SAML":
		s.reply(r(502, "5.5.1", "Error: command "+verb+" not implemented"))
	default:
		s.penalize(r(500, "5.5.2", "Error: command "+verb+" not recognized"), line)
	}
	return false, nil
}

// ehloKeywords lists the extensions in amavis's order, less the discarded ones.
func (s *Session) ehloKeywords() []string {
	size := "SIZE"
	if s.cfg.SizeLimit > 0 {
		size = "SIZE " + strconv.FormatInt(s.cfg.SizeLimit, 10)
	}
	all := []string{"VRFY", "PIPELINING", size, "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "DSN",
		"XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE"}
	if len(s.cfg.DiscardEHLOKeywords) == 0 {
		return all
	}
	drop := map[string]bool{}
	for _, k := range s.cfg.DiscardEHLOKeywords {
		drop[strings.ToUpper(k)] = true
	}
	if drop["8BITMIME"] { // RFC 6531: no SMTPUTF8 without 8BITMIME
		drop["SMTPUTF8"] = true
	}
	out := all[:0]
	for _, k := range all {
		name, _, _ := strings.Cut(k, " ")
		if !drop[name] {
			out = append(out, k)
		}
	}
	return out
}

func (s *Session) xforward(args, line string) {
	if s.tx != nil {
		s.penalize(r(503, "5.5.1", "Error: XFORWARD not allowed within transaction"), line)
		return
	}
	// Attributes take effect one by one, as in amavis: those before a bad one are kept.
	xf := &s.xf
	for _, f := range strings.Fields(args) {
		name, val, ok := strings.Cut(f, "=")
		if !ok || !validParamName(name) || len(val) > 255 || !xforwardValue(val) {
			s.penalize(r(501, "5.5.4", "Syntax error in XFORWARD parameters"), line)
			return
		}
		field := xf.attr(strings.ToUpper(name))
		if field == nil {
			s.penalize(r(501, "5.5.4", "XFORWARD command parameter error: "+strings.ToUpper(name)+"="+val), line)
			return
		}
		if strings.EqualFold(val, "[UNAVAILABLE]") {
			val = ""
		}
		*field = XtextDecode(val)
	}
	s.reply(r(250, "2.5.0", "Ok XFORWARD"))
}

func xforwardValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x21 || c == 0x7f {
			return false
		}
	}
	return true
}

func (s *Session) mail(args, line string) {
	if s.tx != nil {
		s.penalize(r(503, "5.5.1", "Error: nested MAIL command"), line)
		return
	}
	// A transaction begins with MAIL, even one then refused: its number (and log id) is
	// used up, as in Amavis::In::SMTP.
	s.seq++
	if s.cfg.OnMail != nil {
		s.cfg.OnMail(s.seq)
	}
	path, params, ok := parsePath(mailArgs, args)
	if !ok {
		s.penalize(r(501, "5.5.2", "Syntax: MAIL FROM:<address>"), line)
		return
	}
	tx := &Transaction{Proto: s.proto, FromSMTP: path, From: Unquote(path), Size: -1}
	var fail *Reply
	ps, ok := parseParams(params)
	if !ok {
		fail = &Reply{501, "5.5.4", "Syntax error in MAIL FROM parameters"}
	}
	haveRET, haveENVID, haveAUTH := false, false, false
	for _, p := range ps {
		bad := func(text string) { fail = &Reply{501, "5.5.4", text + p.Name} }
		switch {
		case !p.HasValue && (p.Name == "BODY" || p.Name == "RET" || p.Name == "ENVID" || p.Name == "AUTH"):
			bad("Syntax error in MAIL parameter, value is required: ")
		case p.Name == "SIZE":
			if !p.HasValue {
				break
			}
			if len(p.Value) > 20 || !isDigits(p.Value) {
				bad("Syntax error in MAIL parameter: ")
			} else if tx.Size < 0 {
				tx.Size, _ = strconv.ParseInt(p.Value, 10, 64)
			}
		case p.Name == "SMTPUTF8":
			if p.HasValue {
				bad("Syntax error in MAIL parameter: ")
				break
			}
			tx.SMTPUTF8 = true
			// The session's protocol name changes for good (until EHLO/LHLO), even when
			// this MAIL fails: amavis labels what follows UTF8SMTP.
			switch s.proto {
			case "ESMTP":
				s.proto = "UTF8SMTP"
			case "LMTP":
				s.proto = "UTF8LMTP"
			}
			tx.Proto = s.proto
		case p.Name == "BODY":
			v := strings.ToUpper(p.Value)
			if v != "7BIT" && v != "8BITMIME" {
				bad("Syntax error in MAIL parameter: ")
				break
			}
			tx.Body = v
		case p.Name == "RET":
			if haveRET {
				bad("Syntax error in MAIL parameter: ")
				break
			}
			haveRET, tx.RET = true, strings.ToUpper(p.Value)
		case p.Name == "ENVID":
			if haveENVID {
				bad("Syntax error in MAIL parameter: ")
				break
			}
			haveENVID, tx.ENVID = true, p.Value
		case p.Name == "AUTH":
			// No AUTH is offered: the submitter is ignored, as amavis does for Postfix.
			if haveAUTH {
				fail = &Reply{504, "5.5.4", "MAIL command duplicate param.: AUTH=" + p.Value}
			}
			haveAUTH = true
		default:
			fail = &Reply{504, "5.5.4", "MAIL command parameter error: " + p.Name + "=" + p.Value}
		}
		if fail != nil {
			break
		}
	}
	if fail == nil && haveRET && tx.RET != "FULL" && tx.RET != "HDRS" {
		fail = &Reply{501, "5.5.4", "Syntax error in MAIL parameter RET: " + tx.RET}
	}
	if fail != nil {
		s.penalize(*fail, line)
		return
	}
	tx.Seq = s.seq
	tx.XForward = s.xf
	s.tx = tx
	s.reply(r(250, "2.1.0", "Sender "+path+" OK"))
}

func (s *Session) rcpt(args, line string) (end bool) {
	if s.tx == nil {
		s.penalize(r(503, "5.5.1", "Need MAIL command before RCPT"), line)
		s.gotRcpt = 0
		return false
	}
	s.gotRcpt++
	path, params, ok := parsePath(rcptArgs, args)
	if !ok {
		s.penalize(r(501, "5.5.2", "Syntax: RCPT TO:<address>"), line)
		return false
	}
	rc := Recipient{AddrSMTP: path, Addr: Unquote(path)}
	var fail *Reply
	ps, ok := parseParams(params)
	if !ok {
		fail = &Reply{501, "5.5.4", "Syntax error in RCPT parameters"}
	}
	notify, haveNotify, haveORCPT := "", false, false
	for _, p := range ps {
		switch {
		case !p.HasValue && (p.Name == "NOTIFY" || p.Name == "ORCPT"):
			fail = &Reply{501, "5.5.4", "Syntax error in RCPT parameter, value is required: " + p.Name}
		case p.Name == "NOTIFY" && !haveNotify:
			haveNotify, notify = true, p.Value
		case p.Name == "ORCPT" && !haveORCPT:
			haveORCPT, rc.ORCPT = true, p.Value
		case p.Name == "NOTIFY" || p.Name == "ORCPT":
			fail = &Reply{501, "5.5.4", "Syntax error in RCPT parameter " + p.Name}
		default:
			fail = &Reply{555, "5.5.4", "RCPT command parameter unrecognized: " + p.Name}
		}
		if fail != nil {
			break
		}
	}
	if Quote(rc.Addr) != path && !haveORCPT {
		// Non-canonical quoting: keep the original form for DSNs (RFC 3461).
		rc.ORCPT = "rfc822;" + XtextEncode(strings.TrimSuffix(strings.TrimPrefix(path, "<"), ">"))
	}
	if fail == nil && haveNotify {
		rc.Notify = strings.Split(strings.ToUpper(notify), ",")
		never, other, illegal := false, false, false
		for _, v := range rc.Notify {
			switch v {
			case "NEVER":
				never = true
			case "SUCCESS", "FAILURE", "DELAY":
				other = true
			default:
				illegal = true
			}
		}
		switch {
		case illegal:
			fail = &Reply{501, "5.5.4", "Error in RCPT parameter NOTIFY, illegal value: " + notify}
		case never && other:
			fail = &Reply{501, "5.5.4", "Error in RCPT parameter NOTIFY, illegal combination of values: " + notify}
		}
	}
	if fail == nil && s.cfg.RcptLimit > 0 && s.gotRcpt > s.cfg.RcptLimit {
		fail = &Reply{452, "4.5.3", "Too many recipients"}
	}
	ok250 := r(250, "2.1.5", "Recipient "+path+" OK")
	checked := false
	if fail == nil && s.cfg.RcptCheck != nil {
		if rep := s.cfg.RcptCheck(s.tx, &rc); rep != nil {
			if rep.Class() == 2 {
				ok250 = *rep
			} else {
				fail, checked = rep, true
			}
		}
	}
	if fail != nil && fail.Code == 421 {
		s.reply(*fail)
		return true
	}
	if fail != nil {
		if fail.Code >= 500 && !checked {
			s.penalize(*fail, line)
		} else {
			s.reply(*fail)
		}
		return false
	}
	s.tx.Rcpts = append(s.tx.Rcpts, rc)
	s.reply(ok250)
	return false
}

func (s *Session) data(args, line string) error {
	switch {
	case args != "":
		s.penalize(r(501, "5.5.4", "Error: DATA does not accept arguments"), line)
		return nil
	case s.tx == nil:
		s.penalize(r(503, "5.5.1", "Need MAIL command before DATA"), line)
		return nil
	case s.gotRcpt == 0:
		s.penalize(r(503, "5.5.1", "Need RCPT command before DATA"), line)
		return nil
	case len(s.tx.Rcpts) == 0 && s.lmtp:
		s.reply(r(503, "5.1.1", "Error (DATA): no valid recipients")) // RFC 2033 wants 503
		return nil
	case len(s.tx.Rcpts) == 0:
		s.reply(r(554, "5.1.1", "Error (DATA): no valid recipients"))
		return nil
	}
	s.reply(r(354, "", "End data with <CR><LF>.<CR><LF>"))
	if err := s.flush(); err != nil {
		return err
	}
	tx := s.tx
	// Each line of the message has smtpd_timeout from the start of the wait for it. amavis
	// restarts the timer on every read of the message (Amavis::In::SMTP copy_smtp_data),
	// meaning it to apply per line; counting lines, not reads, keeps a client that trickles
	// bytes from holding the session.
	s.awaitLine()
	dr := NewDataReader(s.br)
	dr.lineEnd = &s.newWait
	replies := s.h.Data(s, tx, dr)
	if f, ok := s.h.(Finisher); ok {
		defer f.Finish(tx)
	}
	if !dr.Done() && dr.Err() == nil {
		io.Copy(io.Discard, dr) // the handler gave up early: the client is still sending
	}
	s.resetTx()
	if err := dr.Err(); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.logf(-1, "%s: NOTICE: ABORTING the session: timed out during waiting for input from client", s.proto)
			return s.abort("timed out during data transfer")
		}
		// As Amavis::In::SMTP: the transfer is aborted, then the session.
		why := "Connection broken during DATA"
		if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			why += ": " + err.Error()
		}
		s.logf(-1, "%s ABORTING: %s", s.proto, why)
		s.logf(-1, "%s: NOTICE: ABORTING the session: %s", s.proto, why)
		return err
	}
	// Never leave the client without an answer, nor acknowledge what was not handled: a
	// handler that gave no reply (or, in LMTP, too few) tempfails what is missing.
	want := 1
	if s.lmtp && !tx.Refused {
		want = len(tx.Rcpts)
	}
	for i := len(replies); i < want; i++ {
		replies = append(replies, r(451, "4.5.0", "Error in processing, no reply"))
	}
	for _, rep := range replies[:want] {
		s.reply(rep)
	}
	return s.flush()
}
