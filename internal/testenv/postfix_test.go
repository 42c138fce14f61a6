package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func testMessage(id, body string) []byte {
	return []byte("From: sender@example.org\r\nTo: rcpt@" + PostfixDomain + "\r\nSubject: harness\r\n" +
		"Message-ID: " + id + "\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n"))
}

// TestPostfixLocalDelivery: without a content filter a submitted message
// lands in the mailbox file, once, with its body intact.
func TestPostfixLocalDelivery(t *testing.T) {
	t.Parallel()
	p := StartPostfix(t, PostfixOptions{})
	body := "line one\nFrom the mbox quoting\n>From already quoted\n"
	for _, id := range []string{"<a@harness>", "<b@harness>"} {
		qid, err := p.Submit("sender@example.org", []string{"rcpt@" + PostfixDomain}, testMessage(id, body))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9A-F]{6,}$`).MatchString(qid) {
			t.Errorf("queue id %q", qid)
		}
	}
	msgs := p.WaitMessages(t, 2, 20*time.Second)
	// The queue manager may deliver them in either order.
	if len(msgs) != 2 || msgs[0].MessageID == msgs[1].MessageID {
		t.Fatalf("mailbox: %+v", msgs)
	}
	for _, m := range msgs {
		if m.MessageID != "<a@harness>" && m.MessageID != "<b@harness>" {
			t.Errorf("delivered %q", m.MessageID)
		}
		if got, want := string(m.Body), strings.Replace(body, "\nFrom", "\n>From", 1); got != want {
			t.Errorf("body = %q, want %q", got, want)
		}
		if !strings.HasPrefix(m.FromLine, "From sender@example.org ") {
			t.Errorf("From line %q", m.FromLine)
		}
	}
	p.WaitLog(t, regexp.MustCompile(`postfix/local\[\d+\]: [0-9A-F]+: to=<rcpt@example\.com>, .*status=sent \(delivered to file: `+regexp.QuoteMeta(p.Mailbox)), 10*time.Second)
	if q, err := p.Queue(); err != nil || len(q) != 0 {
		t.Errorf("queue = %+v, %v; want empty", q, err)
	}
}

// relay stands in for the content filter to prove the plumbing: it takes
// mail from amavisfeed (LMTP or SMTP), adds a header and hands it to the
// re-injection smtpd, answering the final dot only after that worked.
type relay struct {
	mu      sync.Mutex
	forward string
	ln      net.Listener
	srv     *smtp.Server
}

func startRelay(t *testing.T, lmtp bool, addr string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	r.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &relaySession{r: r}, nil
	}))
	r.srv.LMTP = lmtp
	r.srv.Domain = "relay.test"
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *relay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *relay) setForward(addr string) {
	r.mu.Lock()
	r.forward = addr
	r.mu.Unlock()
}

type relaySession struct {
	r    *relay
	from string
	to   []string
}

func (s *relaySession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *relaySession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *relaySession) Reset()        { s.from, s.to = "", nil }
func (s *relaySession) Logout() error { return nil }
func (s *relaySession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	fwd := s.r.forward
	s.r.mu.Unlock()
	msg := append([]byte("X-Test-Relay: seen\r\n"), b...)
	if _, err := sendSMTP("127.0.0.1", fwd, s.from, s.to, msg); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 5, 0}, Message: "forward failed: " + err.Error()}
	}
	return nil
}

// TestPostfixFilterPlumbing runs mail through content_filter = amavisfeed
// over both transports with a stand-in filter, two instances at once.
func TestPostfixFilterPlumbing(t *testing.T) {
	for _, transport := range []string{"lmtp", "smtp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			r := startRelay(t, transport == "lmtp", "127.0.0.1:0")
			p := StartPostfix(t, PostfixOptions{FilterPort: r.port(), Transport: transport, MaxProc: 3})
			r.setForward(p.ForwardAddr)
			const n = 6
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if _, err := p.SubmitFrom("127.0.0.2", "sender@example.org", []string{"rcpt@" + PostfixDomain},
						testMessage(fmt.Sprintf("<%d@plumbing>", i), "hello\n")); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			msgs := p.WaitMessages(t, n, 30*time.Second)
			counts, err := p.MessageIDCounts()
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if c := counts[fmt.Sprintf("<%d@plumbing>", i)]; c != 1 {
					t.Errorf("message %d delivered %d times", i, c)
				}
			}
			if v := msgs[0].HeaderValues("X-Test-Relay"); len(v) != 1 || v[0] != "seen" {
				t.Errorf("X-Test-Relay = %q: the message did not pass the filter", v)
			}
			p.WaitLog(t, regexp.MustCompile(fmt.Sprintf(`postfix/amavisfeed/%s\[\d+\]: [0-9A-F]+: to=<rcpt@example\.com>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent \(250 `, transport, r.port())), 10*time.Second)
			p.WaitLog(t, regexp.MustCompile(`postfix/reinject/smtpd\[\d+\]: connect from`), 10*time.Second)
			// The original client entered on 127.0.0.2.
			p.WaitLog(t, regexp.MustCompile(`postfix/smtpd\[\d+\]: [0-9A-F]+: client=[^ ]*\[127\.0\.0\.2\]`), 10*time.Second)
		})
	}
}

// TestPostfixDeferredAndFlush: with the filter down the message waits in
// the deferred queue (postqueue -j); after the filter is up, a flush
// delivers it once.
func TestPostfixDeferredAndFlush(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p := StartPostfix(t, PostfixOptions{FilterPort: port})
	qid, err := p.Submit("sender@example.org", []string{"rcpt@" + PostfixDomain}, testMessage("<d@harness>", "x\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.WaitQueued(t, qid, "deferred", 20*time.Second)
	if len(m.Recipients) != 1 || !strings.Contains(m.Recipients[0].DelayReason, "Connection refused") {
		t.Errorf("deferred entry %+v, want a Connection refused delay reason", m)
	}
	r := startRelay(t, true, fmt.Sprintf("127.0.0.1:%d", port))
	r.setForward(p.ForwardAddr)
	time.Sleep(300 * time.Millisecond)
	if msgs, _ := p.Messages(); len(msgs) != 0 {
		t.Fatalf("delivered before the flush: %+v", msgs)
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	p.WaitMessages(t, 1, 20*time.Second)
	time.Sleep(200 * time.Millisecond)
	if c, _ := p.MessageIDCounts(); c["<d@harness>"] != 1 || len(c) != 1 {
		t.Errorf("mailbox counts %v", c)
	}
	if q, err := p.Queue(); err != nil || len(q) != 0 {
		t.Errorf("queue = %+v, %v; want empty", q, err)
	}
}

func TestPostfixConfigSubstitution(t *testing.T) {
	mainCF, masterCF, err := PostfixConfig("/x", PostfixOptions{FilterPort: 40024, Transport: "smtp", MaxProc: 8}, 40000, 40025)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\ncontent_filter = amavisfeed:[127.0.0.1]:40024\n", "\nqueue_directory = /x/spool\n"} {
		if !strings.Contains(mainCF, want) {
			t.Errorf("main.cf lacks %q:\n%s", want, mainCF)
		}
	}
	for _, want := range []string{"\n127.0.0.1:40000 inet n - n - - smtpd\n", "\namavisfeed unix - - n - 8 smtp\n",
		"\n  -o smtp_send_xforward_command=yes\n", "\n127.0.0.1:40025 inet n  -", "\n  -o smtpd_authorized_xforward_hosts=127.0.0.0/8\n"} {
		if !strings.Contains(masterCF, want) {
			t.Errorf("master.cf lacks %q:\n%s", want, masterCF)
		}
	}
	for _, l := range strings.Split(mainCF+masterCF, "\n") {
		if !strings.HasPrefix(l, "#") && (strings.Contains(l, "10024") || strings.Contains(l, "10025")) {
			t.Errorf("a site default port survived: %q", l)
		}
	}
	if _, _, err := PostfixConfig("/x", PostfixOptions{Transport: "uucp"}, 1, 2); err == nil {
		t.Error("unknown transport accepted")
	}
}

func TestSetMaxproc(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"a unix - - n - 2 lmtp\n  -o x=y\n", "a unix - - n - 7 lmtp\n  -o x=y\n", ""},
		{"# a unix - - n - 2 lmtp\n", "", "defined 0 times"},
		{"a unix - - n - 2 lmtp\na unix - - n - 2 smtp\n", "", "defined 2 times"},
	} {
		got, err := setMaxproc(tc.in, "a", 7)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("setMaxproc(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("setMaxproc(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMbox(t *testing.T) {
	in := "From a@b  Sun Nov 22 11:29:45 2026\nMessage-ID:\n <1@x>\nX: y\n\nbody\n>From quoted\n\n" +
		"From c@d  Sun Nov 22 11:29:46 2026\nSubject: no id\n\n\n"
	msgs, err := ParseMbox([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages: %+v", len(msgs), msgs)
	}
	if msgs[0].MessageID != "<1@x>" || string(msgs[0].Body) != "body\n>From quoted\n" || msgs[0].FromLine != "From a@b  Sun Nov 22 11:29:45 2026" {
		t.Errorf("first: %+v", msgs[0])
	}
	if msgs[1].MessageID != "" || len(msgs[1].Body) != 0 || msgs[1].HeaderValues("subject")[0] != "no id" {
		t.Errorf("second: %+v", msgs[1])
	}
	if _, err := ParseMbox([]byte("Subject: x\n")); err == nil {
		t.Error("an mbox without From line accepted")
	}
}

func TestParseQueueJSON(t *testing.T) {
	out := `{"queue_name": "deferred", "queue_id": "4F2A", "arrival_time": 1700000000, "message_size": 512, "forced_expire": false, "sender": "s@x", "recipients": [{"address": "r@y", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:1: Connection refused"}]}
`
	q, err := ParseQueueJSON([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].QueueName != "deferred" || q[0].QueueID != "4F2A" || q[0].Recipients[0].Address != "r@y" ||
		!strings.HasSuffix(q[0].Recipients[0].DelayReason, "Connection refused") {
		t.Errorf("%+v", q)
	}
	if _, err := ParseQueueJSON([]byte("{oops\n")); err == nil {
		t.Error("bad JSON accepted")
	}
}

func FuzzParseMbox(f *testing.F) {
	f.Add([]byte("From a  Sun Nov 22 11:29:45 2026\nMessage-ID: <1@x>\n\nbody\n\n"))
	f.Add([]byte("From \n\n\n\nFrom \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := ParseMbox(b)
		if err != nil {
			return
		}
		if len(b) > 0 && len(msgs) == 0 {
			t.Fatalf("no messages from %q", b)
		}
		for _, m := range msgs {
			if !strings.HasPrefix(m.FromLine, "From ") {
				t.Fatalf("From line %q", m.FromLine)
			}
		}
	})
}

func FuzzParseQueueJSON(f *testing.F) {
	f.Add([]byte(`{"queue_name":"active","queue_id":"A","recipients":[{"address":"x"}]}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQueueJSON(b)
		if err == nil && len(bytes.TrimSpace(b)) == 0 && len(q) != 0 {
			t.Fatalf("entries from blank input")
		}
	})
}

// TestPostfixSetReinject: the re-injection smtpd goes away and comes back
// on reload while the rest of the instance keeps running.
func TestPostfixSetReinject(t *testing.T) {
	t.Parallel()
	p := StartPostfix(t, PostfixOptions{})
	p.SetReinject(t, false)
	if _, err := Greeting(p.ForwardAddr); err == nil {
		t.Fatal("re-injection smtpd still greets after SetReinject(false)")
	}
	if _, err := p.Submit("sender@example.org", []string{"rcpt@" + PostfixDomain}, testMessage("<r@harness>", "x\n")); err != nil {
		t.Fatal(err)
	}
	p.SetReinject(t, true)
	if _, err := sendSMTP("127.0.0.1", p.ForwardAddr, "sender@example.org", []string{"rcpt@" + PostfixDomain}, testMessage("<s@harness>", "x\n")); err != nil {
		t.Fatal(err)
	}
	p.WaitMessages(t, 2, 20*time.Second)
	if c, _ := p.MessageIDCounts(); c["<r@harness>"] != 1 || c["<s@harness>"] != 1 {
		t.Errorf("mailbox counts %v", c)
	}
}

// TestPostfixConfigNoWarnings: postconf finds nothing to complain about in
// the configuration built from contrib/postfix (a misspelt parameter in a
// snippet is an "unused parameter" warning), for both transports.
func TestPostfixConfigNoWarnings(t *testing.T) {
	postconf := RequireProgram(t, "postconf", "/usr/sbin/postconf")
	for _, transport := range []string{"lmtp", "smtp"} {
		dir := t.TempDir()
		mainCF, masterCF, err := PostfixConfig(dir, PostfixOptions{FilterPort: 40024, Transport: transport, MaxProc: 8}, 40000, 40025)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF), 0o644)
		os.WriteFile(filepath.Join(dir, "master.cf"), []byte(masterCF), 0o644)
		for _, arg := range []string{"-n", "-M", "-P"} {
			out, err := exec.Command(postconf, "-c", dir, arg).CombinedOutput()
			if err != nil || strings.Contains(string(out), "warning:") {
				t.Errorf("%s: postconf %s: %v\n%s", transport, arg, err, out)
			}
		}
	}
}
