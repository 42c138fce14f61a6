package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amavisgo/bench/loadgen"
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

// TestSpoolForwardRoundTrip: what the client sends after DATA is what the next hop gets, byte
// for byte, through the spool file: dots unstuffed into the file and stuffed again, also on
// lines longer than the read buffer and at its edge.
func TestSpoolForwardRoundTrip(t *testing.T) {
	msg := "Subject: dots\r\n\r\n.a\r\n..b\r\n" + "." + strings.Repeat("x", 70<<10) + "\r\n" +
		strings.Repeat("y", 64<<10-1) + "\r\n.\tafter the edge\r\n" +
		strings.Repeat("z", 64<<10) + ".not at a line start\r\nlast\r\n"
	wire := string(loadgen.DataBlock([]byte(msg)))

	client, server := net.Pipe()
	go func() { client.Write([]byte(wire)); client.Close() }()
	in := &conn{c: server, r: bufio.NewReaderSize(server, 64<<10), w: bufio.NewWriter(server)}
	file := filepath.Join(t.TempDir(), "email.txt")
	if stored, lost := spool(in, file); stored != nil || lost != nil {
		t.Fatal(stored, lost)
	}
	if got, _ := os.ReadFile(file); string(got) != msg {
		t.Fatalf("spooled %d bytes, want the %d unstuffed", len(got), len(msg))
	}

	ours, hop := net.Pipe()
	got := make(chan string, 1)
	go func() {
		r := bufio.NewReader(hop)
		var data strings.Builder
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				got <- "read: " + err.Error()
				return
			}
			switch {
			case inData && line == ".\r\n":
				data.WriteString(line)
				io.WriteString(hop, "250 2.0.0 Ok: queued\r\n")
				got <- data.String()
				return
			case inData:
				data.WriteString(line)
			case strings.HasPrefix(line, "DATA"):
				io.WriteString(hop, "354 go ahead\r\n")
				inData = true
			default:
				io.WriteString(hop, "250 ok\r\n")
			}
		}
	}()
	out := &conn{c: ours, r: bufio.NewReader(ours), w: bufio.NewWriterSize(ours, 64<<10)}
	reply, err := forward(out, file, "FROM:<a@example.org>", []string{"TO:<b@example.net>"})
	if err != nil || !strings.Contains(reply, "queued") {
		t.Fatal(reply, err)
	}
	if sent := <-got; sent != wire {
		t.Errorf("the next hop got %d bytes, want the %d the client sent", len(sent), len(wire))
	}
}
