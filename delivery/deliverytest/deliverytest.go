// Package deliverytest runs a go-smtp recording next hop for tests: it accepts mail, records
// envelope and bytes, and answers as told.
package deliverytest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"amavisgo/conf"
)

// Message is one recorded transaction.
type Message struct {
	From  string
	Rcpts []string
	Data  []byte // as received, CRLF line endings
}

// Server is a recording SMTP next hop on 127.0.0.1.
type Server struct {
	Method conf.Method // smtp:[127.0.0.1]:<port>

	mu       sync.Mutex
	msgs     []Message
	arrived  chan struct{}
	rejectRc map[string]*smtp.SMTPError
	queueID  int
}

// Start listens on a free loopback port; the server stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{arrived: make(chan struct{}, 100), rejectRc: map[string]*smtp.SMTPError{}}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	s.Method = conf.Method{Proto: "smtp", Host: "127.0.0.1", Port: port}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "sink.test"
	srv.ErrorLog = nopLog{}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// RejectRcpt makes RCPT TO:<addr> fail with code and text, e.g. 550, "5.1.1 unknown user".
func (s *Server) RejectRcpt(addr string, code int, enh smtp.EnhancedCode, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectRc[strings.ToLower(addr)] = &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: text}
}

// Messages returns what arrived so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns the n-th message (0-based) once it has arrived, failing the test after 10 s.
func (s *Server) Wait(t testing.TB, n int) Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if m := s.Messages(); len(m) > n {
			return m[n]
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("message %d did not arrive at the next hop", n)
		}
	}
}

type session struct {
	s     *Server
	from  string
	rcpts []string
}

func (x *session) Reset()        { x.from, x.rcpts = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if e := x.s.rejectRc[strings.ToLower(to)]; e != nil {
		return e
	}
	x.rcpts = append(x.rcpts, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, Message{From: x.from, Rcpts: x.rcpts, Data: b.Bytes()})
	x.s.queueID++
	id := x.s.queueID
	x.s.mu.Unlock()
	x.s.arrived <- struct{}{}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("Ok: queued as SINKQ%04d", id)}
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}
