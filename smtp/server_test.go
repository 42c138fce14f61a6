package smtp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Handler that keeps the transactions it saw.
type recorder struct {
	txs    []Transaction
	bodies []string
}

func (h *recorder) Data(s *Session, tx *Transaction, r *DataReader) []Reply {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil
	}
	h.txs = append(h.txs, *tx)
	h.bodies = append(h.bodies, string(b))
	if s.LMTP() {
		out := make([]Reply, len(tx.Rcpts))
		for i := range out {
			out[i] = Reply{250, "2.0.0", "Ok " + tx.Rcpts[i].AddrSMTP}
		}
		return out
	}
	return []Reply{{250, "2.0.0", "Ok"}}
}

// dialog runs a session over loopback TCP: it sends input, half-closes, and reads
// everything until the session closes.
func dialog(t testing.TB, cfg *Config, h Handler, input string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv, err := ln.Accept()
		if err != nil {
			return
		}
		NewSession(srv, cfg, h, false).Serve()
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		io.WriteString(cli, input)
		cli.(*net.TCPConn).CloseWrite()
	}()
	out, _ := io.ReadAll(cli)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("session did not end; input %q", input)
	}
	return string(out)
}

func testConfig() *Config {
	return &Config{HeloName: "[127.0.0.1]", Greeting: "[127.0.0.1] ESMTP amavis service ready",
		QuitBanner: "[127.0.0.1] amavis closing transmission channel", RcptLimit: 2, Timeout: time.Second}
}

func TestXForwardAppliesToNextTransaction(t *testing.T) {
	h := &recorder{}
	in := "EHLO x\r\n" +
		"XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.1 IDENT=Q+2B1\r\n" +
		"XFORWARD PORT=25 HELO=h.example\r\n" +
		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n" +
		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\ny\r\n.\r\n" +
		"XFORWARD ADDR=192.0.2.9\r\nRSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nz\r\n.\r\nQUIT\r\n"
	dialog(t, testConfig(), h, in)
	if len(h.txs) != 3 {
		t.Fatalf("%d transactions", len(h.txs))
	}
	want := XForward{Addr: "192.0.2.1", Ident: "Q+1", Port: "25", Helo: "h.example"}
	if h.txs[0].XForward != want {
		t.Errorf("first: %+v", h.txs[0].XForward)
	}
	if h.txs[1].XForward != (XForward{}) || h.txs[2].XForward != (XForward{}) {
		t.Errorf("XFORWARD not cleared after the transaction / by RSET: %+v %+v", h.txs[1].XForward, h.txs[2].XForward)
	}
	if h.txs[0].Seq != 1 || h.txs[1].Seq != 2 || h.bodies[1] != "y\r\n" {
		t.Errorf("seq %d %d, body %q", h.txs[0].Seq, h.txs[1].Seq, h.bodies[1])
	}
}

// A bad attribute is refused, and the attributes before it stay in effect (as in amavis); a
// syntax error likewise stops at the bad field.
func TestXForwardBadAttributeKeepsEarlierOnes(t *testing.T) {
	h := &recorder{}
	out := dialog(t, testConfig(), h, "EHLO x\r\n"+
		"XFORWARD ADDR=192.0.2.1 BOGUS=1 PORT=25\r\n"+
		"XFORWARD HELO=h.example NAME\r\n"+
		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
	for _, want := range []string{"501 5.5.4 XFORWARD command parameter error: BOGUS=1\r\n", "501 5.5.4 Syntax error in XFORWARD parameters\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if len(h.txs) != 1 || h.txs[0].XForward != (XForward{Addr: "192.0.2.1", Helo: "h.example"}) {
		t.Fatalf("transactions %d, XFORWARD %+v", len(h.txs), h.txs[0].XForward)
	}
}

func TestRecipientLimitAndSize(t *testing.T) {
	cfg := testConfig()
	cfg.SizeLimit = 100000
	cfg.DiscardEHLOKeywords = []string{"8bitmime", "VRFY"}
	out := dialog(t, cfg, &recorder{}, "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nRCPT TO:<3@d>\r\nQUIT\r\n")
	want := "220 [127.0.0.1] ESMTP amavis service ready\r\n" +
		"250-[127.0.0.1]\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n" +
		"250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n" +
		"250 2.1.0 Sender <a@b> OK\r\n250 2.1.5 Recipient <1@d> OK\r\n250 2.1.5 Recipient <2@d> OK\r\n" +
		"452 4.5.3 Too many recipients\r\n221 2.0.0 [127.0.0.1] amavis closing transmission channel\r\n"
	if out != want {
		t.Errorf("\n got %q\nwant %q", out, want)
	}
}

func TestLMTPRepliesPerRecipient(t *testing.T) {
	out := dialog(t, testConfig(), &recorder{}, "LHLO x\r\nMAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
	if !strings.Contains(out, "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok <1@d>\r\n250 2.0.0 Ok <2@d>\r\n221 ") {
		t.Errorf("%q", out)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv, cli := net.Pipe()
	defer cli.Close()
	cfg := testConfig()
	cfg.Timeout = 200 * time.Millisecond
	go NewSession(srv, cfg, &recorder{}, false).Serve()
	r := bufio.NewReader(cli)
	r.ReadString('\n')
	line, _ := r.ReadString('\n')
	if line != "421 4.3.2 Service shutting down, closing channel\r\n" {
		t.Errorf("got %q", line)
	}
}

// FuzzSession drives a session in its real states with arbitrary client input after a
// valid start: it must neither panic nor hang, and every reply line must be well-formed.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
		"XFORWARD ADDR=1.2.3.4\r\nMAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<x@y> NOTIFY=NEVER\r\nDATA\r\n..\r\n.\r\n",
		"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nRSET\r\nHELP\r\n",
		"\r\n\x00\xff\r\nVRFY\r\nMAIL FROM:<a@b> RET=FULL RET=HDRS\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		cfg := testConfig()
		cfg.Timeout = 100 * time.Millisecond
		out := dialog(t, cfg, &recorder{}, "EHLO fuzz\r\n"+input)
		for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
			if len(l) < 4 || !isDigits(l[:3]) || (l[3] != ' ' && l[3] != '-') {
				t.Fatalf("bad reply line %q", l)
			}
		}
	})
}

// RcptCheck: the daemon's per-recipient policy answers instead of the plain 250.
func TestRcptCheck(t *testing.T) {
	cfg := testConfig()
	cfg.RcptLimit = 10
	cfg.RcptCheck = func(tx *Transaction, rc *Recipient) *Reply {
		switch rc.Addr {
		case "big@d":
			return &Reply{552, "5.3.4", fmt.Sprintf("Declared message size (%d B) exceeds size limit for recipient %s", tx.Size, rc.AddrSMTP)}
		case "lover@d":
			return &Reply{250, "2.3.4", "Declared message size (" + strconv.FormatInt(tx.Size, 10) + " B) exceeds size limit for recipient " + rc.AddrSMTP}
		}
		return nil
	}
	out := dialog(t, cfg, &recorder{}, "EHLO x\r\nMAIL FROM:<a@b> SIZE=70000\r\nRCPT TO:<big@d>\r\nRCPT TO:<lover@d>\r\nRCPT TO:<c@d>\r\nQUIT\r\n")
	for _, want := range []string{
		"552 5.3.4 Declared message size (70000 B) exceeds size limit for recipient <big@d>\r\n",
		"250 2.3.4 Declared message size (70000 B) exceeds size limit for recipient <lover@d>\r\n",
		"250 2.1.5 Recipient <c@d> OK\r\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

// A 421 from RcptCheck (the recipient could not be checked) ends the session with one 421,
// whatever the client sent after the RCPT.
func TestRcptCheck421EndsSession(t *testing.T) {
	cfg := testConfig()
	cfg.RcptCheck = func(tx *Transaction, rc *Recipient) *Reply {
		if rc.Addr == "down@d" {
			return &Reply{421, "4.3.2", "Service shutting down, closing channel"}
		}
		return nil
	}
	out := dialog(t, cfg, &recorder{}, "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<down@d>\r\nRCPT TO:<e@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
	if !strings.HasSuffix(out, "250 2.1.5 Recipient <c@d> OK\r\n421 4.3.2 Service shutting down, closing channel\r\n") {
		t.Errorf("want the session to end with one 421 after the RCPT:\n%s", out)
	}
}

type silentHandler struct{}

func (silentHandler) Data(s *Session, tx *Transaction, r *DataReader) []Reply {
	io.Copy(io.Discard, r)
	return nil
}

// A handler that gives no reply must not leave the client waiting, nor acknowledge.
func TestHandlerWithoutReply(t *testing.T) {
	out := dialog(t, testConfig(), silentHandler{}, "LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
	if !strings.Contains(out, "354 End data with <CR><LF>.<CR><LF>\r\n451 4.5.0 Error in processing, no reply\r\n451 4.5.0 Error in processing, no reply\r\n221 ") {
		t.Errorf("%q", out)
	}
}

// trickleConn is a client that pipelines commands in pieces that never end on a line
// boundary and never reads: it records the size of each write of the session.
type trickleConn struct {
	net.Conn // nil: only the methods below are used
	in       []byte
	writes   []int
}

func (c *trickleConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 4099)], c.in)
	c.in = c.in[n:]
	return n, nil
}
func (c *trickleConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, len(p))
	return len(p), nil
}
func (c *trickleConn) Close() error                     { return nil }
func (c *trickleConn) SetReadDeadline(time.Time) error  { return nil }
func (c *trickleConn) SetWriteDeadline(time.Time) error { return nil }

// Replies to a pipelined batch are held back until it is consumed, but never without bound:
// a client that keeps sending without reading gets them in pieces (amavis: 200 lines). Before
// EHLO, and after HELO, every reply goes out at once.
func TestPipelinedRepliesBounded(t *testing.T) {
	const noop, quit = "250 2.0.0 Ok NOOP\r\n", "221 2.0.0 [127.0.0.1] amavis closing transmission channel\r\n"
	for _, tc := range []struct {
		greet, reply string
		maxWrite     int
	}{
		{"EHLO x", "250-[127.0.0.1]\r\n250-VRFY\r\n250-PIPELINING\r\n250-SIZE\r\n250-ENHANCEDSTATUSCODES\r\n" +
			"250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE\r\n", maxPendingOut + 512},
		{"HELO x", "250 [127.0.0.1]\r\n", len(noop)},
	} {
		c := &trickleConn{in: []byte(tc.greet + "\r\n" + strings.Repeat("NOOP\r\n", 100000) + "QUIT\r\n")}
		NewSession(c, testConfig(), &recorder{}, false).Serve()
		total, most := 0, 0
		for i, n := range c.writes[1:] { // after the greeting
			total += n
			if i < len(c.writes)-2 { // not the last: QUIT's reply
				most = max(most, n)
			}
		}
		if want := len(tc.reply) + 100000*len(noop) + len(quit); total != want {
			t.Errorf("%s: %d bytes of replies, want %d", tc.greet, total, want)
		}
		if most > tc.maxWrite {
			t.Errorf("%s: %d bytes of replies held back, want at most %d", tc.greet, most, tc.maxWrite)
		}
	}
}

// serve runs a session on loopback TCP and returns the client's side, greeting read.
func serve(t *testing.T, cfg *Config) (net.Conn, *bufio.Reader) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if srv, err := ln.Accept(); err == nil {
			NewSession(srv, cfg, &recorder{}, false).Serve()
		}
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	cli.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(cli)
	if line, err := r.ReadString('\n'); !strings.HasPrefix(line, "220 ") {
		t.Fatalf("greeting %q (%v)", line, err)
	}
	return cli, r
}

// expectLines reads one reply line per want and compares them.
func expectLines(t *testing.T, r *bufio.Reader, want ...string) {
	t.Helper()
	for _, w := range want {
		line, err := r.ReadString('\n')
		if line != w+"\r\n" {
			t.Fatalf("got %q (%v), want %q", line, err, w)
		}
	}
}

// smtpd_timeout runs from the start of the wait for each line the client sends, a command or
// a line of the message, and partial input does not extend it: a client that trickles a
// line byte by byte gets 421 once it has passed. Complete lines, each within the timeout,
// are not cut off however long the whole takes (amavis restarts the timer during DATA too).
func TestTimeoutPerLineNotExtendedByTrickle(t *testing.T) {
	const timeout = 500 * time.Millisecond
	for _, tc := range []struct {
		name, before string
		replies      []string
		trickle      bool
	}{
		{"command", "", nil, true},
		{"pipelined command", "EHLO x\r\nNOOP\r\nNO", []string{"250-[127.0.0.1]", "250-VRFY", "250-PIPELINING",
			"250-SIZE", "250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-SMTPUTF8", "250-DSN",
			"250 XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE", "250 2.0.0 Ok NOOP"}, true},
		{"data line", "HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", []string{"250 [127.0.0.1]",
			"250 2.1.0 Sender <a@b> OK", "250 2.1.5 Recipient <c@d> OK", "354 End data with <CR><LF>.<CR><LF>"}, true},
		{"data lines", "HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", []string{"250 [127.0.0.1]",
			"250 2.1.0 Sender <a@b> OK", "250 2.1.5 Recipient <c@d> OK", "354 End data with <CR><LF>.<CR><LF>"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Timeout = timeout
			c, r := serve(t, cfg)
			io.WriteString(c, tc.before)
			expectLines(t, r, tc.replies...)
			began := time.Now()
			stop, stopped := make(chan struct{}), make(chan struct{})
			stopWriting := sync.OnceFunc(func() {
				close(stop)
				<-stopped
			})
			defer stopWriting()
			go func() {
				defer close(stopped)
				for {
					select {
					case <-stop:
						return
					case <-time.After(timeout / 10):
					}
					b := "x\r\n" // a line, each well within the timeout
					if tc.trickle {
						b = "x"
					}
					if _, err := io.WriteString(c, b); err != nil {
						return
					}
				}
			}()
			if !tc.trickle {
				time.Sleep(3 * timeout)
				stopWriting()
				io.WriteString(c, ".\r\n")
				expectLines(t, r, "250 2.0.0 Ok")
				return
			}
			c.SetReadDeadline(began.Add(timeout + 2*time.Second))
			expectLines(t, r, "421 4.3.2 Service shutting down, closing channel")
			if d := time.Since(began); d < timeout {
				t.Errorf("cut off after %v, before the timeout", d)
			}
		})
	}
}

// A command line over maxCommandLine gets its 500 as soon as it has ended, alone or
// followed by more commands; the rest of the line is discarded and the session goes on.
func TestOverlongCommandLine(t *testing.T) {
	long := "NOOP " + strings.Repeat("x", 70000) + "\r\n"
	for _, tc := range []struct{ name, greet, input string }{
		{"alone", "HELO x\r\n", long},
		{"pipelined", "EHLO x\r\n", long + "NOOP\r\n"},
		{"bare LF and CR inside", "HELO x\r\n", "NOOP " + strings.Repeat("x\ny\r", 20000) + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Timeout = time.Minute
			c, r := serve(t, cfg)
			io.WriteString(c, tc.greet)
			for line := ""; !strings.HasPrefix(line, "250 "); {
				line, _ = r.ReadString('\n')
			}
			io.WriteString(c, tc.input)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			expectLines(t, r, "500 5.5.2 Error: bad syntax")
			if !strings.HasSuffix(tc.input, "NOOP\r\n") {
				io.WriteString(c, "NOOP\r\n")
			}
			expectLines(t, r, "250 2.0.0 Ok NOOP")
			io.WriteString(c, "QUIT\r\n")
			expectLines(t, r, "221 2.0.0 [127.0.0.1] amavis closing transmission channel")
		})
	}
}
