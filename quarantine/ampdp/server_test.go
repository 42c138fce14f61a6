package ampdp

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/delivery/deliverytest"
	"amavisgo/mailid"
	"amavisgo/quarantine"
)

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

type rig struct {
	dir      string // QUARANTINEDIR
	socket   string
	tcp      string               // the same server on 127.0.0.1:port
	hop      *deliverytest.Server // release_method / notify_method
	requeue  *deliverytest.Server // requeue_method
	mailID   string
	secretID string
	file     string // relative name, "n/virus-..."
}

// newRig quarantines an EICAR message (two recipients, one blocked) and serves AM.PDP on a
// unix socket with the given auth_required_release.
func newRig(t *testing.T, authRequired bool) *rig {
	t.Helper()
	r := &rig{dir: t.TempDir(), hop: deliverytest.Start(t), requeue: deliverytest.Start(t)}
	text := "myhostname = \"mx.example.com\"\nQUARANTINEDIR = \"" + r.dir + "\"\nquarantine_subdir_levels = 1\n" +
		"notify_method = \"" + r.hop.Method.String() + "\"\nrequeue_method = \"" + r.requeue.Method.String() + "\"\n" +
		"[policy_bank.AM_PDP_SOCK]\nprotocol = \"AM.PDP\"\n"
	if !authRequired {
		text += "auth_required_release = false\n"
	}
	c, err := conf.Parse("t.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Bank(&c.Policy, "AM_PDP_SOCK")
	if err != nil {
		t.Fatal(err)
	}
	sender := &amavissmtp.Sender{LocalhostName: "localhost"}
	store := quarantine.NewStore(c, sender)
	r.mailID, r.secretID, _ = mailid.New(mailid.DefaultBits)
	spool := filepath.Join(t.TempDir(), "email.txt")
	os.WriteFile(spool, []byte("From: bob@sender.example.org\nTo: x@example.com\nSubject: eicar\nMessage-ID: <m2@x>\n\n"+eicar+"\n"), 0o600)
	m := &quarantine.Message{
		MailID: r.mailID, LogID: "12345-01", Received: time.Now(), Sender: "bob@sender.example.org",
		Recipients: []string{"x@example.com", "ok@example.com"}, Blocked: []string{"x@example.com"},
		Fields:        []string{"X-Amavis-Alert: INFECTED, message contains virus: Eicar-Test-Signature"},
		ReceivedField: "Received: from mta.example.com ([127.0.0.1])\n by localhost (mx.example.com [127.0.0.1]) (amavis, port 10024) with ESMTP\n id " + r.mailID + "; Sun, 22 Nov 2026 09:44:18 +0000 (UTC)",
		Original:      spool,
	}
	locs, err := store.Quarantine(context.Background(), p, quarantine.Virus, m, m.Blocked)
	if err != nil || len(locs) != 1 {
		t.Fatal(locs, err)
	}
	r.file = locs[0].Name
	// A spam copy of the same message too (gzip; quar_type Z).
	if locs, err := store.Quarantine(context.Background(), p, quarantine.Spam, m, m.Blocked); err != nil || locs[0].Type != 'Z' {
		t.Fatal(locs, err)
	}
	srv := &Server{Config: c, Store: store, Sender: sender}
	r.socket = filepath.Join(t.TempDir(), "amavisd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, l := range []struct{ network, addr string }{{"unix", r.socket}, {"tcp", "127.0.0.1:0"}} {
		ln, err := net.Listen(l.network, l.addr)
		if err != nil {
			t.Fatal(err)
		}
		if l.network == "tcp" {
			r.tcp = ln.Addr().String()
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go srv.ServeConn(ctx, conn, p)
			}
		}()
	}
	return r
}

// amavisdRelease installs Debian's client under name (amavisd-release or amavisd-requeue: the
// name selects the request) with $socketname, the setting its "USER CONFIGURABLE" block
// offers, pointing at our socket.
func amavisdRelease(t *testing.T, name, socket string) string {
	t.Helper()
	src, err := os.ReadFile("/usr/sbin/amavisd-release")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("amavisd-release (package amavisd-new) is required in CI: %v", err)
		}
		t.Skipf("amavisd-release not installed (package amavisd-new): %v", err)
	}
	const line = "$socketname = '/var/lib/amavis/amavisd.sock';"
	if !bytes.Contains(src, []byte(line)) {
		t.Fatalf("amavisd-release has no %q line to configure", line)
	}
	script := filepath.Join(t.TempDir(), name)
	src = bytes.Replace(src, []byte(line), []byte("$socketname = '"+socket+"';"), 1)
	if err := os.WriteFile(script, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func run(t *testing.T, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(script), args, err, out)
	}
	return string(out)
}

func header(t *testing.T, data []byte) textproto.MIMEHeader {
	t.Helper()
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(data))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAmavisdReleaseReleasesEICAR(t *testing.T) {
	r := newRig(t, true)
	rel := amavisdRelease(t, "amavisd-release", r.socket)

	// By its file name as the log shows it (virus-<id>), with the secret_id.
	out := run(t, rel, filepath.Base(r.file), r.secretID)
	want := "250 2.0.0 from MTA(" + r.hop.Method.String() + "): 250 2.0.0 Ok: queued as SINKQ0001\n"
	if out != want {
		t.Errorf("amavisd-release printed %q, want %q", out, want)
	}
	m := r.hop.Wait(t, 0)
	if m.From != "bob@sender.example.org" || strings.Join(m.Rcpts, ",") != "x@example.com" {
		t.Errorf("envelope %q -> %q, want the blocked recipient only", m.From, m.Rcpts)
	}
	h := header(t, m.Data)
	if h.Get("Resent-From") != `"Content-filter at mx.example.com" <postmaster@mx.example.com>` ||
		h.Get("Resent-To") != "<x@example.com>" || h.Get("Resent-Date") == "" ||
		!strings.HasPrefix(h.Get("Resent-Message-ID"), "<"+r.mailID+"-") ||
		!strings.HasSuffix(h.Get("Resent-Message-ID"), "@mx.example.com>") {
		t.Errorf("Resent fields: %q", h)
	}
	if _, err := time.Parse("Mon, _2 Jan 2006 15:04:05 -0700 (MST)", h.Get("Resent-Date")); err != nil || !regexp.MustCompile(`^[A-Z][a-z]{2}, [ 123][0-9] `).MatchString(h.Get("Resent-Date")) {
		t.Errorf("Resent-Date: %v", err)
	}
	// amavis's make_received_header_field for a request on a Unix socket, the id the new mail_id
	rcvd := h.Values("Received")
	newID := strings.TrimSuffix(strings.TrimPrefix(h.Get("Resent-Message-ID"), "<"+r.mailID+"-"), "@mx.example.com>")
	if len(rcvd) != 2 || rcvd[0] != "from unknown by localhost (amavis, unix socket) id "+newID+" for <x@example.com>; "+h.Get("Resent-Date") ||
		!strings.Contains(rcvd[1], "id "+r.mailID) {
		t.Errorf("Received fields: %q", rcvd)
	}
	if h.Get("X-Quarantine-ID") != "" || h.Get("X-Envelope-To") != "" || h.Get("X-Amavis-Alert") != "" || h.Get("Delivered-To") != "" {
		t.Errorf("our leading fields must not be re-sent: %q", h)
	}
	if !bytes.HasSuffix(m.Data, []byte("\r\n\r\n"+eicar+"\r\n")) || h.Get("Subject") != "eicar" {
		t.Errorf("the original did not arrive unchanged: %q", m.Data)
	}

	// With the subdirectory in the path (quar_type F), to other recipients, requested by someone.
	out = run(t, rel, r.file, r.secretID, "a@example.com", "b@example.com")
	if strings.Count(out, "250 2.0.0 from MTA(") != 2 {
		t.Errorf("two recipients, two replies: %q", out)
	}
	m = r.hop.Wait(t, 1)
	if strings.Join(m.Rcpts, ",") != "a@example.com,b@example.com" || header(t, m.Data).Get("Resent-To") != "undisclosed-recipients:;" {
		t.Errorf("override: %q %q", m.Rcpts, header(t, m.Data).Get("Resent-To"))
	}
}

func TestAmavisdReleaseWrongSecretRefused(t *testing.T) {
	r := newRig(t, true)
	rel := amavisdRelease(t, "amavisd-release", r.socket)
	wrong := "AAAAAAAAAAAA"
	out := run(t, rel, filepath.Base(r.file), wrong)
	if want := "450 4.5.0 Failure: Secret_id " + wrong + " does not match mail_id " + r.mailID + "\n"; out != want {
		t.Errorf("printed %q, want %q", out, want)
	}
	out = run(t, rel, filepath.Base(r.file))
	if want := "450 4.5.0 Failure: Secret_id is required, but missing\n"; out != want {
		t.Errorf("printed %q, want %q", out, want)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(r.hop.Messages()); n != 0 {
		t.Errorf("%d messages released with a wrong or missing secret_id", n)
	}
}

func TestAmavisdRequeueWithoutSecret(t *testing.T) {
	r := newRig(t, false) // Debian's AM.PDP-SOCK bank: auth_required_release => 0
	req := amavisdRelease(t, "amavisd-requeue", r.socket)
	out := run(t, req, filepath.Base(r.file))
	if !strings.HasPrefix(out, "250 2.0.0 from MTA("+r.requeue.Method.String()+"): 250 ") {
		t.Errorf("printed %q", out)
	}
	if m := r.requeue.Wait(t, 0); strings.Join(m.Rcpts, ",") != "x@example.com" {
		t.Errorf("requeued to %q", m.Rcpts)
	}
	if len(r.hop.Messages()) != 0 {
		t.Error("requeue must use requeue_method, not release_method")
	}
}

// asker sends requests (their attribute lines) on conn and returns each response's lines.
func asker(t *testing.T, conn net.Conn) func(lines ...string) string {
	br := bufio.NewReader(conn)
	return func(lines ...string) string {
		t.Helper()
		if _, err := conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		var resp []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l == "\r\n" {
				return strings.Join(resp, "\n")
			}
			resp = append(resp, strings.TrimSuffix(l, "\r\n"))
		}
	}
}

// A transcript over a raw connection: several requests on one connection, the encoding of
// the response, errors.
func TestTranscript(t *testing.T) {
	r := newRig(t, true)
	conn, err := net.Dial("unix", r.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := asker(t, conn)
	for _, tc := range []struct{ req, want string }{
		{"request=smtpd_access_policy\nprotocol_state=RCPT", "action=DUNNO"},
		{"request=release\nmail_id=../../etc", "setreply=450 4.5.0 Failure:%20Invalid%20mail_id%20'../../etc'\nreturn_value=tempfail\nexit_code=75"},
		{"request=release", "setreply=450 4.5.0 Failure:%20Missing%20'mail_id'%20field\nreturn_value=tempfail\nexit_code=75"},
		{"request=release\nmail_id=" + r.mailID + "\nsecret_id=" + r.secretID + "\nmail_file=../x", "setreply=450 4.5.0 Failure:%20Unsafe%20filename%20'../x'\nreturn_value=tempfail\nexit_code=75"},
		// quar_type Q (sql:) is served when storage_sql_dsn is set (amavis/sql_test.go)
		{"request=release\nmail_id=" + r.mailID + "\nsecret_id=" + r.secretID + "\nquar_type=Q", "setreply=450 4.5.0 Failure:%20quar_type%20Q:%20no%20storage_sql_dsn%20configured\nreturn_value=tempfail\nexit_code=75"},
		{"request=frobnicate", "setreply=450 4.5.0 Failure:%20unknown%20'request'%20value:%20frobnicate\nreturn_value=tempfail\nexit_code=75"},
		{"request=release\nmail_id=" + r.mailID + "\nsecret_id=" + r.secretID + "\nrequested_by=%3Cadmin@example.com%3E\nrecipient=%3Cz@example.com%3E",
			"setreply=250 2.0.0 from%20MTA(" + r.hop.Method.String() + "):%20250%202.0.0%20Ok:%20queued%20as%20SINKQ0001"},
	} {
		if got := ask(strings.Split(tc.req, "\n")...); got != tc.want {
			t.Errorf("request %q:\n got %q\nwant %q", tc.req, got, tc.want)
		}
	}
	h := header(t, r.hop.Wait(t, 0).Data)
	if h.Get("Resent-From") != "<admin@example.com>" || h.Get("Resent-Sender") != `"Content-filter at mx.example.com" <postmaster@mx.example.com>` ||
		h.Get("Resent-To") != "<z@example.com>" {
		t.Errorf("requested_by: %q", h)
	}
}

func TestNoRecipientsNothingToDo(t *testing.T) {
	r := newRig(t, false)
	// A stored file whose blocked list is empty (all recipients passed, e.g. passed spam).
	path := filepath.Join(r.dir, r.file)
	data, _ := os.ReadFile(path)
	data = bytes.Replace(data, []byte("X-Envelope-To-Blocked: <x@example.com>"), []byte("X-Envelope-To-Blocked: "), 1)
	os.WriteFile(path, data, 0o640)
	rel := amavisdRelease(t, "amavisd-release", r.socket)
	if out := run(t, rel, r.file); out != "250 2.5.0 No recipients, nothing to do\n" {
		t.Errorf("printed %q", out)
	}
}

func TestReleaseGzipAndMismatchedID(t *testing.T) {
	r := newRig(t, false)
	rel := amavisdRelease(t, "amavisd-release", r.socket)
	if out := run(t, rel, "spam-"+r.mailID+".gz"); !strings.HasPrefix(out, "250 2.0.0 from MTA(") {
		t.Errorf("release of the gzip copy printed %q", out)
	}
	if m := r.hop.Wait(t, 0); !bytes.Contains(m.Data, []byte(eicar)) || header(t, m.Data).Get("Resent-To") != "<x@example.com>" {
		t.Errorf("released from gzip: %q", m.Data)
	}
	// A file whose name promises another mail_id than the one stored in it.
	other := "AAAAAAAAAAAA"
	data, _ := os.ReadFile(filepath.Join(r.dir, r.file))
	os.WriteFile(filepath.Join(r.dir, "virus-"+other), data, 0o640)
	want := "450 4.5.0 Failure: Stored quarantine ID '" + r.mailID + "' does not match requested ID '" + other + "'\n"
	if out := run(t, rel, "virus-"+other); out != want {
		t.Errorf("printed %q, want %q", out, want)
	}
}

// amavisd-release over TCP ($socketname = '127.0.0.1:port').
func TestAmavisdReleaseOverTCP(t *testing.T) {
	r := newRig(t, true)
	out := run(t, amavisdRelease(t, "amavisd-release", r.tcp), filepath.Base(r.file), r.secretID)
	if !strings.HasPrefix(out, "250 2.0.0 from MTA(") {
		t.Errorf("printed %q", out)
	}
	// over TCP amavis's make_received_header_field names both ends of the connection
	_, port, _ := net.SplitHostPort(r.tcp)
	h := header(t, r.hop.Wait(t, 0).Data)
	newID := strings.TrimSuffix(strings.TrimPrefix(h.Get("Resent-Message-ID"), "<"+r.mailID+"-"), "@mx.example.com>")
	if got, want := h.Values("Received")[0], "from unknown ([127.0.0.1]) by localhost (mx.example.com [127.0.0.1]) (amavis, port "+port+
		") id "+newID+" for <x@example.com>; "+h.Get("Resent-Date"); got != want {
		t.Errorf("Received\n got %q\nwant %q", got, want)
	}
}
