package scanners

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"amavisgo/internal/testenv"
)

// The EICAR string is assembled at run time: no file in the repository
// carries it, so that a developer's virus scanner leaves the tree alone.

func zipOf(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func tarGzOf(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return b.Bytes()
}

// mimeMessage is a message with one text part and one base64 attachment.
func mimeMessage(attName string, att []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(att)
	var lines []string
	for len(enc) > 76 {
		lines, enc = append(lines, enc[:76]), enc[76:]
	}
	lines = append(lines, enc)
	return []byte("From: <a@example.com>\nTo: <b@example.com>\nSubject: test\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\n\n" +
		"--b1\nContent-Type: text/plain\n\nSee the attachment.\n" +
		"--b1\nContent-Type: application/octet-stream; name=\"" + attName + "\"\n" +
		"Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"" + attName + "\"\n\n" +
		strings.Join(lines, "\n") + "\n--b1--\n")
}

// msgDir writes a message working directory (email.txt and parts/) as the
// unpacker leaves it and returns its path.
func msgDir(t testing.TB, files map[string][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "amavis-20260101T000000-01234-abcdefgh")
	if err := os.MkdirAll(filepath.Join(dir, "parts"), 0o750); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// messageCase is one test message and the files clamd should name.
type messageCase struct {
	name     string
	files    map[string][]byte
	infected []string // files (relative) reported FOUND
}

func messageCases(t testing.TB) []messageCase {
	eicar := []byte(testenv.EICAR)
	zipped := zipOf(t, "eicar.com", eicar)
	zipInZip := zipOf(t, "inner.zip", zipped)
	tgz := tarGzOf(t, "eicar.com", eicar)
	clean := []byte("From: <a@example.com>\nTo: <b@example.com>\nSubject: hello\n\nJust text.\n")
	return []messageCase{
		{"plain", map[string][]byte{
			"email.txt":  append([]byte("Subject: plain\n\n"), eicar...),
			"parts/p001": eicar,
		}, []string{"email.txt", "parts/p001"}},
		// A decoding gap: the unpacker left no parts, the raw message must
		// still be scanned (clamd decodes the base64 itself).
		{"base64 only in email.txt", map[string][]byte{
			"email.txt": mimeMessage("eicar.com", eicar),
		}, []string{"email.txt"}},
		{"zip", map[string][]byte{
			"email.txt":  mimeMessage("a.zip", zipped),
			"parts/p001": []byte("See the attachment.\n"),
			"parts/p002": zipped,
		}, []string{"email.txt", "parts/p002"}},
		{"zip in zip", map[string][]byte{
			"email.txt":  mimeMessage("outer.zip", zipInZip),
			"parts/p001": []byte("See the attachment.\n"),
			"parts/p002": zipInZip,
		}, []string{"email.txt", "parts/p002"}},
		{"tar.gz", map[string][]byte{
			"email.txt":  mimeMessage("a.tar.gz", tgz),
			"parts/p001": []byte("See the attachment.\n"),
			"parts/p002": tgz,
		}, []string{"email.txt", "parts/p002"}},
		{"clean", map[string][]byte{
			"email.txt":  clean,
			"parts/p001": []byte("Just text.\n"),
		}, nil},
	}
}

// foundLines is the %v we expect: one "<file>: <name> FOUND" per file.
func foundLines(files []string, virus string) string {
	var l []string
	for _, f := range files {
		l = append(l, f+": "+virus+" FOUND")
	}
	return strings.Join(l, "\n")
}

// sortedLines normalizes output whose line order depends on clamd threads.
func sortedLines(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

// logRecorder collects log lines for assertions.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(level int, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%d %s", level, fmt.Sprintf(format, args...)))
}

func (l *logRecorder) has(line string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if x == line {
			return true
		}
	}
	return false
}

func (l *logRecorder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
