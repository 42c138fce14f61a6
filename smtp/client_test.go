package smtp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"amavisgo/smtp"
	"amavisgo/smtp/smtptest"
)

func body(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func replies(res *smtp.Result) []string {
	var out []string
	for _, r := range res.Rcpts {
		out = append(out, r.Cmd+": "+r.Reply.String())
	}
	return out
}

// LMTP next hop: per-recipient answers to the final dot.
func TestClientLMTPPerRecipient(t *testing.T) {
	h := smtptest.Start(t, smtptest.Options{LMTP: true, DataCodeFor: map[string]int{"b@x.example": 552}})
	c, err := smtp.Dial(context.Background(), "tcp", h.Addr, true, "localhost", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	env := &smtp.Envelope{From: "<s@x.example>", Rcpts: []smtp.Recipient{{Addr: "a@x.example"}, {Addr: "b@x.example"}}}
	res, err := c.Send(context.Background(), env, body("Subject: t\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(replies(res), "\n")
	want := "data-dot: 250 2.0.0 <a@x.example> Ok: queued as SINKQ0001\n" +
		"data-dot: 552 5.1.1 <b@x.example> <b@x.example>: mailbox unavailable: test"
	if got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
}

// A server without 8BITMIME cannot take an 8-bit message: 550 5.6.3 for every recipient,
// nothing sent; without DSN the DSN parameters are left out.
func TestClientNo8BitMIME(t *testing.T) {
	srv := scripted(t, "220 old ESMTP", map[string]string{"EHLO": "250-old\r\n250 PIPELINING"})
	c, err := smtp.Dial(context.Background(), "tcp", srv.addr, false, "localhost", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	env := &smtp.Envelope{From: "<s@x>", Body: "8BITMIME", Rcpts: []smtp.Recipient{{Addr: "a@x"}}}
	res, err := c.Send(context.Background(), env, body("x\r\n"))
	if err != nil || res.Rcpts[0].Reply.String() != "550 5.6.3 Conversion to 7BIT required but not supported" {
		t.Errorf("%v %+v", err, res)
	}
}

// Without PIPELINING every command waits for its reply; a tempfailed recipient with
// AllOrNothing ends the transaction with RSET before DATA.
func TestClientStepwise(t *testing.T) {
	srv := scripted(t, "220 old ESMTP", map[string]string{
		"EHLO": "250-old\r\n250 8BITMIME", "MAIL": "250 ok", "RCPT TO:<a@x>": "250 ok",
		"RCPT TO:<b@x>": "450 4.2.0 busy", "RSET": "250 reset", "DATA": "354 go", ".": "250 2.0.0 queued as Q1",
	})
	c, err := smtp.Dial(context.Background(), "tcp", srv.addr, false, "localhost", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	env := &smtp.Envelope{From: "<s@x>", Rcpts: []smtp.Recipient{{Addr: "a@x"}, {Addr: "b@x"}}, AllOrNothing: true}
	res, err := c.Send(context.Background(), env, body("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(replies(res), "|"); got != "RCPT TO: 451 4.5.0 Giving up due to previous temporary failures|RCPT TO: 450 4.2.0 busy" {
		t.Errorf("all or nothing: %q", got)
	}
	env.AllOrNothing = false
	res, err = c.Send(context.Background(), env, body("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(replies(res), "|"); got != "data-dot: 250 2.0.0 queued as Q1|RCPT TO: 450 4.2.0 busy" {
		t.Errorf("per recipient: %q", got)
	}
	want := []string{"EHLO localhost", "MAIL FROM:<s@x>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "RSET",
		"MAIL FROM:<s@x>", "RCPT TO:<a@x>", "RCPT TO:<b@x>", "DATA", "x", "."}
	if got := srv.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server got\n %q\nwant\n %q", got, want)
	}
}

// The client quotes each recipient's address itself (AddrSMTP, the form it arrived in, is not
// sent) and passes its NOTIFY and ORCPT on when the server offers DSN.
func TestClientRcptQuotedWithDSN(t *testing.T) {
	srv := scripted(t, "220 dsn ESMTP", map[string]string{
		"EHLO": "250-dsn\r\n250 DSN", "MAIL": "250 ok", "RCPT": "250 ok", "DATA": "354 go", ".": "250 2.0.0 queued as Q1",
	})
	c, err := smtp.Dial(context.Background(), "tcp", srv.addr, false, "localhost", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	env := &smtp.Envelope{From: "<s@x>", DSN: true, Rcpts: []smtp.Recipient{
		{Addr: "john doe@x", AddrSMTP: "<john doe@x>", Notify: []string{"FAILURE", "DELAY"}, ORCPT: "rfc822;john+20doe@x"},
		{Addr: "a@x", AddrSMTP: `<"a"@x>`},
	}}
	if res, err := c.Send(context.Background(), env, body("x\r\n")); err != nil || res.Rcpts[0].Reply.Code != 250 {
		t.Fatal(err, res)
	}
	want := []string{"EHLO localhost", "MAIL FROM:<s@x>", `RCPT TO:<"john doe"@x> NOTIFY=FAILURE,DELAY ORCPT=rfc822;john+20doe@x`,
		"RCPT TO:<a@x>", "DATA", "x", "."}
	if got := srv.lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server got\n %q\nwant\n %q", got, want)
	}
}

// A cached connection that died is replaced without the caller noticing.
func TestPoolReconnects(t *testing.T) {
	h := smtptest.Start(t, smtptest.Options{})
	p := smtp.NewPool(time.Minute)
	defer p.Close()
	env := &smtp.Envelope{From: "<s@x>", Rcpts: []smtp.Recipient{{Addr: "a@x"}}}
	for i := 0; i < 3; i++ {
		c, err := p.Get(context.Background(), "tcp", h.Addr, false, "localhost", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Send(context.Background(), env, body("x\r\n"))
		if err != nil || res.Rcpts[0].Reply.Code != 250 {
			t.Fatalf("message %d: %v %+v", i, err, res)
		}
		p.Put(c)
		if i == 1 {
			h.DropConns()
		}
	}
	if n := h.Conns(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// scriptedServer answers each command by its longest matching prefix in a script (an empty
// answer: none at all); a hand-written fake for replies go-smtp cannot give (no PIPELINING, no 8BITMIME).
type scriptedServer struct {
	addr string
	got  chan string
}

func scripted(t *testing.T, greeting string, script map[string]string) *scriptedServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &scriptedServer{addr: ln.Addr().String(), got: make(chan string, 100)}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		io.WriteString(c, greeting+"\r\n")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\r\n")
			s.got <- line
			if inData && line != "." {
				continue
			}
			inData = false
			best := ""
			for k := range script {
				if strings.HasPrefix(line, k) && len(k) > len(best) {
					best = k
				}
			}
			rep, ok := script[best]
			switch {
			case !ok:
				rep = "500 unknown"
			case rep == "": // silence: a server that hangs
				continue
			}
			io.WriteString(c, rep+"\r\n")
			inData = strings.HasPrefix(rep, "354")
		}
	}()
	return s
}

func (s *scriptedServer) lines() []string {
	var out []string
	for {
		select {
		case l := <-s.got:
			out = append(out, l)
		case <-time.After(100 * time.Millisecond):
			return out
		}
	}
}

// A next hop that does not answer in time: a *smtp.Error that says so, with amavis's
// section name; a reply line without end is refused rather than buffered.
func TestClientTimeoutAndHugeReply(t *testing.T) {
	srv := scripted(t, "220 slow ESMTP", map[string]string{"EHLO": "250-slow\r\n250 PIPELINING", "MAIL": "", "RCPT": "", "DATA": ""})
	c, err := smtp.Dial(context.Background(), "tcp", srv.addr, false, "localhost", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	env := &smtp.Envelope{From: "<s@x>", Rcpts: []smtp.Recipient{{Addr: "a@x"}}}
	_, err = c.Send(context.Background(), env, body("x\r\n"))
	var se *smtp.Error
	if !errors.As(err, &se) || !se.Timeout() || se.Stage != "fwd-mail-pip" {
		t.Errorf("got %v", err)
	}
	huge := scripted(t, "220-"+strings.Repeat("x", 10000), nil)
	if _, err := smtp.Dial(context.Background(), "tcp", huge.addr, false, "localhost", time.Second); err == nil || !strings.Contains(err.Error(), "reply too long") {
		t.Errorf("huge greeting: %v", err)
	}
}

// 452 "too many recipients" at RCPT: the rest go in another transaction, also for SMTP
// input (it is not a temporary failure of the message).
func TestClientTooManyRecipients(t *testing.T) {
	h := smtptest.Start(t, smtptest.Options{MaxRecipients: 2})
	c, err := smtp.Dial(context.Background(), "tcp", h.Addr, false, "localhost", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	env := &smtp.Envelope{From: "<s@x>", AllOrNothing: true, XForward: &smtp.XForward{Addr: "192.0.2.1"}}
	for _, a := range []string{"a", "b", "c", "d", "e"} {
		env.Rcpts = append(env.Rcpts, smtp.Recipient{Addr: a + "@x"})
	}
	res, err := c.Send(context.Background(), env, body("Subject: many\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"data-dot: 250 2.0.0 Ok: queued as SINKQ0001", "data-dot: 250 2.0.0 Ok: queued as SINKQ0001",
		"data-dot: 250 2.0.0 Ok: queued as SINKQ0002", "data-dot: 250 2.0.0 Ok: queued as SINKQ0002",
		"data-dot: 250 2.0.0 Ok: queued as SINKQ0003"}
	if got := replies(res); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	msgs := h.Msgs()
	if len(msgs) != 3 || msgs[2].XForward != "XFORWARD ADDR=192.0.2.1" || strings.Join(msgs[2].Rcpts, ",") != "e@x" {
		t.Errorf("next hop got %+v", msgs)
	}
}

// A cached connection goes straight on with the next transaction (no RSET); after ProbeAfter
// of idleness it is probed with NOOP first, as Amavis::Out::SMTP::Session does.
func TestPoolReuseWithoutRSET(t *testing.T) {
	for _, tc := range []struct {
		probeAfter time.Duration
		between    []string
	}{{time.Minute, nil}, {0, []string{"NOOP"}}} {
		h := smtptest.Start(t, smtptest.Options{})
		p := smtp.NewPool(time.Minute)
		p.ProbeAfter = tc.probeAfter
		env := &smtp.Envelope{From: "<s@x>", Rcpts: []smtp.Recipient{{Addr: "a@x"}}}
		for i := 0; i < 2; i++ {
			c, err := p.Get(context.Background(), "tcp", h.Addr, false, "localhost", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Send(context.Background(), env, body("x\r\n")); err != nil {
				t.Fatal(err)
			}
			p.Put(c)
		}
		p.Close()
		want := append([]string{"EHLO localhost", "MAIL FROM:<s@x>", "RCPT TO:<a@x>", "DATA", "x", "."}, tc.between...)
		want = append(want, "MAIL FROM:<s@x>", "RCPT TO:<a@x>", "DATA", "x", ".", "QUIT")
		if got := h.Lines(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("ProbeAfter %v: next hop got\n %q\nwant\n %q", tc.probeAfter, got, want)
		}
		if n := h.Conns(); n != 1 {
			t.Errorf("ProbeAfter %v: %d connections, want 1", tc.probeAfter, n)
		}
	}
}

// With PIPELINING, XFORWARD travels in MAIL FROM's batch (one round trip less per message)
// and a refusal of it does not stop the transaction; without PIPELINING it waits for its reply.
func TestXForwardPipelinedWithMail(t *testing.T) {
	for _, pipelining := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var batch string
		served := make(chan error, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			readUntil := func(end string) (string, error) {
				var b strings.Builder
				for !strings.HasSuffix(b.String(), end) {
					line, err := br.ReadString('\n')
					if err != nil {
						return b.String(), err
					}
					b.WriteString(line)
				}
				return b.String(), nil
			}
			ext := "250-PIPELINING\r\n"
			if !pipelining {
				ext = ""
			}
			io.WriteString(conn, "220 hop ESMTP\r\n")
			if _, err := readUntil("\r\n"); err != nil {
				served <- err
				return
			}
			io.WriteString(conn, "250-hop\r\n"+ext+"250 XFORWARD NAME ADDR\r\n")
			if pipelining {
				if batch, err = readUntil("DATA\r\n"); err != nil {
					served <- fmt.Errorf("waiting for DATA after %q: %v", batch, err)
					return
				}
				io.WriteString(conn, "550 5.7.0 XFORWARD refused\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n")
			} else {
				// one command, one reply
				for _, rep := range []string{"550 5.7.0 XFORWARD refused", "250 2.1.0 Ok", "250 2.1.5 Ok", "354 go ahead"} {
					line, err := readUntil("\r\n")
					if err != nil {
						served <- err
						return
					}
					batch += line
					io.WriteString(conn, rep+"\r\n")
				}
			}
			if _, err := readUntil("\r\n.\r\n"); err != nil {
				served <- err
				return
			}
			io.WriteString(conn, "250 2.0.0 Ok: queued as X1\r\n")
			served <- nil
		}()
		c, err := smtp.Dial(context.Background(), "tcp", ln.Addr().String(), false, "localhost", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		env := &smtp.Envelope{From: "<s@x>", Rcpts: []smtp.Recipient{{Addr: "a@x"}}, XForward: &smtp.XForward{Addr: "192.0.2.1"}}
		res, err := c.Send(context.Background(), env, body("Subject: x\r\n\r\nx\r\n"))
		c.Abort()
		if err != nil {
			t.Fatalf("pipelining %v: %v", pipelining, err)
		}
		if err := <-served; err != nil {
			t.Fatalf("pipelining %v: next hop: %v", pipelining, err)
		}
		if want := "XFORWARD ADDR=192.0.2.1\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nDATA\r\n"; batch != want {
			t.Errorf("pipelining %v: next hop read %q, want %q", pipelining, batch, want)
		}
		if got := replies(res); len(got) != 1 || got[0] != "data-dot: 250 2.0.0 Ok: queued as X1" {
			t.Errorf("pipelining %v: replies %q", pipelining, got)
		}
	}
}

// A multi-line reply's text is its lines' texts joined with "\n".
func TestClientMultilineReplyText(t *testing.T) {
	srv := scripted(t, "220 hop ESMTP", map[string]string{"EHLO": "250-hop\r\n250 PIPELINING",
		"MAIL": "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third", "RCPT": "250 2.1.5 Ok", "DATA": "503 5.5.1 no", "RSET": "250 2.0.0 Ok"})
	c, err := smtp.Dial(context.Background(), "tcp", srv.addr, false, "localhost", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	env := &smtp.Envelope{From: "<s@x>", Rcpts: []smtp.Recipient{{Addr: "a@x"}}}
	res, err := c.Send(context.Background(), env, body("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Rcpts[0].Reply; got.Code != 550 || got.Enh != "5.7.1" || got.Text != "first\nsecond\nthird" {
		t.Errorf("reply %+v", got)
	}
}

// BenchmarkLongReply: a greeting of 1000 lines of 4000 bytes, the most a next hop may send;
// each line used to be added to the text, copying it again (quadratic).
func BenchmarkLongReply(b *testing.B) {
	line := strings.Repeat("x", 4000)
	greeting := strings.Repeat("220-"+line+"\r\n", 999) + "220 " + line
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				io.WriteString(conn, greeting+"\r\n")
				if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
					io.WriteString(conn, "250 hop\r\n")
				}
				io.Copy(io.Discard, conn)
			}()
		}
	}()
	b.SetBytes(int64(len(greeting)))
	for b.Loop() {
		c, err := smtp.Dial(context.Background(), "tcp", ln.Addr().String(), false, "localhost", 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		c.Abort()
	}
}
