package amavis

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amavisgo/smtp/smtptest"
)

// Golden transcripts (testdata/transcripts/*.txt) are literal protocol dialogs:
//
//	C: a line the client sends (consecutive C: lines go out in one write: pipelining)
//	S: a line the server must answer, after normalization (see normalizer)
//	N: a line the next hop must have received, in order, after the dialog
//	L: a main log line (Passed/Blocked) the daemon must have written, in order
//	#  a comment; "@lmtp-hop" makes the next hop an LMTP server, "@dsn-hop" announces DSN
//
// The test fails on any difference; the next hop is smtptest (go-smtp) and records what it
// received.
func TestGoldenTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runTranscript(t, f)
		})
	}
}

func runTranscript(t *testing.T, file string) {
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var opts smtptest.Options
	if strings.Contains(string(text), "@lmtp-hop") {
		opts.LMTP = true
	}
	if strings.Contains(string(text), "@dsn-hop") {
		opts.DSN = true
	}
	h := hop(t, opts)
	extra := ""
	if opts.LMTP {
		extra = `forward_method = "lmtp:[127.0.0.1]:` + h.Port() + `"`
	}
	td := startDaemon(t, h.Addr, extra)
	norm := newNormalizer(td)
	c, r := dial(t, td.addr)
	var pending []string
	var wantN, wantL []string
	flush := func() {
		if len(pending) > 0 {
			send(t, c, pending...)
			pending = nil
		}
	}
	for i, line := range strings.Split(strings.TrimRight(string(text), "\n"), "\n") {
		kind, rest, _ := strings.Cut(line, ":")
		rest = strings.TrimPrefix(rest, " ")
		switch kind {
		case "C":
			pending = append(pending, rest)
		case "S":
			flush()
			got, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s:%d: want %q, read error %v", file, i+1, rest, err)
			}
			if g := norm.line(strings.TrimSuffix(got, "\r\n")); g != rest {
				t.Fatalf("%s:%d: server said\n  %q\nwant\n  %q", file, i+1, g, rest)
			}
		case "N":
			wantN = append(wantN, rest)
		case "L":
			wantL = append(wantL, rest)
		default:
			if line != "" && !strings.HasPrefix(line, "#") {
				t.Fatalf("%s:%d: bad transcript line %q", file, i+1, line)
			}
		}
	}
	flush()
	// After QUIT (or a 421) the server closes: nothing more may come.
	if extra, err := bufio.NewReader(r).ReadString('\n'); err == nil {
		t.Fatalf("unexpected extra reply %q", extra)
	}
	var gotN []string
	for _, l := range h.Lines() {
		gotN = append(gotN, norm.line(l))
	}
	compareLines(t, "next hop received", gotN, wantN)
	var gotL []string
	waitFor(t, "log lines", func() bool { return len(mainLogLines(td.log.String())) >= len(wantL) })
	for _, l := range mainLogLines(td.log.String()) {
		gotL = append(gotL, norm.line(l))
	}
	compareLines(t, "main log lines", gotL, wantL)
}

func compareLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Fatalf("%s, line %d:\n  got  %q\n  want %q\nall got:\n  %s", what, i+1, g, w, strings.Join(got, "\n  "))
		}
	}
}
