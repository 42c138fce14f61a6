package smtp

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readData(t testing.TB, wire string, chunked bool) (string, *DataReader, string) {
	var src io.Reader = strings.NewReader(wire)
	if chunked {
		src = iotest.OneByteReader(src)
	}
	br := bufio.NewReaderSize(src, 16)
	dr := NewDataReader(br)
	out, _ := io.ReadAll(dr)
	rest, _ := io.ReadAll(br)
	return string(out), dr, string(rest)
}

func TestDataReader(t *testing.T) {
	for _, c := range []struct {
		name, wire, want, rest string
		err                    bool
	}{
		{"empty", ".\r\n", "", "", false},
		{"simple", "a\r\nb\r\n.\r\nQUIT\r\n", "a\r\nb\r\n", "QUIT\r\n", false},
		{"unstuff", "..a\r\n...\r\n..\r\n.\r\n", ".a\r\n..\r\n.\r\n", "", false},
		{"dot not at line start", "a.\r\nb..\r\n.\r\n", "a.\r\nb..\r\n", "", false},
		{"bare LF is no line end", "a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", "", false},
		{"bare CR", "a\r.\r\n.\r\n", "a\r.\r\n", "", false},
		{"dot CR no LF", ".\rx\r\n.\r\n", "\rx\r\n", "", false},
		{"8bit", "Gr\xfc\xdfe\r\n.\r\n", "Gr\xfc\xdfe\r\n", "", false},
		{"long line", strings.Repeat("y", 100000) + "\r\n.\r\n", strings.Repeat("y", 100000) + "\r\n", "", false},
		{"truncated", "a\r\nb", "a\r\nb", "", true},
		{"truncated after dot", "a\r\n.", "a\r\n", ".", true},
	} {
		for _, chunked := range []bool{false, true} {
			got, dr, rest := readData(t, c.wire, chunked)
			if got != c.want || rest != c.rest || (dr.Err() != nil) != c.err || dr.Size() != int64(len(c.want)) {
				t.Errorf("%s (chunked %v): got %q rest %q err %v size %d", c.name, chunked, got, rest, dr.Err(), dr.Size())
			}
		}
	}
}

func TestDotWriter(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a", "a\r\n.\r\n"},
		{".a\r\n..\r\n", "..a\r\n...\r\n.\r\n"},
		{"x\n.y", "x\n..y\r\n.\r\n"}, // a bare LF starts a line for the next hop too
	} {
		var b bytes.Buffer
		bw := bufio.NewWriter(&b)
		dw := &dotWriter{w: bw}
		// byte by byte, so that line starts fall on write boundaries
		for i := 0; i < len(c.in); i++ {
			dw.Write([]byte{c.in[i]})
		}
		dw.close()
		bw.Flush()
		if b.String() != c.want {
			t.Errorf("%q: got %q want %q", c.in, b.String(), c.want)
		}
	}
}

// FuzzDataReader: the reader never panics, never returns the terminator, and what a
// dotWriter stuffs (for CRLF text) reads back unchanged.
func FuzzDataReader(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "..\r\n.\r\n", "\r\n.\r\n", ".\r", "x\ny\r\n.\r\n", "\xff\r\n..x\r\n.\r\n"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, wire []byte, bufSize uint8) {
		rd := bytes.NewReader(wire)
		br := bufio.NewReaderSize(iotest.HalfReader(rd), int(bufSize)+16)
		dr := NewDataReader(br)
		out, _ := io.ReadAll(dr)
		if int64(len(out)) != dr.Size() {
			t.Fatalf("size %d, read %d", dr.Size(), len(out))
		}
		if dr.Done() {
			read := wire[:len(wire)-rd.Len()-br.Buffered()]
			if !bytes.HasSuffix(read, []byte(".\r\n")) || (len(read) > 3 && !bytes.HasSuffix(read, []byte("\r\n.\r\n"))) {
				t.Fatalf("done without a terminator: %q", read)
			}
		}
		// Round trip: CRLF-only text through dotWriter and back.
		text := bytes.ReplaceAll(bytes.ReplaceAll(wire, []byte("\r"), nil), []byte("\n"), []byte("\r\n"))
		var b bytes.Buffer
		bw := bufio.NewWriter(&b)
		dw := &dotWriter{w: bw}
		dw.Write(text)
		dw.close()
		bw.Flush()
		back, err := io.ReadAll(NewDataReader(bufio.NewReader(&b)))
		if err != nil {
			t.Fatal(err)
		}
		want := text
		if len(want) > 0 && !bytes.HasSuffix(want, []byte("\n")) {
			want = append(want, '\r', '\n')
		}
		if !bytes.Equal(back, want) {
			t.Fatalf("round trip\n in  %q\n out %q", want, back)
		}
	})
}

// The session is told of each line end of the message (it restarts smtpd_timeout there):
// CRLF only, also when CR and LF come in different reads, and not for the terminator.
func TestDataReaderLineEnd(t *testing.T) {
	const wire = "a\r\nb\nc\rd\r\n\r\n..e\r\n.\r\n"
	for _, chunked := range []bool{false, true} {
		var src io.Reader = strings.NewReader(wire)
		if chunked {
			src = iotest.OneByteReader(src)
		}
		dr := NewDataReader(bufio.NewReaderSize(src, 16))
		ends, buf := 0, make([]byte, 1)
		var ended bool
		dr.lineEnd = &ended
		for { // a byte at a time, to count the line ends
			if _, err := dr.Read(buf); err != nil {
				break
			}
			if ended {
				ends, ended = ends+1, false
			}
		}
		if !dr.Done() || ends != 4 {
			t.Errorf("chunked %v: done %v, %d line ends, want 4", chunked, dr.Done(), ends)
		}
	}
}

// readLine takes a line of up to maxCommandLine octets with its CRLF; a longer one is
// consumed to its CRLF (wherever the CR and LF fall in the buffer, bare CR and LF inside)
// and reported once as errLineTooLong, and the next line is read as usual.
func TestReadLineTooLong(t *testing.T) {
	full := 16 * (maxCommandLine/16 + 1) // a multiple of the buffer size, over the limit
	for _, c := range []struct {
		name, line string
		tooLong    bool
	}{
		{"at the limit", strings.Repeat("a", maxCommandLine-2) + "\r\n", false},
		{"one over", strings.Repeat("a", maxCommandLine-1) + "\r\n", true},
		{"CR ends a full buffer", strings.Repeat("a", full-1) + "\r\n", true},
		{"CR ends a full buffer, no LF after it", strings.Repeat("a", full-1) + "\rx\r\n", true},
		{"bare LF and CR inside", strings.Repeat("x\ny\r", maxCommandLine/2) + "\r\n", true},
	} {
		br := bufio.NewReaderSize(strings.NewReader(c.line+"NOOP\r\n"), 16)
		got, err := readLine(br, nil)
		if c.tooLong && err != errLineTooLong || !c.tooLong && (err != nil || string(got)+"\r\n" != c.line) {
			t.Errorf("%s: %d octets, %v", c.name, len(got), err)
		}
		if next, err := readLine(br, nil); string(next) != "NOOP" || err != nil {
			t.Errorf("%s: next line %q, %v", c.name, next, err)
		}
	}
}
