package unpack

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// procStatusKB reads a "Vm..." figure of /proc/self/status in KiB.
func procStatusKB(t *testing.T, key string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skipf("no %s in /proc/self/status", key)
	return 0
}

// writeLargeMessage writes a multipart message straight to a file (the test holds no copy):
// a 4 MiB 7bit text part, then a base64 attachment of n pseudo-random bytes, whose SHA-256 it
// returns.
func writeLargeMessage(t *testing.T, path string, n int) [32]byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("From: sender@example.com\r\nSubject: large\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n")
	for range 4 << 20 / 64 {
		w.WriteString(strings.Repeat("text ", 12) + "line\r\n")
	}
	w.WriteString("--b1\r\nContent-Type: application/octet-stream; name=\"big.dat\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	sum := sha256.New()
	r := rand.New(rand.NewPCG(5, 6))
	raw := make([]byte, 57) // one 76-character line
	for done := 0; done < n; done += len(raw) {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		sum.Write(raw)
		w.WriteString(base64.StdEncoding.EncodeToString(raw) + "\r\n")
	}
	w.WriteString("--b1--\r\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return [32]byte(sum.Sum(nil))
}

// A large message is not held in memory while decoded: the process's peak resident memory
// grows by a few MiB while a 24 MiB message (a 4 MiB text part, a 20 MiB base64 attachment)
// is unpacked, not by the size of the message (its mapped file stayed resident, about 26 MiB
// more, before its pages were given back as walked). The attachment still decodes whole.
func TestLargeMessageNotResident(t *testing.T) {
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	n := 57 * (15 << 20 / 57) // 20 MiB of base64, in whole lines
	want := writeLargeMessage(t, email, n)
	u := New(Limits{}, nil, nil)
	// a first run warms the pools and the heap
	if _, err := u.Unpack(context.Background(), email, filepath.Join(dir, "warm")); err != nil {
		t.Fatal(err)
	}
	// "5" resets the peak (VmHWM) to the current resident size (proc(5), clear_refs)
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	before := procStatusKB(t, "VmRSS")
	r, err := u.Unpack(context.Background(), email, filepath.Join(dir, "parts"))
	if err != nil {
		t.Fatal(err)
	}
	grew := procStatusKB(t, "VmHWM") - before
	t.Logf("peak RSS grew by %d KiB while a %d MiB message was unpacked", grew, r.Root.Size>>20)
	if grew > 8<<10 {
		t.Errorf("peak RSS grew by %d KiB while unpacking, want at most 8 MiB", grew)
	}
	found := false
	for _, p := range r.Parts {
		if p.Size != int64(n) {
			continue
		}
		f, err := os.Open(p.Path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		found = [32]byte(h.Sum(nil)) == want
	}
	if !found {
		t.Errorf("no part holds the decoded attachment: %s", describe(r))
	}
}
