package amavis

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/bodgit/sevenzip"

	"amavisgo/smtp/smtptest"
)

// panicMethod is a 7z coder id no real archiver uses; the test registers a decompressor for it
// that panics, as a fault in a decoder library would on a crafted member.
var panicMethod = []byte{0x7f, 0x5a, 0x5a}

func init() {
	sevenzip.RegisterDecompressor(panicMethod, func([]byte, uint64, []io.ReadCloser) (io.ReadCloser, error) {
		var parts []int
		_ = parts[7] // index out of range, from inside the decoder
		return nil, nil
	})
}

// sevenZipWithMethod builds a 7z archive of one member stored with the coder method: the
// signature header, the member's bytes, and an uncompressed header describing them.
func sevenZipWithMethod(method []byte, name string, data []byte) []byte {
	var h bytes.Buffer
	h.Write([]byte{0x01, 0x04})                         // Header, MainStreamsInfo
	h.Write([]byte{0x06, 0x00, 0x01, 0x09})             // PackInfo: pos 0, one stream, Size
	h.WriteByte(byte(len(data)))                        // (sizes under 0x80 are one byte)
	h.Write([]byte{0x00, 0x07, 0x0b, 0x01, 0x00, 0x01}) // End; UnPackInfo, Folder: one, inline, one coder
	h.WriteByte(byte(len(method)))                      // coder flags: simple, id size
	h.Write(method)
	h.Write([]byte{0x0c, byte(len(data)), 0x00, 0x00}) // CodersUnPackSize; End; End (streams)
	utf16 := make([]byte, 0, 2*len(name)+2)
	for _, c := range name + "\x00" {
		utf16 = append(utf16, byte(c), 0)
	}
	h.Write([]byte{0x05, 0x01, 0x11, byte(len(utf16) + 1), 0x00}) // FilesInfo: one file; Name, inline
	h.Write(utf16)
	h.Write([]byte{0x00, 0x00}) // End (files), End (header)

	var start [20]byte
	binary.LittleEndian.PutUint64(start[0:], uint64(len(data)))
	binary.LittleEndian.PutUint64(start[8:], uint64(h.Len()))
	binary.LittleEndian.PutUint32(start[16:], crc32.ChecksumIEEE(h.Bytes()))
	out := []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c, 0x00, 0x04}
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(start[:]))
	out = append(out, start[:]...)
	out = append(out, data...)
	return append(out, h.Bytes()...)
}

func TestSevenZipWithMethodIsReadable(t *testing.T) {
	a := sevenZipWithMethod([]byte{0x00}, "hello.txt", []byte("hello, world\n")) // 00: Copy
	r, err := sevenzip.NewReader(bytes.NewReader(a), int64(len(a)))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.File) != 1 || r.File[0].Name != "hello.txt" {
		t.Fatalf("members %v", r.File)
	}
	f, err := r.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, _ := io.ReadAll(f); string(b) != "hello, world\n" {
		t.Errorf("member reads %q", b)
	}
}

// A decoder that panics on a crafted member costs that message a 451 (the MTA keeps it), the
// log gets the stack under the message's log id, and the next message of the same session
// passes.
func TestDecoderPanicIsTempfail(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, "")
	archive := sevenZipWithMethod(panicMethod, "invoice.pdf", []byte("%PDF-1.4 crafted\n"))
	crafted := "From: a@sender.example.org\r\nSubject: crafted\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/x-7z-compressed; name=invoice.7z\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(archive) + "\r\n--b--\r\n"

	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "EHLO mta.example.com")
	for !strings.HasPrefix(expectPrefix(t, r, "250"), "250 ") {
	}
	transaction := func(body string) string {
		t.Helper()
		send(t, c, "MAIL FROM:<a@sender.example.org>", "RCPT TO:<x@example.com>", "DATA")
		expectPrefix(t, r, "250 2.1.0")
		expectPrefix(t, r, "250 2.1.5")
		expectPrefix(t, r, "354 ")
		if _, err := io.WriteString(c, body+".\r\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return newNormalizer(td).line(strings.TrimSuffix(line, "\r\n"))
	}
	want := "451 4.5.0 Error in processing, id=PID-NN, check FAILED: panic: runtime error: index out of range [7] with length 0"
	if got := transaction(crafted); got != want {
		t.Errorf("crafted message:\n got %q\nwant %q", got, want)
	}
	if len(h.Msgs()) != 0 {
		t.Fatal("the next hop got the crafted message")
	}
	if got := transaction(smallBody); !strings.HasPrefix(got, "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok") {
		t.Errorf("next message: %q", got)
	}
	send(t, c, "QUIT")
	expectPrefix(t, r, "221 ")
	if len(h.Msgs()) != 1 {
		t.Errorf("the next hop has %d messages, want the second one", len(h.Msgs()))
	}
	log := newNormalizer(td).line(td.log.String())
	for _, want := range []string{
		"(PID-NN) (!!)TROUBLE in check_mail: check FAILED: panic: runtime error: index out of range [7] with length 0\n",
		"(PID-NN) panic stack: amavisgo/amavis.init.0.func1 at ",
		"(PID-NN) panic stack: amavisgo/unpack.decode7z at ",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
