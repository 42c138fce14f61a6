// Package smtptest provides a recording, fault-injecting next hop for tests, built on
// github.com/emersion/go-smtp so that our protocol code is checked against an SMTP/LMTP
// implementation we did not write. go-smtp knows no XFORWARD; a thin wrapper around each
// connection announces it in the EHLO reply, answers and records XFORWARD commands, and keeps
// a copy of every line the client sent.
package smtptest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Options shape a next hop.
type Options struct {
	LMTP       bool
	DSN        bool // announce DSN
	NoXForward bool // do not announce XFORWARD
	// MailCode fails MAIL FROM with this code (451, 550...).
	MailCode int
	// RcptCode fails RCPT TO for an address (without brackets) with this code (450, 550...).
	RcptCode map[string]int
	// DropAfterData closes the connection once the whole message was read, without a reply
	// to the final dot (a next hop that crashed or timed out at the worst moment).
	DropAfterData bool
	// HoldReply, when not nil, holds the reply to the final dot until it is closed: the next
	// hop has the whole message but has not taken it yet.
	HoldReply chan struct{}
	// DataCode fails the final dot with this code (SMTP), or, with LMTP, DataCodeFor fails it
	// per recipient.
	DataCode    int
	DataCodeFor map[string]int
	// MaxRecipients makes go-smtp refuse recipients beyond this many per transaction with
	// "452 4.5.3 Maximum limit of N recipients reached".
	MaxRecipients int
	// KeepData keeps up to this many bytes of each message (default 1 MiB); the size and the
	// SHA-256 of the whole message are always recorded.
	KeepData int
}

// Msg is one message the next hop accepted (or was given before it failed it).
type Msg struct {
	From     string
	Mail     gosmtp.MailOptions
	Rcpts    []string
	RcptOpts []gosmtp.RcptOptions
	Size     int64
	SHA256   [32]byte
	BodySHA  [32]byte // SHA-256 of the body: what follows the first empty line
	Data     []byte   // the first KeepData bytes
	XForward string   // the XFORWARD line in effect for this transaction ("" for none)
}

// NextHop is a running next hop.
type NextHop struct {
	Addr string
	opts Options
	srv  *gosmtp.Server
	ln   net.Listener

	mu      sync.Mutex
	msgs    []Msg
	lines   []string // every line clients sent, in order, across connections
	lineCap int
	conns   int
	queue   int
	held    int
	open    map[*shimConn]bool
}

// Start runs a next hop on a free loopback port until the test ends.
func Start(t testing.TB, o Options) *NextHop {
	t.Helper()
	if o.KeepData == 0 {
		o.KeepData = 1 << 20
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &NextHop{Addr: ln.Addr().String(), opts: o, lineCap: 1 << 20, open: map[*shimConn]bool{}}
	h.srv = gosmtp.NewServer(backend{h})
	h.srv.Domain = "nexthop.test"
	h.srv.LMTP = o.LMTP
	h.srv.EnableDSN = o.DSN
	h.srv.EnableSMTPUTF8 = true
	h.srv.MaxRecipients = o.MaxRecipients
	h.srv.MaxLineLength = 0 // no limit: long lines must arrive intact
	h.srv.ErrorLog = nopLogger{}
	h.ln = ln
	go h.srv.Serve(&shimListener{Listener: ln, h: h})
	t.Cleanup(func() { h.srv.Close() })
	return h
}

// Port is the next hop's TCP port.
func (h *NextHop) Port() string { _, p, _ := net.SplitHostPort(h.Addr); return p }

// Stop closes the next hop: later connections are refused.
func (h *NextHop) Stop() { h.srv.Close() }

// DropConns closes every open connection (as a restarted or timed-out server would) while
// the next hop keeps listening.
func (h *NextHop) DropConns() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.open {
		c.Conn.Close()
	}
}

// Msgs returns the messages received so far.
func (h *NextHop) Msgs() []Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Msg(nil), h.msgs...)
}

// Lines returns every line clients sent (without CRLF), across all connections.
func (h *NextHop) Lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.lines...)
}

// Conns is the number of connections accepted.
func (h *NextHop) Conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.conns
}

func (h *NextHop) record(line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lineCap <= 0 {
		return
	}
	s := strings.TrimSuffix(string(line), "\r\n")
	h.lineCap -= len(s)
	h.lines = append(h.lines, s)
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

type backend struct{ h *NextHop }

func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	sc, _ := c.Conn().(*shimConn)
	return &session{h: b.h, shim: sc}, nil
}

type session struct {
	h    *NextHop
	shim *shimConn
	msg  Msg
}

func (s *session) Reset()        { s.msg = Msg{} }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, opts *gosmtp.MailOptions) error {
	if code := s.h.opts.MailCode; code != 0 {
		return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{code / 100, 1, 0},
			Message: fmt.Sprintf("<%s>: Sender address rejected: test", from)}
	}
	s.msg = Msg{From: from}
	if opts != nil {
		s.msg.Mail = *opts
	}
	if s.shim != nil {
		s.msg.XForward = s.shim.xforward
	}
	return nil
}

func (s *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	if code := s.h.opts.RcptCode[to]; code != 0 {
		return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{code / 100, 1, 1},
			Message: fmt.Sprintf("<%s>: Recipient address rejected: test", to)}
	}
	s.msg.Rcpts = append(s.msg.Rcpts, to)
	if opts != nil {
		s.msg.RcptOpts = append(s.msg.RcptOpts, *opts)
	} else {
		s.msg.RcptOpts = append(s.msg.RcptOpts, gosmtp.RcptOptions{})
	}
	return nil
}

func (s *session) read(r io.Reader) error {
	hash := sha256.New()
	body := &bodyHash{h: sha256.New()}
	keep := &limitedBuffer{max: s.h.opts.KeepData}
	n, err := io.Copy(io.MultiWriter(hash, body, keep), r)
	s.msg.Size = n
	copy(s.msg.SHA256[:], hash.Sum(nil))
	copy(s.msg.BodySHA[:], body.h.Sum(nil))
	s.msg.Data = keep.Bytes()
	if err == nil && s.h.opts.DropAfterData && s.shim != nil {
		s.shim.Conn.Close()
		return errDropped
	}
	if err == nil && s.h.opts.HoldReply != nil {
		s.h.mu.Lock()
		s.h.held++
		s.h.mu.Unlock()
		<-s.h.opts.HoldReply
	}
	return err
}

// Held is the number of messages whose reply HoldReply holds (or held) back.
func (h *NextHop) Held() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

var errDropped = errors.New("smtptest: connection dropped after DATA")

func (s *session) queued() *gosmtp.SMTPError {
	s.h.mu.Lock()
	s.h.queue++
	q := s.h.queue
	s.h.msgs = append(s.h.msgs, s.msg)
	s.h.mu.Unlock()
	return &gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0},
		Message: fmt.Sprintf("Ok: queued as SINKQ%04d", q)}
}

func (s *session) Data(r io.Reader) error {
	if err := s.read(r); err != nil {
		return err
	}
	if code := s.h.opts.DataCode; code != 0 {
		return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{code / 100, 3, 0},
			Message: "Error: test failure after DATA"}
	}
	return s.queued()
}

// LMTPData answers per recipient.
func (s *session) LMTPData(r io.Reader, st gosmtp.StatusCollector) error {
	if err := s.read(r); err != nil {
		return err
	}
	var ok []string
	for _, rc := range s.msg.Rcpts {
		if code := s.h.opts.DataCodeFor[rc]; code != 0 {
			st.SetStatus(rc, &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{code / 100, 1, 1},
				Message: fmt.Sprintf("<%s>: mailbox unavailable: test", rc)})
			continue
		}
		ok = append(ok, rc)
	}
	if len(ok) > 0 {
		m := s.msg
		m.Rcpts = ok
		s.msg = m
		q := s.queued()
		for _, rc := range ok {
			st.SetStatus(rc, q)
		}
	}
	return nil
}

// bodyHash hashes what follows the first CRLF CRLF.
type bodyHash struct {
	h      hash.Hash
	last   []byte
	inBody bool
}

func (b *bodyHash) Write(p []byte) (int, error) {
	if b.inBody {
		return b.h.Write(p)
	}
	sep := []byte("\r\n\r\n")
	head := p
	if len(head) > 3 {
		head = head[:3]
	}
	edge := append(append([]byte(nil), b.last...), head...)
	if i := bytes.Index(edge, sep); i >= 0 {
		b.inBody = true
		b.h.Write(p[i+4-len(b.last):])
		return len(p), nil
	}
	if i := bytes.Index(p, sep); i >= 0 {
		b.inBody = true
		b.h.Write(p[i+4:])
		return len(p), nil
	}
	tail := append(b.last, p...)
	if len(tail) > 3 {
		tail = tail[len(tail)-3:]
	}
	b.last = append([]byte(nil), tail...)
	return len(p), nil
}

type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		b.Buffer.Write(p[:room])
	}
	return len(p), nil
}

type shimListener struct {
	net.Listener
	h *NextHop
}

func (l *shimListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	sc := &shimConn{Conn: c, h: l.h}
	l.h.mu.Lock()
	l.h.conns++
	l.h.open[sc] = true
	l.h.mu.Unlock()
	return sc, nil
}

// shimConn sits between the client and go-smtp: it records the client's lines, handles
// XFORWARD itself and adds XFORWARD to the EHLO reply.
type shimConn struct {
	net.Conn
	h        *NextHop
	buf      []byte
	raw      []byte // client bytes not yet split into lines
	ready    []byte // lines for go-smtp
	inData   bool
	xforward string
	mu       sync.Mutex
}

func (c *shimConn) Read(p []byte) (int, error) {
	for len(c.ready) == 0 {
		if c.buf == nil {
			c.buf = make([]byte, 32<<10)
		}
		n, err := c.Conn.Read(c.buf)
		c.raw = append(c.raw, c.buf[:n]...)
		c.lines()
		if len(c.ready) > 0 {
			break
		}
		if err != nil {
			if len(c.raw) > 0 { // a partial line at the end: pass it on
				c.ready, c.raw = c.raw, nil
				break
			}
			return 0, err
		}
	}
	n := copy(p, c.ready)
	c.ready = c.ready[n:]
	return n, nil
}

// lines moves complete lines from raw to ready, taking out XFORWARD commands.
func (c *shimConn) lines() {
	for {
		i := bytes.IndexByte(c.raw, '\n')
		if i < 0 {
			return
		}
		line := c.raw[:i+1]
		c.raw = c.raw[i+1:]
		c.h.record(line)
		c.mu.Lock()
		inData := c.inData
		if inData && string(line) == ".\r\n" {
			c.inData = false
		}
		c.mu.Unlock()
		if !inData && !c.h.opts.NoXForward && len(line) >= 8 && strings.EqualFold(string(line[:8]), "XFORWARD") {
			c.xforward = strings.TrimSuffix(string(line), "\r\n")
			c.Conn.Write([]byte("250 2.0.0 Ok\r\n"))
			continue
		}
		c.ready = append(c.ready, line...)
	}
}

func (c *shimConn) Close() error {
	c.h.mu.Lock()
	delete(c.h.open, c)
	c.h.mu.Unlock()
	return c.Conn.Close()
}

func (c *shimConn) Write(p []byte) (int, error) {
	s := string(p)
	if strings.HasPrefix(s, "354 ") {
		c.mu.Lock()
		c.inData = true
		c.mu.Unlock()
	}
	if strings.HasPrefix(s, "250 ") || strings.HasPrefix(s, "250-") {
		// A finished transaction (or RSET) forgets XFORWARD, as Postfix's smtpd does.
		if strings.Contains(s, "queued") || strings.Contains(s, "Session reset") {
			c.xforward = ""
		}
	}
	if !c.h.opts.NoXForward && strings.HasPrefix(s, "250-") && strings.Contains(s, "PIPELINING") {
		if i := strings.Index(s, "\r\n"); i >= 0 {
			s = s[:i+2] + "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n" + s[i+2:]
			_, err := c.Conn.Write([]byte(s))
			return len(p), err
		}
	}
	return c.Conn.Write(p)
}

// Refused returns the address of a next hop that refuses connections: a port bound but not
// listening, held until the test ends, so that no other process can take it meanwhile (as
// it could a port found free and closed again).
func Refused(t testing.TB) string {
	t.Helper()
	_, addr := boundSocket(t)
	return addr
}

// Blackhole returns the address of a next hop that never completes a connection: a listening
// socket with a full accept queue, so that the kernel drops further SYNs and a connect waits
// until its timeout, as with a firewall that drops packets.
func Blackhole(t testing.TB) string {
	t.Helper()
	fd, addr := boundSocket(t)
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	// Fill the accept queue (backlog 0 holds one connection) until a connect hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		if i == 16 {
			t.Fatalf("smtptest: the accept queue of %s does not fill", addr)
		}
	}
	return addr
}

// boundSocket is a TCP socket bound to a free loopback port, closed when the test ends.
func boundSocket(t testing.TB) (fd int, addr string) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
