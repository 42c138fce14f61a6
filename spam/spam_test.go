package spam

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// message spools a test message (CRLF line ends) and describes it as the daemon would.
func message(t testing.TB, header, body string) *Message {
	t.Helper()
	text := strings.ReplaceAll(header+"\n"+body, "\n", "\r\n")
	f := filepath.Join(t.TempDir(), "email.txt")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(f), 0o755)
	hs := int64(strings.Index(text, "\r\n\r\n") + 4)
	return &Message{File: f, Size: int64(len(text)), HeaderSize: hs, Sender: "<sender@example.org>",
		Recips: []string{"<rcpt@example.com>"}, ClientAddr: "192.0.2.1", Helo: "mta.example.org", QueueID: "4ABC"}
}

const gtubeHeader = "From: sender@example.org\nTo: rcpt@example.com\nSubject: test\nDate: Fri, 04 Dec 2026 05:00:00 +0000\nMessage-ID: <gtube@example.org>\n"
const hamHeader = "From: sender@example.org\nTo: rcpt@example.com\nSubject: lunch\nDate: Fri, 04 Dec 2026 05:00:00 +0000\nMessage-ID: <ham.1234@example.org>\n"

func gtube(t *testing.T) *Message { return message(t, gtubeHeader, testenv.GTUBE+"\n") }
func ham(t *testing.T) *Message {
	return message(t, hamHeader, "Hello Bob,\nshall we have lunch on Friday at noon?\nAlice\n")
}

func set(t *testing.T, bodyLimit int64, e ...Entry) *Set {
	t.Helper()
	s, err := NewSet(e, bodyLimit)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func f64(x float64) *float64 { return &x }

// TestSpamd asks Debian's spamd, over TCP and over its unix socket.
func TestSpamd(t *testing.T) {
	sd := testenv.StartSpamd(t)
	tcp := Entry{Name: "Local spamd", Type: "Amavis::SpamControl::SpamdClient", Address: sd.Addr}
	t.Run("GTUBE", func(t *testing.T) {
		rep := set(t, 0, tcp).Check(ctx(t), gtube(t))
		r := rep.Results[0]
		if r.Err != nil || !r.Scored || r.Score < 1000 || rep.Score != r.Score || rep.Failed {
			t.Fatalf("%+v\n%s", rep, sd.Log())
		}
		if !regexp.MustCompile(`^(GTUBE|[A-Z0-9_]+)(,[A-Z0-9_]+)*$`).MatchString(r.Tests) || !strings.Contains(","+r.Tests+",", ",GTUBE,") {
			t.Errorf("tests %q", r.Tests)
		}
		// spamd's own text of the score, one decimal, as amavis logs it
		if want := fmt.Sprintf("Local spamd spamd score=%.1f, tests=%s", r.Score, r.Tests); r.Log != want {
			t.Errorf("log %q, want %q", r.Log, want)
		}
	})
	t.Run("unix socket, score_factor", func(t *testing.T) {
		e := Entry{Name: "sock", Type: "spamd", Socket: sd.Socket, ScoreFactor: f64(0.5)}
		rep := set(t, 0, e).Check(ctx(t), gtube(t))
		full := set(t, 0, tcp).Check(ctx(t), gtube(t))
		if rep.Failed || rep.Score != full.Score*0.5 {
			t.Fatalf("socket with factor 0.5: %v, tcp: %v (%v)", rep.Score, full.Score, rep.Results[0].Err)
		}
	})
	t.Run("REPORT", func(t *testing.T) {
		e := tcp
		e.Command = "REPORT"
		r := set(t, 0, e).Check(ctx(t), gtube(t)).Results[0]
		if r.Err != nil || !regexp.MustCompile(`^([A-Z0-9_]+=-?[0-9.]+,)*GTUBE=1000(,[A-Z0-9_]+=-?[0-9.]+)*$`).MatchString(r.Tests) {
			t.Fatalf("tests %q, %v", r.Tests, r.Err)
		}
	})
	t.Run("ham", func(t *testing.T) {
		rep := set(t, 0, tcp).Check(ctx(t), ham(t))
		if rep.Failed || rep.Score >= 5 || strings.Contains(rep.Results[0].Tests, "GTUBE") {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("truncated at mail_body_size_limit", func(t *testing.T) {
		body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", 5000) // 290 kB
		m := message(t, hamHeader, testenv.GTUBE+"\n"+body)
		rep := set(t, 10000, tcp).Check(ctx(t), m)
		if rep.Failed || rep.Score < 1000 {
			t.Fatalf("%+v", rep)
		}
		lim := sizeLimit(m, 64*1024, 10000, 1)
		if lim == 0 || lim >= m.Size {
			t.Fatalf("limit %d for %d bytes", lim, m.Size)
		}
		// spamd logs the size it got: the limit, not the message
		if !strings.Contains(sd.Log(), fmt.Sprintf(" %d bytes.", lim)) {
			t.Errorf("spamd did not log a message of %d bytes:\n%s", lim, sd.Log())
		}
	})
}

// TestRspamd asks Debian's rspamd.
func TestRspamd(t *testing.T) {
	rs := testenv.StartRspamd(t)
	e := Entry{Name: "Local Rspamd", Type: "Amavis::SpamControl::RspamdClient", URL: "http://" + rs.Addr + "/checkv2",
		ScoreFactor: f64(6.31 / 15), MTAName: "mx.example.com"}
	t.Run("GTUBE", func(t *testing.T) {
		rep := set(t, 0, e).Check(ctx(t), gtube(t))
		r := rep.Results[0]
		if r.Err != nil || PerlNumber(r.Score) != "6.31" || r.Tests != "GTUBE=0" {
			t.Fatalf("%+v", rep)
		}
		if want := "Local Rspamd rspamd skipped/score 6.31/6.31 (reject) GTUBE=0"; r.Log != want {
			t.Errorf("log %q, want %q", r.Log, want)
		}
	})
	t.Run("ham", func(t *testing.T) {
		m := ham(t)
		m.ClientAddr, m.Helo = "127.0.0.1", "" // a local client: no HFILTER points
		rep := set(t, 0, e).Check(ctx(t), m)
		r := rep.Results[0]
		if r.Err != nil || r.Score > 2 || !strings.Contains(r.Log, "(no action)") || !strings.Contains(r.Tests, "MIME_GOOD=-0.1") {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("request meta", func(t *testing.T) {
		m := gtube(t)
		m.QueueID = "4META1"
		if rep := set(t, 0, e).Check(ctx(t), m); rep.Failed {
			t.Fatal(rep.FailReason())
		}
		// rspamd logs what amavis's request headers told it: Queue-Id, IP, From, Rcpt
		want := "qid: <4META1>, ip: 192.0.2.1, from: <sender@example.org>, (default: S (reject): [15.00/15.00] [GTUBE(0.00){}]), len: " +
			strconv.FormatInt(m.Size, 10)
		if log := rs.Log(); !strings.Contains(log, want) || !strings.Contains(log, "rcpts: <rcpt@example.com>,") {
			t.Errorf("rspamd's log lacks %q:\n%s", want, log)
		}
	})
	t.Run("300 KiB", func(t *testing.T) {
		body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", 5300)
		m := message(t, gtubeHeader, testenv.GTUBE+"\n"+body)
		before := rs.Scanned(t)
		rep := set(t, 0, e).Check(ctx(t), m) // as amavis: skipped, score 0
		if after := rs.Scanned(t); after != before || rep.Score != 0 || rep.Failed {
			t.Fatalf("amavis's default: scanned %d -> %d, %+v", before, after, rep)
		}
		whole := e
		whole.WholeMessage = true
		rep = set(t, 0, whole).Check(ctx(t), m)
		if after := rs.Scanned(t); after != before+1 || rep.Failed || !strings.Contains(rep.Results[0].Tests, "MIME_GOOD=") {
			t.Fatalf("whole_message: scanned %d -> %d, %+v", before, after, rep)
		}
	})
	t.Run("scores add up", func(t *testing.T) {
		rep := set(t, 0, e, e).Check(ctx(t), gtube(t))
		if len(rep.Results) != 2 || PerlNumber(rep.Score) != "12.62" || strings.Join(rep.Tests, ",") != "GTUBE=0,GTUBE=0" {
			t.Fatalf("%+v", rep)
		}
	})
}

// TestFailures: an engine that is down, hangs or answers garbage fails the check, with
// score 0, within the time given.
func TestFailures(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		l.Close()
		return a
	}()
	serve := func(answer string) string { return testenv.FaultServer(t, answer) }
	garbageHTTP := serve("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n<html>oops</html>")
	hang := testenv.HangingServer(t)
	for _, tc := range []struct {
		name string
		e    Entry
		want string
	}{
		{"spamd down", Entry{Name: "s", Type: "spamd", Address: closed}, "Can't connect to spamd"},
		{"spamd garbage", Entry{Name: "s", Type: "spamd", Address: serve("HELLO\r\n\r\nx")}, "Error in spamd resp"},
		{"spamd failure", Entry{Name: "s", Type: "spamd", Address: serve("SPAMD/1.1 76 Bad header line\r\n\r\n")}, "Failure reported by spamd"},
		{"spamd hangs", Entry{Name: "s", Type: "spamd", Address: hang}, "timeout"},
		{"rspamd down", Entry{Name: "r", Type: "rspamd", URL: "http://" + closed + "/checkv2"}, "Error calling rspamd"},
		{"rspamd garbage", Entry{Name: "r", Type: "rspamd", URL: "http://" + garbageHTTP + "/checkv2"}, "bad rspamd response"},
		{"rspamd hangs", Entry{Name: "r", Type: "rspamd", URL: "http://" + hang + "/checkv2", Timeout: 1}, "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second) // child_timeout
			defer cancel()
			start := time.Now()
			rep := set(t, 0, tc.e).Check(c, gtube(t))
			r := rep.Results[0]
			if !rep.Failed || r.Scored || rep.Score != 0 || r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
				t.Fatalf("%+v (err %v), want a failure with %q", rep, r.Err, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
