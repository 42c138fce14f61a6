package quarantine

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen: any file reads without panic, and what is re-sent is the file's tail, unchanged.
func FuzzOpen(f *testing.F) {
	f.Add([]byte("Return-Path: <a@b>\nX-Envelope-To: <c@d>,\n <e@f>\nX-Quarantine-ID: <abc>\nReceived: x\n\nbody\n"))
	f.Add([]byte("X-Envelope-To-Blocked: \nX-Spam-Flag: NO\n continued"))
	f.Add([]byte("X-Quarantine-ID: <a>\n b"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "virus-x")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(path)
		if err != nil {
			return
		}
		defer st.Close()
		body, err := io.ReadAll(st.Body)
		if err != nil || !bytes.HasSuffix(data, body) {
			t.Fatalf("body %q is not the tail of %q (%v)", body, data, err)
		}
	})
}
