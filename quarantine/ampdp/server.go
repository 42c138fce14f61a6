package ampdp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/internal/panics"
	"amavisgo/mailid"
	"amavisgo/quarantine"
	"amavisgo/smtp"
)

// Exit codes of AM.PDP responses (sysexits.h, as amavis).
const (
	exTempfail = 75
)

// Server answers AM.PDP connections. One Server serves every AM.PDP listener; the policy bank
// of the listener comes with each connection.
type Server struct {
	Config *conf.Config
	Store  *quarantine.Store
	Sender delivery.Sender
	Log    *slog.Logger // nil: slog.Default()
	// Check answers a request=AM.PDP (a milter's content check). Nil: such requests get a
	// 450 Failure response; release and requeue work without it.
	Check func(ctx context.Context, p *conf.Policy, req Request) []string
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// ServeConn serves requests on conn until the client closes it, ctx ends or the client is
// idle longer than smtpd_timeout. p is the policy after the listener's bank was loaded (its
// auth_required_release decides whether a secret_id is required). conn is closed on return.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn, p *conf.Policy) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	idle := time.Duration(s.Config.SmtpdTimeout) * time.Second
	work := time.Duration(s.Config.ChildTimeout) * time.Second
	br := bufio.NewReaderSize(conn, 16<<10)
	for {
		conn.SetReadDeadline(time.Now().Add(idle))
		req, bad, err := ReadRequest(br)
		for _, l := range bad {
			s.log().Warn("policy protocol: INVALID AM.PDP ATTRIBUTE LINE: " + l)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("AM.PDP: reading request: %w", err)
		}
		rctx, cancel := context.WithTimeout(ctx, work)
		resp := s.handleRecovered(rctx, p, req)
		cancel()
		conn.SetWriteDeadline(time.Now().Add(idle))
		if err := WriteResponse(conn, resp); err != nil {
			return fmt.Errorf("AM.PDP: writing response: %w", err)
		}
	}
}

// handle answers one request.
func (s *Server) handle(ctx context.Context, p *conf.Policy, req Request) []string {
	switch r := strings.ToLower(req.Get("request")); r {
	case "smtpd_access_policy":
		return []string{"action=DUNNO"}
	case "release", "requeue":
		return s.release(ctx, p, req, r)
	case "am.pdp":
		if s.Check != nil {
			return s.Check(ctx, p, req)
		}
	}
	return failure(fmt.Errorf("request %q is not supported", req.Get("request")))
}

// handleRecovered is handle, with a panic answered as a failure: the client retries, the
// server goes on with the next request.
func (s *Server) handleRecovered(ctx context.Context, p *conf.Policy, req Request) (resp []string) {
	var err error
	func() {
		defer panics.Catch(&err)
		resp = s.handle(ctx, p, req)
	}()
	if err == nil {
		return resp
	}
	s.log().Error("AM.PDP: TROUBLE in " + req.Get("request") + ": " + err.Error())
	var pe *panics.Error
	if errors.As(err, &pe) {
		for _, f := range pe.Frames() {
			s.log().Info("panic stack: " + f)
		}
	}
	return failure(err)
}

// failure is amavis's answer to a request it could not carry out: the client should retry.
func failure(err error) []string {
	return []string{
		Encode("setreply", "450", "4.5.0", "Failure: "+err.Error()),
		Encode("return_value", "tempfail"),
		Encode("exit_code", fmt.Sprint(exTempfail)),
	}
}

// release re-sends a quarantined message to its blocked recipients (or those the request
// names) with Resent-* fields, through release_method (requeue: requeue_method).
func (s *Server) release(ctx context.Context, p *conf.Policy, req Request, kind string) []string {
	st, newID, err := s.open(ctx, p, req)
	var nh *notHere
	if errors.As(err, &nh) {
		if resp, ok := s.forward(ctx, req, req.Get("mail_id")); ok {
			return resp
		}
	}
	if err != nil {
		s.log().Warn("release refused", "request", kind, "mail_id", req.Get("mail_id"), "error", err)
		return failure(err)
	}
	defer st.Close()
	parent := req.Get("mail_id")
	sender := st.Sender
	if req.Has("sender") {
		sender = strings.Trim(req.Get("sender"), "<>")
	}
	rcpts := st.Blocked
	if over := req.All("recipient"); len(over) > 0 {
		rcpts = nil
		for _, r := range over {
			rcpts = append(rcpts, strings.Trim(r, "<>"))
		}
	}
	via := p.Release()
	if kind == "requeue" {
		via = p.Requeue()
	}
	s.log().Info(fmt.Sprintf("Quarantined message %s (miscategorized): %s %s -> %s", kind, parent,
		delivery.Bracket(sender), bracketAll(rcpts)), "file", st.Path, "mail_id", newID)
	if len(rcpts) == 0 {
		return []string{Encode("setreply", "250", "2.5.0", "No recipients, nothing to do")}
	}
	head := s.resentFields(p, req, parent, newID, rcpts)
	msg := io.MultiReader(strings.NewReader(head), st.Body)
	res, err := s.Sender.Send(ctx, via, sender, rcpts, msg)
	var out []string
	for i, r := range rcpts {
		if err != nil {
			out = append(out, Encode("setreply", "450", "4.5.0", "ERROR: "+err.Error()))
			continue
		}
		out = append(out, setreply(res[i].Reply))
		s.log().Info(fmt.Sprintf("%s(%s) SEND from %s -> %s, %s", newID, parent, delivery.Bracket(sender), delivery.Bracket(r), res[i].Reply))
	}
	return out
}

// open checks the request and opens the quarantine file it names.
func (s *Server) open(ctx context.Context, p *conf.Policy, req Request) (*quarantine.Stored, string, error) {
	if !req.Has("mail_id") {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, "", errors.New("Missing 'mail_id' field")
	}
	id := req.Get("mail_id")
	if !mailid.Valid(id) {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, "", fmt.Errorf("Invalid mail_id '%s'", id)
	}
	if sec := req.Get("secret_id"); sec == "" {
		if p.AuthRequiredRelease {
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return nil, "", errors.New("Secret_id is required, but missing")
		}
	} else if !mailid.Check(id, sec) {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, "", fmt.Errorf("Secret_id %s does not match mail_id %s", sec, id)
	}
	var st *quarantine.Stored
	qt := quarType(p, req)
	if qt == "Q" {
		var err error
		st, err = s.openSQL(ctx, id)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist) && req.Get("quar_type") == "":
			// Q was only inferred from an sql: method; the message may be in a local: one
			qt = ""
		default:
			return nil, "", err
		}
	}
	switch qt {
	case "Q":
	case "", "F", "Z":
		path, err := s.Store.Find(id, req.Get("mail_file"), qt == "Z")
		if err != nil {
			return nil, "", &notHere{err}
		}
		if st, err = quarantine.Open(path); err != nil {
			return nil, "", err
		}
	default:
		return nil, "", fmt.Errorf("quar_type %s is not supported, only F, Z (files under $QUARANTINEDIR) and Q (sql:)", qt)
	}
	if st.QuarantineID != id {
		st.Close()
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, "", fmt.Errorf("Stored quarantine ID '%s' does not match requested ID '%s'", st.QuarantineID, id)
	}
	newID, _, err := mailid.New(mailid.DefaultBits)
	if err != nil {
		st.Close()
		return nil, "", err
	}
	return st, newID, nil
}

// resentFields are the fields put above the stored message: the Resent-* block of the
// release (RFC 5322 §3.6.6) and our new Received line.
func (s *Server) resentFields(p *conf.Policy, req Request, parent, newID string, rcpts []string) string {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	addrs := s.Config.NotifyAddrs(p)
	var b strings.Builder
	if by := req.Get("requested_by"); by != "" {
		b.WriteString("Resent-From: " + delivery.Bracket(strings.Trim(by, "<>")) + "\n")
		b.WriteString("Resent-Sender: " + addrs.HdrfromRecip + "\n")
	} else {
		b.WriteString("Resent-From: " + addrs.HdrfromRecip + "\n")
	}
	to := "undisclosed-recipients:;"
	if len(rcpts) == 1 {
		to = delivery.Bracket(rcpts[0])
	}
	b.WriteString("Resent-To: " + to + "\n")
	date := RFC2822Date(now)
	b.WriteString("Resent-Date: " + date + "\n")
	b.WriteString("Resent-Message-ID: <" + parent + "-" + newID + "@" + s.Config.Myhostname + ">\n")
	b.WriteString("Received: from " + s.Config.LocalhostName + "\n by " + s.Config.Myhostname +
		" (amavis, quarantine release) with AM.PDP\n id " + newID)
	if len(rcpts) == 1 {
		b.WriteString(" for " + delivery.Bracket(rcpts[0]))
	}
	b.WriteString("; " + date + "\n")
	return b.String()
}

// RFC2822Date is the date form of amavis's fields: "Sun, 22 Nov 2026 09:44:18 +0000 (UTC)".
func RFC2822Date(t time.Time) string {
	return t.Format("Mon, 02 Jan 2006 15:04:05 -0700 (MST)")
}

// setreply gives a reply's status, enhanced status and text each a field of the response
// line, as amavis does; a reply without an enhanced status gets class.0.0.
func setreply(rep smtp.Reply) string {
	if rep.Code < 100 || rep.Code > 599 {
		return Encode("setreply", "450", "4.5.0", "Unexpected: "+rep.String())
	}
	enh := rep.Enh
	if enh == "" {
		enh = strconv.Itoa(rep.Class()) + ".0.0"
	}
	return Encode("setreply", strconv.Itoa(rep.Code), enh, rep.Text)
}

func bracketAll(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = delivery.Bracket(a)
	}
	return strings.Join(q, ",")
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}
