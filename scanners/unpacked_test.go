package scanners

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"amavisgo/internal/testenv"
	"amavisgo/unpack"
)

// TestClamdUnpackedMessages runs the whole path a message takes: the real unpacker writes
// parts/ from email.txt, then clamd scans the directory (CONTSCAN, MULTISCAN) or every file
// (INSTREAM). EICAR plain, base64, in a zip, a zip in a zip and a tar.gz is found, with its
// name, in email.txt and in the part the unpacker extracted; a clean message is clean.
func TestClamdUnpackedMessages(t *testing.T) {
	c := testenv.StartClamd(t)
	eicar := []byte(testenv.EICAR)
	zipped := zipOf(t, "eicar.com", eicar)
	messages := []struct {
		name     string
		email    []byte
		infected bool
	}{
		{"plain", append([]byte("From: <a@example.com>\nTo: <b@example.com>\nSubject: plain\n\n"), eicar...), true},
		{"base64", mimeMessage("eicar.com", eicar), true},
		{"zip", mimeMessage("a.zip", zipped), true},
		{"zip in zip", mimeMessage("outer.zip", zipOf(t, "inner.zip", zipped)), true},
		{"tar.gz", mimeMessage("a.tar.gz", tarGzOf(t, "eicar.com", eicar)), true},
		{"clean", mimeMessage("notes.txt", []byte("Nothing to see here.\n")), false},
	}
	entries := []Entry{
		debianClamd(c.Socket),
		{Name: "clamd-multi", Sockets: []string{c.TCPAddr}, Query: "MULTISCAN {}"},
		{Name: "clamd-stream", Sockets: []string{c.TCPAddr}, Query: "INSTREAM"},
	}
	u := unpack.New(unpack.Limits{MaxLevels: 14, MaxFiles: 1500, MinExpansionQuota: 100 << 10, MaxExpansionQuota: 300 << 20}, nil, nil)
	for _, m := range messages {
		dir := filepath.Join(t.TempDir(), "amavis-20260101T000000-01234-abcdefgh")
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		email := filepath.Join(dir, "email.txt")
		if err := os.WriteFile(email, m.email, 0o640); err != nil {
			t.Fatal(err)
		}
		res, err := u.Unpack(context.Background(), email, filepath.Join(dir, "parts"))
		if err != nil || res.Hold != "" {
			t.Fatalf("%s: Unpack: %v, hold %q", m.name, err, res.Hold)
		}
		// What clamd must name: the raw message, and every part holding the string.
		want := []string{"email.txt"}
		extracted := false
		for _, p := range res.Parts {
			if p.Path == "" || p == res.Root {
				continue
			}
			b, err := os.ReadFile(p.Path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, eicar) {
				want = append(want, "parts/"+p.Name)
			}
			extracted = extracted || bytes.Equal(b, eicar)
		}
		if m.infected && !extracted {
			t.Fatalf("%s: the unpacker left no part that is exactly EICAR", m.name)
		}
		for _, e := range entries {
			t.Run(m.name+"/"+e.Name, func(t *testing.T) {
				set, err := NewSet([]Entry{e}, nil, Options{})
				if err != nil {
					t.Fatal(err)
				}
				rep := set.Scan(context.Background(), dir)
				if rep.Failed || rep.Engines[0].Err != nil {
					t.Fatalf("scan failed: %+v", rep)
				}
				if !m.infected {
					if rep.Infected || rep.Output != ".: OK\n" && rep.Output != "email.txt: OK\n" {
						t.Errorf("clean message: Infected=%v Output=%q", rep.Infected, rep.Output)
					}
					return
				}
				if !rep.Infected || !slices.Equal(rep.Viruses, []string{c.VirusName}) || !slices.Equal(rep.Detectors, []string{e.Name}) {
					t.Errorf("Infected=%v Viruses=%q Detectors=%q; want %q by %q", rep.Infected, rep.Viruses, rep.Detectors, c.VirusName, e.Name)
				}
				slices.Sort(want)
				if got, w := sortedLines(rep.Output), foundLines(want, c.VirusName); got != w {
					t.Errorf("Output:\n%s\nwant:\n%s", got, w)
				}
			})
		}
	}
}
