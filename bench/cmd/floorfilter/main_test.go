package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteParts: the leaves of a multipart message come out decoded, in order.
func TestWriteParts(t *testing.T) {
	dir := t.TempDir()
	payload := bytes.Repeat([]byte{0, 1, 2, 250, 251, '\r', '\n'}, 3000)
	b64 := base64.StdEncoding.EncodeToString(payload)
	var lines []byte
	for len(b64) > 76 {
		lines, b64 = append(append(lines, b64[:76]...), "\r\n"...), b64[76:]
	}
	lines = append(append(lines, b64...), "\r\n"...)
	msg := "Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n" +
		"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nau lait\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + string(lines) +
		"--b--\r\n"
	file := filepath.Join(dir, "email.txt")
	if err := os.WriteFile(file, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	parts := filepath.Join(dir, "parts")
	if err := writeParts(file, parts); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"p001": []byte("café au lait"), "p002": payload} {
		got, err := os.ReadFile(filepath.Join(parts, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	removeParts(parts)
	if ents, _ := os.ReadDir(parts); len(ents) != 0 {
		t.Errorf("left in parts/: %v", ents)
	}
}
