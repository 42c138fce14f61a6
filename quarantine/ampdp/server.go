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
	"slices"
	"strconv"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/hdr"
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
	ci := connOf(conn)
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
		resp := s.handleRecovered(rctx, p, req, ci)
		cancel()
		conn.SetWriteDeadline(time.Now().Add(idle))
		if err := WriteResponse(conn, resp); err != nil {
			return fmt.Errorf("AM.PDP: writing response: %w", err)
		}
	}
}

// connInfo is the client's side and ours of an AM.PDP connection, for the Received field of
// a released message; all empty on a Unix socket.
type connInfo struct{ peerIP, localIP, localPort string }

func connOf(c net.Conn) connInfo {
	peer, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return connInfo{}
	}
	return connInfo{peer.IP.String(), local.IP.String(), strconv.Itoa(local.Port)}
}

// handle answers one request. A request it cannot carry out is answered with a failure and
// logged as amavis's In::AMPDP does, under the release's log id when it has one.
func (s *Server) handle(ctx context.Context, p *conf.Policy, req Request, ci connInfo) []string {
	var err error
	logID := ""
	switch r := strings.ToLower(req.Get("request")); r {
	case "smtpd_access_policy":
		return []string{"action=DUNNO"}
	case "release", "requeue":
		var resp []string
		resp, logID, err = s.release(ctx, p, req, r, ci)
		if err == nil {
			return resp
		}
	case "am.pdp":
		if s.Check != nil {
			return s.Check(ctx, p, req)
		}
		err = errors.New("content checks over AM.PDP are not supported")
	case "":
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		err = errors.New("Missing 'request' field")
	default:
		err = fmt.Errorf("unknown 'request' value: %s", req.Get("request"))
	}
	s.log().Error("policy_server FAILED: "+err.Error(), logAttrs(logID)...)
	return failure(err)
}

// logAttrs names the log id of a record, none when id is "".
func logAttrs(id string) []any {
	if id == "" {
		return nil
	}
	return []any{LogIDKey, id}
}

// LevelOne is the slog level of amavis's log level 1, between Debug (its 2) and Info (its 0).
const LevelOne = slog.LevelInfo - 2

// LogIDKey is the slog attribute with the log id of the release a record is about (the same
// key as package notify's).
const LogIDKey = "log_id"

// handleRecovered is handle, with a panic answered as a failure: the client retries, the
// server goes on with the next request.
func (s *Server) handleRecovered(ctx context.Context, p *conf.Policy, req Request, ci connInfo) (resp []string) {
	var err error
	func() {
		defer panics.Catch(&err)
		resp = s.handle(ctx, p, req, ci)
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
// names, each then with its ORCPT, as amavis keeps them) with Resent-* fields, through
// release_method (requeue: requeue_method). It returns the response, the release's log id
// ("rel-" and the new mail_id, as amavis's) and the error that stopped it, if any.
func (s *Server) release(ctx context.Context, p *conf.Policy, req Request, kind string, ci connInfo) ([]string, string, error) {
	newID := ""
	if id := req.Get("mail_id"); req.Has("mail_id") && mailid.Valid(id) {
		var err error
		if newID, _, err = mailid.New(mailid.DefaultBits); err != nil {
			return nil, "", err
		}
	}
	logID := ""
	if newID != "" {
		logID = "rel-" + newID
	}
	st, err := s.open(ctx, p, req)
	var nh *notHere
	if errors.As(err, &nh) {
		// a local: quarantine of another node (msgs.host): that node releases it
		if resp, ok := s.forward(ctx, req, req.Get("mail_id")); ok {
			return resp, logID, nil
		}
	}
	if err != nil {
		return nil, logID, err
	}
	defer st.Close()
	parent := req.Get("mail_id")
	sender := st.Sender
	if req.Has("sender") {
		sender = strings.Trim(req.Get("sender"), "<>")
	}
	rcpts := st.Blocked
	over := req.All("recipient")
	if len(over) > 0 {
		rcpts = nil
		for _, r := range over {
			rcpts = append(rcpts, strings.Trim(r, "<>"))
		}
	}
	via := p.Release()
	if kind == "requeue" {
		via = p.Requeue()
	}
	// amavis names the stored recipients, the blocked ones and those left out
	var excluded []string
	for _, r := range st.Recipients {
		if !slices.Contains(st.Blocked, r) {
			excluded = append(excluded, r)
		}
	}
	line := fmt.Sprintf("Quarantined message %s (miscategorized): %s %s -> %s", kind, parent,
		delivery.Bracket(st.Sender), bracketAll(st.Blocked))
	if len(excluded) > 0 {
		line += ", (excluded: " + bracketAll(excluded) + " )"
	}
	s.log().Info(line, LogIDKey, logID)
	if len(rcpts) == 0 {
		return []string{Encode("setreply", "250", "2.5.0", "No recipients, nothing to do")}, logID, nil
	}
	head := s.resentFields(p, req, parent, newID, rcpts, ci)
	msg := io.MultiReader(strings.NewReader(head), st.Body)
	sctx := ctx
	if len(over) > 0 {
		sctx = delivery.WithOptions(ctx, delivery.Options{ORCPT: true})
	}
	res, err := s.Sender.Send(sctx, via, sender, rcpts, msg)
	var out []string
	for i, r := range rcpts {
		if err != nil {
			out = append(out, Encode("setreply", "450", "4.5.0", "ERROR: "+err.Error()))
			continue
		}
		out = append(out, setreply(res[i].Reply))
		// amavis logs this at level 1, a failure at -1
		level := LevelOne
		if res[i].Reply.Class() != 2 {
			level = slog.LevelWarn
		}
		s.log().Log(ctx, level, fmt.Sprintf("%s(%s) SEND from %s -> %s, %s", newID, parent, delivery.Bracket(sender), delivery.Bracket(r), res[i].Reply), LogIDKey, logID)
	}
	if err != nil {
		s.log().Info("WARN: dispatch_from_quarantine failed: "+err.Error(), LogIDKey, logID)
	}
	return out, logID, nil
}

// open checks the request and opens the quarantine file it names.
func (s *Server) open(ctx context.Context, p *conf.Policy, req Request) (*quarantine.Stored, error) {
	if !req.Has("mail_id") {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, errors.New("Missing 'mail_id' field")
	}
	id := req.Get("mail_id")
	if !mailid.Valid(id) {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, fmt.Errorf("Invalid mail_id '%s'", id)
	}
	if sec := req.Get("secret_id"); sec == "" {
		if p.AuthRequiredRelease {
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return nil, errors.New("Secret_id is required, but missing")
		}
	} else if !mailid.Check(id, sec) {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, fmt.Errorf("Secret_id %s does not match mail_id %s", sec, id)
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
			return nil, err
		}
	}
	switch qt {
	case "Q":
	case "", "F", "Z":
		path, err := s.Store.Find(id, req.Get("mail_file"), qt == "Z")
		if err != nil {
			return nil, &notHere{err}
		}
		if st, err = quarantine.Open(path); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("quar_type %s is not supported, only F, Z (files under $QUARANTINEDIR) and Q (sql:)", qt)
	}
	if st.QuarantineID != id {
		st.Close()
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, fmt.Errorf("Stored quarantine ID '%s' does not match requested ID '%s'", st.QuarantineID, id)
	}
	return st, nil
}

// resentFields are the fields put above the stored message: the Resent-* block of the
// release (RFC 5322 section 3.6.6) and the Received field, as amavis's msg_from_quarantine and
// make_received_header_field write them, folded as its hdr folds them.
func (s *Server) resentFields(p *conf.Policy, req Request, parent, newID string, rcpts []string, ci connInfo) string {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	addrs := s.Config.NotifyAddrs(p)
	var b strings.Builder
	field := func(name, value string) { b.WriteString(quarantine.FoldField(name+": "+value) + "\n") }
	if by := req.Get("requested_by"); by != "" {
		field("Resent-From", delivery.Bracket(strings.Trim(by, "<>")))
		field("Resent-Sender", addrs.HdrfromRecip)
	} else {
		field("Resent-From", addrs.HdrfromRecip)
	}
	to := "undisclosed-recipients:;"
	if len(rcpts) == 1 {
		to = delivery.Bracket(rcpts[0])
	}
	field("Resent-To", to)
	date := RFC2822Date(now)
	field("Resent-Date", date)
	field("Resent-Message-ID", "<"+parent+"-"+newID+"@"+s.Config.Myhostname+">")
	helo := s.Config.LocalhostName
	if helo == "" {
		helo = "localhost"
	}
	// the client of an AM.PDP request names itself nowhere: "unknown"
	from := " from unknown"
	by := " by " + helo
	if ci.peerIP != "" {
		from += " ([" + ci.peerIP + "])"
		by += " (" + s.Config.Myhostname + " [" + ci.localIP + "]) (amavis, port " + ci.localPort + ")"
	} else {
		by += " (amavis, unix socket)"
	}
	chunks := []string{by, " id " + newID}
	if len(rcpts) == 1 {
		chunks = append(chunks, " for "+delivery.Bracket(rcpts[0])+";")
	} else {
		chunks[len(chunks)-1] += ";"
	}
	chunks = append(chunks, " "+date)
	b.Write(hdr.Fold(nil, "Received:"+from, chunks, hdr.Style{Width: 78, EOL: "\n"}))
	b.WriteString("\n")
	return b.String()
}

// RFC2822Date is the date form of amavis's fields (rfc2822_timestamp), the day padded with
// a space: "Fri,  4 Dec 2026 09:44:18 +0000 (UTC)".
func RFC2822Date(t time.Time) string {
	return t.Format("Mon, _2 Jan 2006 15:04:05 -0700 (MST)")
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
