package ampdp

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/quarantine"
	"amavisgo/smtp/smtptest"
)

// recorder keeps log records as "<level> (<log id>) <message>", with any other attribute
// after the message, as the daemon would show it.
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	id, extra := "", ""
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == LogIDKey {
			id = "(" + a.Value.String() + ") "
		} else {
			extra += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		}
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, rec.Level.String()+" "+id+rec.Message+extra)
	r.mu.Unlock()
	return nil
}

// request parses attribute lines into a Request.
func request(t *testing.T, lines ...string) Request {
	t.Helper()
	req, _, err := ReadRequest(bufio.NewReader(strings.NewReader(strings.Join(lines, "\n") + "\n\n")))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Releases log as amavis's In::AMPDP and msg_from_quarantine do: under the log id
// rel-<new mail_id>, "Quarantined message release (miscategorized): <mail_id> <sender> ->
// <the blocked recipients>, (excluded: <the others> )" whatever recipients the request names,
// no key=value tail; a failed or unknown request as "policy_server FAILED: ..." at level -2
// (slog's Error). Overriding recipients go out with their ORCPT, as amavis keeps one for each
// recipient of the request.
func TestReleaseLogLinesAndORCPT(t *testing.T) {
	r := newRig(t, false)
	hop := smtptest.Start(t, smtptest.Options{DSN: true})
	c, err := conf.Parse("t.toml", []byte("myhostname = \"mx.example.com\"\nQUARANTINEDIR = \""+r.dir+"\"\nquarantine_subdir_levels = 1\n"+
		"release_method = \"smtp:[127.0.0.1]:"+hop.Port()+"\"\nauth_required_release = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	sender := &amavissmtp.Sender{LocalhostName: "localhost"}
	rec := &recorder{}
	srv := &Server{Config: c, Store: quarantine.NewStore(c, sender), Sender: sender, Log: slog.New(rec)}
	resp := srv.handle(context.Background(), &c.Policy, request(t, "request=release", "mail_id="+r.mailID, "mail_file="+r.file,
		"recipient=<other@example.com>"), connInfo{})
	if len(resp) != 1 || !strings.HasPrefix(resp[0], "setreply=250 2.0.0 ") {
		t.Fatalf("response %q", resp)
	}
	srv.handle(context.Background(), &c.Policy, request(t, "request=release", "mail_id=AAAAAAAAAAAA", "mail_file=A/virus-AAAAAAAAAAAA"), connInfo{})
	srv.handle(context.Background(), &c.Policy, request(t, "request=frobnicate"), connInfo{})

	lines := hop.Lines()
	if !containsLine(lines, "RCPT TO:<other@example.com> ORCPT=rfc822;other@example.com") {
		t.Errorf("the overriding recipient went without its ORCPT:\n%s", strings.Join(lines, "\n"))
	}
	if containsPrefix(lines, "MAIL FROM:") && !containsLine(lines, "MAIL FROM:<bob@sender.example.org>") {
		t.Errorf("a release carries no MAIL parameters (amavis's is no initial submission):\n%s", strings.Join(lines, "\n"))
	}
	rec.mu.Lock()
	got := append([]string(nil), rec.lines...)
	rec.mu.Unlock()
	if len(got) < 3 {
		t.Fatalf("log %q", got)
	}
	var newID string
	if _, err := fmt.Sscanf(got[0], "INFO (rel-%12s", &newID); err != nil {
		t.Fatalf("first line %q: %v", got[0], err)
	}
	want := "INFO (rel-" + newID + ") Quarantined message release (miscategorized): " + r.mailID +
		" <bob@sender.example.org> -> <x@example.com>, (excluded: <ok@example.com> )"
	if got[0] != want {
		t.Errorf("release line\n got %q\nwant %q", got[0], want)
	}
	var failed []string
	for _, l := range got {
		if strings.HasPrefix(l, "ERROR ") {
			failed = append(failed, l)
		}
	}
	if len(failed) != 2 || !strings.HasPrefix(failed[0], "ERROR (rel-") ||
		!strings.Contains(failed[0], ") policy_server FAILED: File "+r.dir+"/A/virus-AAAAAAAAAAAA does not exist") ||
		failed[1] != "ERROR policy_server FAILED: unknown 'request' value: frobnicate" {
		t.Errorf("failures logged %q", failed)
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func containsPrefix(lines []string, p string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
