package quarantine

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/delivery/deliverytest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// eicarMessage is an EICAR message blocked for x@example.com, with the fields amavis (Amavis.pm's
// do_quarantine) gives its quarantined copy; its original is written with CRLF line ends, as a
// spool may hold it, to show that the stored copy has LF ends as amavis's.
func eicarMessage(t *testing.T) *Message {
	t.Helper()
	orig, err := os.ReadFile("testdata/eicar.eml")
	if err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(t.TempDir(), "email.txt")
	if err := os.WriteFile(spool, bytes.ReplaceAll(orig, []byte("\n"), []byte("\r\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Message{
		MailID: "n8rZJ2zBYamo", LogID: "12345-01", Received: time.Date(2026, 11, 22, 9, 44, 18, 0, time.UTC),
		Sender: "bob@sender.example.org", Recipients: []string{"x@example.com", "y@example.com"},
		Blocked: []string{"x@example.com"},
		Fields: []string{
			"X-Amavis-Alert: INFECTED, message contains virus: Eicar-Test-Signature",
			"X-Spam-Flag: NO", "X-Spam-Score: 0", "X-Spam-Level:",
			"X-Spam-Status: No, score=x tag=x tag2=x kill=x tests=[] autolearn=unavailable",
		},
		ReceivedField: "Received: from mta.example.com ([127.0.0.1])\n by localhost (mx.example.com [127.0.0.1]) (amavis, port 10024) with ESMTP\n id n8rZJ2zBYamo; Sun, 22 Nov 2026 09:44:18 +0000 (UTC)",
		Original:      spool,
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestLocalQuarantineGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		levels int
		kind   Kind
		want   Location
	}{
		{"flat", 0, Virus, Location{Name: "virus-n8rZJ2zBYamo", Type: 'F'}},
		{"subdir", 1, Virus, Location{Name: "n/virus-n8rZJ2zBYamo", Type: 'F'}},
		{"spam gz", 1, Spam, Location{Name: "n/spam-n8rZJ2zBYamo.gz", Type: 'Z'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := &Store{Dir: dir, SubdirLevels: tc.levels}
			p := &conf.Default().Policy
			m := eicarMessage(t)
			locs, err := s.Quarantine(context.Background(), p, tc.kind, m, m.Blocked)
			if err != nil {
				t.Fatal(err)
			}
			if len(locs) != 1 || locs[0] != tc.want {
				t.Fatalf("locations = %+v, want %+v", locs, tc.want)
			}
			got, err := os.ReadFile(filepath.Join(dir, locs[0].Name))
			if err != nil {
				t.Fatal(err)
			}
			if locs[0].Type == 'Z' {
				z, err := gzip.NewReader(bytes.NewReader(got))
				if err != nil {
					t.Fatal(err)
				}
				got, _ = io.ReadAll(z)
				got = bytes.Replace(got, []byte("Delivered-To: spam-quarantine"), []byte("Delivered-To: virus-quarantine"), 1)
			}
			golden(t, "virus-n8rZJ2zBYamo.golden", got)
			fi, _ := os.Stat(filepath.Join(dir, locs[0].Name))
			if fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", fi.Mode().Perm())
			}
			leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".tmp-*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

func TestNoQuarantineDirSkips(t *testing.T) {
	s := &Store{}
	m := eicarMessage(t)
	locs, err := s.Quarantine(context.Background(), &conf.Default().Policy, Virus, m, m.Blocked)
	if err != nil || len(locs) != 0 {
		t.Errorf("without QUARANTINEDIR: %v %v, want nothing and no error", locs, err)
	}
	locs, err = s.Quarantine(context.Background(), &conf.Default().Policy, Unchecked, m, m.Blocked)
	if err != nil || len(locs) != 0 {
		t.Errorf("unchecked has no method by default: %v %v", locs, err)
	}
}

// A quarantine directory we cannot write: an error that maps to 451 and no file, not even a
// half-written one; writable again, the retry succeeds.
func TestReadOnlyQuarantineDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Log("running as root: permissions do not stop root, so the directory is made unusable by replacing it with a file")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "virusmails")
	os.Mkdir(dir, 0o750)
	makeUnwritable := func() {
		if os.Geteuid() == 0 {
			os.RemoveAll(dir)
			os.WriteFile(dir, nil, 0o400)
		} else {
			os.Chmod(dir, 0o500)
		}
	}
	makeWritable := func() {
		if os.Geteuid() == 0 {
			os.Remove(dir)
			os.Mkdir(dir, 0o750)
		} else {
			os.Chmod(dir, 0o750)
		}
	}
	s := &Store{Dir: dir}
	m := eicarMessage(t)
	p := &conf.Default().Policy

	makeUnwritable()
	_, err := s.Quarantine(context.Background(), p, Virus, m, m.Blocked)
	var qe *Error
	if !errors.As(err, &qe) {
		t.Fatalf("err = %v, want a quarantine *Error", err)
	}
	if got, want := qe.Reply("12345-01").String(), "451 4.5.0 Error in processing, id=12345-01, quar+notif FAILED: temporarily unable to quarantine"; got != want {
		t.Errorf("reply = %q, want %q", got, want)
	}
	if !strings.Contains(qe.Detail, "Local delivery(1) to "+filepath.Join(dir, "virus-n8rZJ2zBYamo")+" failed") {
		t.Errorf("detail = %q", qe.Detail)
	}
	if files, _ := filepath.Glob(filepath.Join(base, "*", "*")); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}

	makeWritable()
	locs, err := s.Quarantine(context.Background(), p, Virus, m, m.Blocked)
	if err != nil || len(locs) != 1 {
		t.Fatalf("retry: %v %v", locs, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "virus-n8rZJ2zBYamo")); err != nil {
		t.Error(err)
	}
	// Failing in the middle of the copy (the spool file vanished) leaves no file either.
	gone := *m
	gone.MailID, gone.Original = "Xq1zz2zBYamo", filepath.Join(base, "missing-email.txt")
	if _, err := s.Quarantine(context.Background(), p, Virus, &gone, gone.Blocked); !errors.As(err, &qe) {
		t.Errorf("vanished spool file: %v", err)
	}
	if files, _ := os.ReadDir(dir); len(files) != 1 {
		t.Errorf("after a failed copy the directory holds %d entries, want only the earlier file", len(files))
	}
	// The same mail_id again must not overwrite the first copy.
	if _, err := s.Quarantine(context.Background(), p, Virus, m, m.Blocked); err == nil ||
		!strings.Contains(err.Error(), "refuse to overwrite") {
		t.Errorf("second write of the same name: %v", err)
	}
}

func TestQuarantineToAddress(t *testing.T) {
	hop := deliverytest.Start(t)
	s := &Store{Dir: t.TempDir(), Sender: &amavissmtp.Sender{LocalhostName: "localhost"}, Notify: hop.Method}
	c, err := conf.Parse("q.toml", []byte("virus_quarantine_to = \"quarantine@example.com\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := eicarMessage(t)
	locs, err := s.Quarantine(context.Background(), &c.Policy, Virus, m, m.Blocked)
	if err != nil || len(locs) != 1 || locs[0] != (Location{Name: "quarantine@example.com", Type: 'M'}) {
		t.Fatalf("%+v %v", locs, err)
	}
	got := hop.Wait(t, 0)
	if got.From != "bob@sender.example.org" || got.Rcpts[0] != "quarantine@example.com" ||
		!bytes.HasPrefix(got.Data, []byte("Return-Path: <bob@sender.example.org>\r\nDelivered-To: quarantine@example.com\r\n")) {
		t.Errorf("sent %q %q %q", got.From, got.Rcpts, got.Data[:80])
	}
	hop.RejectRcpt("quarantine@example.com", 452, [3]int{4, 2, 2}, "mailbox full")
	_, err = s.Quarantine(context.Background(), &c.Policy, Virus, m, m.Blocked)
	var qe *Error
	if !errors.As(err, &qe) || !qe.Temporary || !strings.Contains(qe.Detail, "452 4.2.2 mailbox full") {
		t.Errorf("rejected quarantine address: %v", err)
	}
}

func TestOpenReadsEnvelopeBack(t *testing.T) {
	dir := t.TempDir()
	s := &Store{Dir: dir, SubdirLevels: 1}
	m := eicarMessage(t)
	m.Sender = `odd "one"@sender.example.org`
	for _, kind := range []Kind{Virus, Spam} {
		if _, err := s.Quarantine(context.Background(), &conf.Default().Policy, kind, m, m.Blocked); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		file string
		gz   bool
		want string
	}{
		{"virus-n8rZJ2zBYamo", false, "n/virus-n8rZJ2zBYamo"},
		{"n/virus-n8rZJ2zBYamo", false, "n/virus-n8rZJ2zBYamo"},
		{"spam-n8rZJ2zBYamo.gz", true, "n/spam-n8rZJ2zBYamo.gz"},
		{"", true, "n/spam-n8rZJ2zBYamo.gz"},
		{"", false, "n/virus-n8rZJ2zBYamo"},
	} {
		path, err := s.Find("n8rZJ2zBYamo", tc.file, tc.gz)
		if err != nil || path != filepath.Join(dir, tc.want) {
			t.Fatalf("Find(%q) = %q %v", tc.file, path, err)
		}
		st, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(st.Body)
		st.Close()
		if st.Sender != m.Sender || strings.Join(st.Recipients, ",") != "x@example.com,y@example.com" ||
			strings.Join(st.Blocked, ",") != "x@example.com" || st.QuarantineID != "n8rZJ2zBYamo" {
			t.Errorf("%s: envelope %+v", tc.want, st)
		}
		if !bytes.HasPrefix(body, []byte("Received: from mta.example.com ([127.0.0.1])\n by localhost")) ||
			!bytes.HasSuffix(body, []byte("\n.a line with a leading dot\n")) {
			t.Errorf("%s: body %q", tc.want, body)
		}
	}
	for _, bad := range []string{"../etc/passwd", "/etc/passwd", "n/../../x", ".hidden"} {
		if _, err := s.Find("n8rZJ2zBYamo", bad, false); err == nil || !strings.Contains(err.Error(), "Unsafe filename") {
			t.Errorf("Find(%q): %v", bad, err)
		}
	}
	if _, err := s.Find("AAAAAAAAAAAA", "", false); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLFWriter(t *testing.T) {
	for _, chunks := range [][]string{{"a\r\nb\r", "\nc\rd\r\n"}, {"a\r", "\nb\r\nc\r", "d\r\n"}} {
		var b bytes.Buffer
		w := &lfWriter{w: &b}
		for _, c := range chunks {
			w.Write([]byte(c))
		}
		if want := strings.ReplaceAll(strings.Join(chunks, ""), "\r\n", "\n"); b.String() != want {
			t.Errorf("%q -> %q, want %q", chunks, b.String(), want)
		}
	}
}

// Recipients whose quarantine-to names differ still share one local file.
func TestOneLocalFilePerMessage(t *testing.T) {
	c, err := conf.Parse("q.toml", []byte("[virus_quarantine_to]\n\"x@example.com\" = \"virus-quarantine\"\n\"y@example.com\" = \"other-quarantine\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{Dir: t.TempDir()}
	m := eicarMessage(t)
	m.Blocked = m.Recipients
	locs, err := s.Quarantine(context.Background(), &c.Policy, Virus, m, m.Blocked)
	if err != nil || len(locs) != 1 || locs[0].Name != "virus-n8rZJ2zBYamo" {
		t.Errorf("%+v %v", locs, err)
	}
}
