package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// Client is one connection to a next hop (forward_method), speaking SMTP or LMTP.
type Client struct {
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	lmtp    bool
	ext     map[string]string // EHLO keyword -> its parameters
	timeout time.Duration
	key     string    // the Pool key
	used    time.Time // end of the last transaction, for the Pool's idle limit
	lines   []string
	replies int // replies read so far

	// redial, set by the Pool on a connection it reuses, makes a new connection for the next
	// transaction when the cached one turns out to be closed before it answered anything.
	redial func(context.Context) (*Client, error)
}

// ConnectTimeout bounds the making of a connection to a next hop (amavis's
// smtp_connect_timeout): a next hop that drops our SYNs must not hold a session, and its
// max_servers slot, for the whole child_timeout.
var ConnectTimeout = 35 * time.Second

// Error is a failure of the conversation with the next hop (not a reply it gave): Stage
// names where, in amavis's section names ("fwd-connect", "fwd-data-contents", ...).
type Error struct {
	Stage string
	Err   error
	// InData: the message was being written when it broke (the next hop accepted DATA but
	// never got the final dot).
	InData bool
}

func (e *Error) Error() string { return e.Stage + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the conversation timed out.
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Dial connects to a next hop at addr ("host:port", or a path for network "unix"), reads its
// greeting and introduces itself as helo with LHLO (lmtp) or EHLO, falling back to HELO.
// Connecting takes at most ConnectTimeout; the timeout bounds every single read and write
// later on.
func Dial(ctx context.Context, network, addr string, lmtp bool, helo string, timeout time.Duration) (*Client, error) {
	d := net.Dialer{Timeout: ConnectTimeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &Error{Stage: "fwd-connect", Err: err}
	}
	c := &Client{conn: conn, br: bufio.NewReaderSize(conn, 4096), bw: bufio.NewWriterSize(conn, 64<<10),
		lmtp: lmtp, timeout: timeout}
	if err := c.hello(ctx, helo); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) hello(ctx context.Context, helo string) error {
	c.deadline(ctx)
	greet, err := c.readReply()
	if err != nil {
		return &Error{Stage: "fwd-connect", Err: err}
	}
	if greet.Code != 220 {
		return &Error{Stage: "fwd-connect", Err: fmt.Errorf("bad greeting: %s", greet)}
	}
	verb := "EHLO"
	if c.lmtp {
		verb = "LHLO"
	}
	rep, err := c.cmd(ctx, verb+" "+helo)
	if err != nil {
		return &Error{Stage: "fwd-connect", Err: err}
	}
	if rep.Code/100 != 2 && !c.lmtp {
		rep, err = c.cmd(ctx, "HELO "+helo)
		if err != nil {
			return &Error{Stage: "fwd-connect", Err: err}
		}
	}
	if rep.Code/100 != 2 {
		return &Error{Stage: "fwd-connect", Err: fmt.Errorf("%s rejected: %s", verb, rep)}
	}
	c.ext = map[string]string{}
	for _, l := range c.lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	if c.lmtp {
		for _, need := range []string{"PIPELINING", "ENHANCEDSTATUSCODES"} {
			if _, ok := c.ext[need]; !ok {
				//lint:ignore ST1005 amavis's own text, which log parsers and clients match
				return &Error{Stage: "fwd-connect", Err: fmt.Errorf("An LMTP server implementation MUST implement %s", need)}
			}
		}
	}
	return nil
}

// deadline bounds the next I/O by the client's timeout and the context's deadline.
func (c *Client) deadline(ctx context.Context) {
	t := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(t) {
		t = d
	}
	c.conn.SetDeadline(t)
}

// A next hop's reply is bounded: lines of at most maxReplyLineIn bytes, at most
// maxReplyLines lines (a broken or hostile server cannot make us buffer without end).
const (
	maxReplyLineIn = 4096
	maxReplyLines  = 1000
)

var errReplyTooLong = errors.New("reply too long")

// readReply reads one (possibly multi-line) reply; the text lines are kept in c.lines and
// the returned Reply joins them with "\n".
func (c *Client) readReply() (Reply, error) {
	c.lines = c.lines[:0]
	var rep Reply
	var texts []string // the text of the lines after the first
	for {
		raw, err := c.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull || len(raw) > maxReplyLineIn || len(c.lines) >= maxReplyLines {
			return Reply{}, errReplyTooLong
		}
		if err != nil {
			return Reply{}, err
		}
		line := strings.TrimRight(string(raw), "\r\n")
		if len(line) < 3 || !isDigits(line[:3]) {
			return Reply{}, fmt.Errorf("bad reply line %q", line)
		}
		p := ParseReply(line)
		more := len(line) > 3 && line[3] == '-'
		if len(c.lines) == 0 {
			rep = p
		} else {
			texts = append(texts, p.Text)
		}
		c.lines = append(c.lines, line[min(4, len(line)):])
		if !more {
			if len(texts) > 0 {
				// joined once: adding each line to the text copied a long reply over and over
				rep.Text = rep.Text + "\n" + strings.Join(texts, "\n")
			}
			c.replies++
			return rep, nil
		}
	}
}

func (c *Client) cmd(ctx context.Context, line string) (Reply, error) {
	c.deadline(ctx)
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		return Reply{}, err
	}
	return c.readReply()
}

// Reset sends RSET, ending a transaction the next hop took part of.
func (c *Client) Reset(ctx context.Context) error {
	rep, err := c.cmd(ctx, "RSET")
	if err == nil && rep.Code != 250 {
		err = fmt.Errorf("RSET: %s", rep)
	}
	return err
}

// connClosed: the error says the next hop closed the connection (or reset it).
func connClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// quiet reports whether an idle connection is still open and has nothing unread: reading
// it must not return at once.
func (c *Client) quiet() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	c.conn.SetReadDeadline(time.Now())
	_, err := c.br.Peek(1)
	c.conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close sends QUIT (without waiting long for its reply) and closes the connection.
func (c *Client) Close() error {
	c.conn.SetDeadline(time.Now().Add(time.Second))
	c.bw.WriteString("QUIT\r\n")
	if c.bw.Flush() == nil {
		c.readReply()
	}
	return c.conn.Close()
}

// Abort drops the connection without QUIT; used in the middle of DATA, so that the next
// hop never sees a terminator for a message it must not deliver.
func (c *Client) Abort() { c.conn.Close() }

// Envelope is what Send transmits besides the message itself.
type Envelope struct {
	// XForward, when not nil, is sent (only the attributes the server announced) before MAIL.
	XForward *XForward
	From     string // reverse path with brackets: "<a@example.com>", "<>"
	Body     string // BODY= value, "" for none
	SMTPUTF8 bool
	RET      string // DSN RET, sent when the server offers DSN and DSN is true
	ENVID    string // DSN ENVID (xtext), likewise
	// Rcpts are the recipients; each goes out as RCPT TO:<Quote(Addr)> (AddrSMTP is not
	// used), with its NOTIFY and ORCPT when DSN parameters are sent.
	Rcpts []Recipient
	// DSN: propagate DSN parameters if the server offers DSN (propagate_dsn_if_possible).
	DSN bool
	// AllOrNothing: a temporary failure of any recipient at RCPT aborts the transaction
	// before the message is sent (SMTP input: the upstream MTA will retry them all).
	AllOrNothing bool
}

// RcptResult is the next hop's answer for one recipient.
type RcptResult struct {
	Done  bool   // the next hop gave a final answer for this recipient
	Reply Reply  // the answer, as received
	Cmd   string // what it answered: "MAIL FROM", "RCPT TO", "DATA" or "data-dot"
	// Elapsed is, for an answer to the final dot, the time from sending the dot to it; the
	// answer is the zero Reply when the next hop closed the connection without one.
	Elapsed time.Duration
}

// Result of Send, per recipient in the order of Envelope.Rcpts.
type Result struct {
	Rcpts     []RcptResult
	DSNPassed bool     // DSN parameters were sent
	Params    []string // the MAIL FROM parameters sent, for the log
}

// failPending gives every recipient without a final answer yet rep as its answer to cmd.
func (r *Result) failPending(rep Reply, cmd string) {
	for i := range r.Rcpts {
		if !r.Rcpts[i].Done {
			r.Rcpts[i] = RcptResult{Done: true, Reply: rep, Cmd: cmd}
		}
	}
}

// rcptReply records the reply to recipient i's RCPT TO, and says whether it was accepted or
// tempfailed.
func (r *Result) rcptReply(i int, rep Reply) (accepted, tempfailed bool) {
	if rep.Code/100 == 2 {
		r.Rcpts[i].Reply, r.Rcpts[i].Cmd = rep, "RCPT TO"
		return true, false
	}
	r.Rcpts[i] = RcptResult{Done: true, Reply: rep, Cmd: "RCPT TO"}
	return false, rep.Code/100 == 4 && rep.Code != 452 // 452: sent again in another transaction
}

// rcptCount counts a transaction's accepted and tempfailed recipients.
type rcptCount struct{ accepted, tempfailed int }

func (n *rcptCount) add(accepted, tempfailed bool) {
	if accepted {
		n.accepted++
	}
	if tempfailed {
		n.tempfailed++
	}
}

// Send delivers a message: XFORWARD, then MAIL, RCPT and DATA pipelined when the server offers
// PIPELINING, then the message written by body (raw bytes, dot-stuffed here). The recipients a
// server refuses with 452 at RCPT ("too many recipients") are sent again in further transactions
// while each one makes progress (as Amavis::Out::SMTP does). Replies are per recipient in the
// Result; an error means the conversation broke (the connection must not be reused) and the
// recipients not Done have no answer.
func (c *Client) Send(ctx context.Context, env *Envelope, body func(w io.Writer) error) (*Result, error) {
	before := c.replies
	res, err := c.sendOnce(ctx, env, body)
	if redial := c.redial; redial != nil {
		c.redial = nil
		// A cached connection the next hop closed just before we used it (it cannot have
		// taken anything: it answered nothing): the transaction goes again on a new one.
		if err != nil && c.replies == before && connClosed(err) {
			if nc, derr := redial(ctx); derr == nil {
				c.conn.Close()
				key := c.key
				*c = *nc
				c.key = key
				res, err = c.sendOnce(ctx, env, body)
			}
		}
	}
	pending := env
	idx := make([]int, len(env.Rcpts)) // position of pending's recipients in env
	for i := range idx {
		idx[i] = i
	}
	for err == nil {
		var again []int
		delivered := false
		for _, i := range idx {
			r := res.Rcpts[i]
			if r.Cmd == "RCPT TO" && r.Reply.Code == 452 {
				again = append(again, i)
			} else if r.Reply.Class() == 2 {
				delivered = true
			}
		}
		if len(again) == 0 || !delivered {
			break
		}
		next := *pending
		next.Rcpts = nil
		for _, i := range again {
			next.Rcpts = append(next.Rcpts, env.Rcpts[i])
		}
		var sub *Result
		sub, err = c.sendOnce(ctx, &next, body)
		for j, i := range again {
			res.Rcpts[i] = sub.Rcpts[j]
		}
		pending, idx = &next, again
	}
	return res, err
}

// sendOnce runs one mail transaction.
func (c *Client) sendOnce(ctx context.Context, env *Envelope, body func(w io.Writer) error) (*Result, error) {
	res := &Result{Rcpts: make([]RcptResult, len(env.Rcpts))}
	_, pipelining := c.ext["PIPELINING"]
	_, has8bit := c.ext["8BITMIME"]
	_, hasUTF8 := c.ext["SMTPUTF8"]
	_, hasDSN := c.ext["DSN"]
	dsn := env.DSN && hasDSN
	res.DSNPassed = dsn

	if env.Body == "8BITMIME" && !has8bit {
		for i := range res.Rcpts {
			res.Rcpts[i] = RcptResult{Done: true, Cmd: "MAIL FROM",
				Reply: Reply{550, "5.6.3", "Conversion to 7BIT required but not supported"}}
		}
		return res, nil
	}
	// XFORWARD's reply only informs (a refusal does not stop the transaction, as in
	// Amavis::Out::SMTP), so with PIPELINING it goes out with MAIL FROM, as Postfix's own
	// client sends it: one round trip less per message.
	xforward := ""
	if xf, ok := c.ext["XFORWARD"]; ok && env.XForward != nil {
		xforward = xforwardLine(env.XForward, xf)
	}
	if xforward != "" && !pipelining {
		if _, err := c.cmd(ctx, xforward); err != nil {
			return res, &Error{Stage: "fwd-xforward", Err: err}
		}
		xforward = ""
	}
	var b strings.Builder
	b.WriteString("MAIL FROM:")
	b.WriteString(env.From)
	param := func(p string) {
		b.WriteByte(' ')
		b.WriteString(p)
		res.Params = append(res.Params, p)
	}
	if env.Body != "" && has8bit {
		param("BODY=" + env.Body)
	}
	if env.SMTPUTF8 && has8bit && hasUTF8 {
		param("SMTPUTF8")
	}
	if dsn && env.RET != "" {
		param("RET=" + env.RET)
	}
	if dsn && env.ENVID != "" && !strings.ContainsAny(env.ENVID, " =\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f") {
		param("ENVID=" + env.ENVID)
	}
	c.deadline(ctx)
	if xforward != "" {
		c.bw.WriteString(xforward)
		c.bw.WriteString("\r\n")
	}
	c.bw.WriteString(b.String())
	c.bw.WriteString("\r\n")
	if !pipelining {
		return c.sendStepwise(ctx, env, dsn, res, body)
	}
	for _, rc := range env.Rcpts {
		c.bw.WriteString(rcptLine(rc, dsn))
	}
	c.bw.WriteString("DATA\r\n")
	if err := c.bw.Flush(); err != nil {
		stage := "fwd-mail-pip"
		if xforward != "" {
			stage = "fwd-xforward" // the batch's first command, as amavis names the failure
		}
		return res, &Error{Stage: stage, Err: err}
	}
	if xforward != "" {
		if _, err := c.readReply(); err != nil {
			return res, &Error{Stage: "fwd-xforward", Err: err}
		}
	}
	mail, err := c.readReply()
	if err != nil {
		return res, &Error{Stage: "fwd-mail-pip", Err: err}
	}
	if mail.Code/100 != 2 {
		res.failPending(mail, "MAIL FROM")
	}
	var n rcptCount
	for i := range env.Rcpts {
		rep, err := c.readReply()
		if err != nil {
			return res, &Error{Stage: "fwd-rcpt-pip", Err: err}
		}
		if !res.Rcpts[i].Done {
			n.add(res.rcptReply(i, rep))
		}
	}
	data, err := c.readReply()
	if err != nil {
		return res, &Error{Stage: "fwd-data-chkpnt", Err: err}
	}
	switch {
	case data.Code != 354:
		res.failPending(data, "DATA")
		return res, c.Reset(ctx)
	case n.accepted == 0:
		// RFC 2920: after an accepted DATA the client sends at least the terminator.
		c.bw.WriteString(".\r\n")
		if err := c.bw.Flush(); err != nil {
			return res, &Error{Stage: "fwd-dummydata-end", Err: err}
		}
		if _, err := c.readReply(); err != nil {
			return res, &Error{Stage: "fwd-dummydata-end", Err: err}
		}
		return res, nil
	case n.tempfailed > 0 && env.AllOrNothing:
		c.Abort()
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return res, &Error{Stage: "fwd-data-chkpnt", Err: errors.New("Bail out, DATA accepted but tempfailed recips, not an LMTP input")}
	}
	return res, c.sendData(ctx, res, body)
}

// sendStepwise is Send for a server without PIPELINING: every command waits for its reply.
func (c *Client) sendStepwise(ctx context.Context, env *Envelope, dsn bool, res *Result, body func(io.Writer) error) (*Result, error) {
	if err := c.bw.Flush(); err != nil {
		return res, &Error{Stage: "fwd-mail-from", Err: err}
	}
	mail, err := c.readReply()
	if err != nil {
		return res, &Error{Stage: "fwd-mail-from", Err: err}
	}
	if mail.Code/100 != 2 {
		res.failPending(mail, "MAIL FROM")
		return res, c.Reset(ctx)
	}
	var n rcptCount
	for i, rc := range env.Rcpts {
		rep, err := c.cmd(ctx, strings.TrimSuffix(rcptLine(rc, dsn), "\r\n"))
		if err != nil {
			return res, &Error{Stage: "fwd-rcpt-to", Err: err}
		}
		n.add(res.rcptReply(i, rep))
	}
	if n.accepted == 0 || (n.tempfailed > 0 && env.AllOrNothing) {
		if n.tempfailed > 0 { // the accepted ones are not sent: they fail like the others
			res.failPending(Reply{451, "4.5.0", "Giving up due to previous temporary failures"}, "RCPT TO")
		}
		return res, c.Reset(ctx)
	}
	data, err := c.cmd(ctx, "DATA")
	if err != nil {
		return res, &Error{Stage: "fwd-data-cmd", Err: err}
	}
	if data.Code != 354 {
		res.failPending(data, "DATA")
		return res, c.Reset(ctx)
	}
	return res, c.sendData(ctx, res, body)
}

// sendData writes the message and reads the reply to the final dot: one for SMTP, one per
// accepted recipient for LMTP.
func (c *Client) sendData(ctx context.Context, res *Result, body func(io.Writer) error) error {
	c.deadline(ctx)
	dw := &dotWriter{w: c.bw}
	if err := body(&deadlineWriter{c: c, ctx: ctx, w: dw}); err != nil {
		c.Abort()
		return &Error{Stage: "fwd-data-contents", Err: err, InData: true}
	}
	if err := dw.close(); err != nil {
		c.Abort()
		return &Error{Stage: "fwd-data-end", Err: err, InData: true}
	}
	if err := c.bw.Flush(); err != nil {
		c.Abort()
		return &Error{Stage: "fwd-data-end", Err: err, InData: true}
	}
	sent := time.Now()
	var rep Reply
	var elapsed time.Duration
	first := true
	for i := range res.Rcpts {
		if res.Rcpts[i].Done {
			continue
		}
		if c.lmtp || first {
			c.deadline(ctx)
			var err error
			rep, err = c.readReply()
			elapsed = time.Since(sent)
			if err != nil && connClosed(err) {
				// No answer at all (as Amavis::Out::SMTP sees it: "No resp. to data-dot"):
				// the pending recipients are answered by the zero Reply.
				for j := i; j < len(res.Rcpts); j++ {
					if !res.Rcpts[j].Done {
						res.Rcpts[j] = RcptResult{Done: true, Cmd: "data-dot", Elapsed: elapsed}
					}
				}
				return &Error{Stage: "fwd-data-end", Err: err}
			}
			if err != nil {
				return &Error{Stage: "fwd-data-end", Err: err}
			}
			first = false
		}
		res.Rcpts[i] = RcptResult{Done: true, Reply: rep, Cmd: "data-dot", Elapsed: elapsed}
	}
	return nil
}

// deadlineWriter renews the I/O deadline as the message is written, so that the timeout
// applies to each write and not to the whole transfer.
type deadlineWriter struct {
	c   *Client
	ctx context.Context
	w   io.Writer
	n   int
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.n += len(p); d.n >= 1<<20 {
		d.n = 0
		d.c.deadline(d.ctx)
	}
	return d.w.Write(p)
}

func rcptLine(rc Recipient, dsn bool) string {
	var b strings.Builder
	b.WriteString("RCPT TO:")
	b.WriteString(Quote(rc.Addr))
	if dsn {
		if len(rc.Notify) > 0 {
			b.WriteString(" NOTIFY=")
			b.WriteString(strings.Join(rc.Notify, ","))
		}
		if rc.ORCPT != "" {
			b.WriteString(" ORCPT=")
			b.WriteString(rc.ORCPT)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// xforwardLine builds one XFORWARD command in amavis's attribute order with the attributes
// the server announced; values are neutered as Postfix does and xtext-encoded.
func xforwardLine(xf *XForward, announced string) string {
	ann := map[string]bool{}
	for _, a := range strings.Fields(announced) {
		ann[strings.ToUpper(a)] = true
	}
	var b strings.Builder
	for _, name := range [...]string{"ADDR", "NAME", "PORT", "PROTO", "HELO", "SOURCE", "IDENT"} {
		val := *xf.attr(name)
		if val == "" || !ann[name] {
			continue
		}
		if name == "ADDR" && strings.Count(val, ":") >= 2 && !strings.HasPrefix(strings.ToUpper(val), "IPV6:") {
			val = "IPv6:" + val
		}
		v := XtextEncode(neuter(val))
		if len(v) > 255 {
			v = v[:255]
		}
		if b.Len() == 0 {
			b.WriteString("XFORWARD")
		}
		b.WriteByte(' ')
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// neuter replaces what Postfix's smtpd neuters in XFORWARD values: non-printables and
// characters special in header fields.
func neuter(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || strings.ContainsRune(`<>()\";@`, r) {
			return '?'
		}
		return r
	}, s)
}
