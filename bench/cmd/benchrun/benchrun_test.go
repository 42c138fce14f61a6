package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"amavisgo/bench/loadgen"
	"amavisgo/bench/report"
)

// requireProgram fails under CI=true and skips elsewhere when an external
// program the test talks to is missing.
func requireProgram(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found; CI=true makes this a failure", path)
		}
		t.Skipf("%s not found", path)
	}
}

func TestMessageSizes(t *testing.T) {
	if n := len(plainMessage(2048)); n != 2048 {
		t.Errorf("2KB message is %d bytes", n)
	}
	if n := len(largeMessage(100 * 1024)); n < 100*1024-1024 || n > 100*1024+1024 {
		t.Errorf("100KB message is %d bytes", n)
	}
	if n := len(attachedMessage(7 << 20)); n < 9_600_000 || n > 10_000_000 {
		t.Errorf("10MB message is %d bytes", n)
	}
}

// attachments parses a message as a mail client would and returns the
// decoded contents of its attachments.
func attachments(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.FileName() == "" {
			continue
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
}

func TestEicarMessageCarriesEicar(t *testing.T) {
	att := attachments(t, eicarMessage())
	if len(att) != 1 || string(att[0]) != eicar {
		t.Fatalf("attachments %q, want the EICAR string", att)
	}
	big := attachments(t, largeMessage(100*1024))
	if len(big) != 1 || len(big[0]) < 70*1024 || bytes.Contains(big[0], []byte("EICAR")) {
		t.Fatalf("100KB message: %d attachments, first %d bytes", len(big), len(big[0]))
	}
}

// TestPerlConfigAccepted has the Perl daemon itself check the configuration
// the bench writes for it.
func TestPerlConfigAccepted(t *testing.T) {
	const amavisd = "/usr/sbin/amavisd"
	requireProgram(t, amavisd)
	for _, servers := range []int{1, 32} {
		// amavisd reads its configuration after switching to the amavis user.
		dir, err := os.MkdirTemp("", "perlconf")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		conf := filepath.Join(dir, "amavisd.conf")
		text := perlConfig(t.TempDir(), 10024, servers, "127.0.0.1:10025", "/run/clamd.sock")
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(amavisd, "-c", conf, "test-config").CombinedOutput(); err != nil {
			t.Fatalf("amavisd test-config (max_servers %d): %v\n%s", servers, err, out)
		}
		if got := strings.Contains(text, "$max_requests = 0;"); got != (servers == 1) {
			t.Errorf("max_servers %d: $max_requests = 0 present: %v", servers, got)
		}
	}
}

// TestSinkCounts checks that the bench reads smtp-sink's counters, which
// it uses to check that every clean message went through the filter.
func TestSinkCounts(t *testing.T) {
	requireProgram(t, "/usr/sbin/smtp-sink")
	if os.Geteuid() != 0 {
		t.Skip("smtp-sink -u nobody needs root")
	}
	s, err := startSink(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(5 * time.Second)
	if _, err := loadgen.Run(loadgen.Config{Addr: s.addr, Sessions: 2, Count: 7, From: envFrom, To: envTo,
		Messages: [][]byte{plainMessage(2048)}}); err != nil {
		t.Fatal(err)
	}
	if got := s.waitMessages(7); got != 7 {
		t.Errorf("sink counted %d messages, want 7", got)
	}
}

func TestSplitCR(t *testing.T) {
	in := "sess=1 quit=0 mesg=1\rsess=1 quit=1 mesg=2\r"
	var got []string
	for data := []byte(in); len(data) > 0; {
		adv, tok, _ := splitCR(data, true)
		got = append(got, string(tok))
		data = data[adv:]
	}
	if strings.Join(got, "|") != "sess=1 quit=0 mesg=1|sess=1 quit=1 mesg=2" {
		t.Errorf("tokens %q", got)
	}
}

// TestInstallDepsFound: from the bench module, as make bench runs it, the repository's
// install script is found; with every program present nothing is run.
func TestInstallDepsFound(t *testing.T) {
	p, err := findUp(filepath.Join("scripts", "install-deps"))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.Abs("../../../scripts/install-deps"); p != want {
		t.Errorf("found %s, want %s", p, want)
	}
	if err := ensurePackages(nil); err != nil {
		t.Error(err)
	}
	cfg := &config{filters: []string{report.Perl}, perl: "/nonexistent/no-such-amavisd"}
	if m := missingPrograms(cfg); !slices.Contains(m, "/nonexistent/no-such-amavisd") {
		t.Errorf("missingPrograms = %q, want the Perl daemon listed", m)
	}
}

// TestFloorFilter runs both floors between a real clamd and smtp-sink: clean mail reaches the
// sink, EICAR is discarded (so the floors' figures are those of a scanning filter), and each
// session's directory goes with the session.
func TestFloorFilter(t *testing.T) {
	requireProgram(t, "/usr/sbin/smtp-sink")
	requireProgram(t, "/usr/sbin/clamd")
	if os.Geteuid() != 0 {
		t.Skip("smtp-sink -u nobody and the root clamd need root")
	}
	dir, err := os.MkdirTemp("", "floor") // short: clamd's socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cl, err := startClamd(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.stop(10 * time.Second)
	s, err := startSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(5 * time.Second)
	bin, err := buildFloor(dir)
	if err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{plainMessage(2048), largeMessage(100 * 1024), []byte("Subject: dots\n\n.leading dot\n..two\n")}
	for _, parts := range []bool{false, true} {
		t.Run(fmt.Sprintf("parts=%t", parts), func(t *testing.T) {
			work := filepath.Join(dir, fmt.Sprint(parts))
			if err := os.Mkdir(work, 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := floorDaemon{bin: bin, parts: parts}.start(work, 2, s.addr, cl.socket, spamSetup{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.stop(5 * time.Second)
			before := s.settled()
			res, err := loadgen.Run(loadgen.Config{Addr: f.addr, Sessions: 2, Count: 9, From: envFrom, To: envTo,
				Messages: msgs, Pick: func(i int) int { return i % len(msgs) }})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.waitMessages(before+9) - before; got != 9 || slices.Max(res.Discarded) != 0 {
				t.Errorf("sink counted %d messages (want 9), discarded %v", got, res.Discarded)
			}
			if err := checkScanning(f.addr); err != nil {
				t.Error(err)
			}
			if got := s.settled() - before; got != 9 {
				t.Errorf("after EICAR the sink counted %d messages, want 9", got)
			}
			// the sessions are over: their directories go (the only entry left is the floor's log)
			deadline := time.Now().Add(10 * time.Second)
			for {
				ents, _ := os.ReadDir(work)
				if len(ents) == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("left in the floor's TEMPBASE: %v", ents)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
