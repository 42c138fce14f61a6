package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DataReader reads the message of a DATA command from a buffered connection: it removes the
// dot-stuffing (a leading "." of every line) and ends with io.EOF at the CRLF "." CRLF
// terminator. Everything else passes byte for byte (CRLF line ends, bare CR or LF, 8-bit,
// lines of any length), so the message is never re-serialized and memory does not depend on
// line length. A line starts only after CRLF, as in Postfix's smtpd.
type DataReader struct {
	r      *bufio.Reader
	inLine bool // false at the start of a line
	lastCR bool // the last byte delivered was CR
	n      int64
	dots   int64 // stuffing dots removed
	err    error
	// lineEnd, when set, becomes true at the end of each line (after its CRLF).
	lineEnd *bool
}

// NewDataReader starts reading a DATA section at the current position of r (right after the
// 354 reply was sent).
func NewDataReader(r *bufio.Reader) *DataReader { return &DataReader{r: r} }

// Size is the number of message bytes delivered so far (RFC 1870 size: CRLFs counted,
// stuffing dots and the terminator not).
func (d *DataReader) Size() int64 { return d.n }

// WireSize is Size plus the stuffing dots: the bytes of the DATA section before its
// terminator, the size amavis measures against a size limit (Amavis::In::SMTP copy_smtp_data).
func (d *DataReader) WireSize() int64 { return d.n + d.dots }

// Err is the error that ended the read: nil while reading or after a proper terminator,
// otherwise the connection's error (io.ErrUnexpectedEOF for a closed connection).
func (d *DataReader) Err() error {
	if d.err == io.EOF {
		return nil
	}
	return d.err
}

// Done reports whether the terminator has been read.
func (d *DataReader) Done() bool { return d.err == io.EOF }

func (d *DataReader) fail(err error) {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	d.err = err
}

func (d *DataReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && d.err == nil {
		if !d.inLine {
			if n > 0 && d.r.Buffered() < 3 {
				break // do not block while holding data
			}
			b, err := d.r.Peek(1)
			if err != nil {
				d.fail(err)
				break
			}
			if b[0] == '.' {
				b, err = d.r.Peek(3)
				if err != nil {
					d.fail(err)
					break
				}
				if b[1] == '\r' && b[2] == '\n' {
					d.r.Discard(3)
					d.err = io.EOF
					break
				}
				d.r.Discard(1) // the stuffing dot
				d.dots++
			}
			d.inLine = true
		}
		if d.r.Buffered() == 0 {
			if n > 0 {
				break
			}
			if _, err := d.r.Peek(1); err != nil {
				d.fail(err)
				break
			}
		}
		buf, _ := d.r.Peek(d.r.Buffered())
		if room := len(p) - n; len(buf) > room {
			buf = buf[:room]
		}
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[:i+1]
			if (i > 0 && buf[i-1] == '\r') || (i == 0 && d.lastCR) {
				d.inLine = false
				if d.lineEnd != nil {
					*d.lineEnd = true
				}
			}
		}
		c := copy(p[n:], buf)
		d.r.Discard(c)
		n += c
		d.lastCR = buf[c-1] == '\r'
	}
	d.n += int64(n)
	if n > 0 {
		return n, nil
	}
	return 0, d.err
}

// dotWriter dot-stuffs a message on its way into DATA: a "." is doubled at the start of
// every line. A line starts after any LF, so that a next hop which takes a bare LF as a line
// end cannot be made to see an early terminator.
type dotWriter struct {
	w       *bufio.Writer
	inLine  bool
	last    byte
	written bool
}

func (d *dotWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if !d.inLine && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return total - len(p), err
			}
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		if _, err := d.w.Write(chunk); err != nil {
			return total - len(p), err
		}
		d.inLine = i < 0
		d.last = chunk[len(chunk)-1]
		d.written = true
		p = p[len(chunk):]
	}
	return total, nil
}

// close ends the data with a line end if needed and the terminator.
func (d *dotWriter) close() error {
	if d.written && d.last != '\n' {
		if _, err := d.w.WriteString("\r\n"); err != nil {
			return err
		}
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

// errLineTooLong is returned by readLine for a command line beyond maxCommandLine.
var errLineTooLong = errors.New("command line too long")

// maxCommandLine bounds a command line (RFC 5321 allows 512 octets; XFORWARD and parameters
// stay far below this).
const maxCommandLine = 64 << 10

// readLine reads one line ending in CRLF and returns it without the CRLF; a bare LF does not
// end a line. A line over maxCommandLine is consumed and reported as errLineTooLong.
func readLine(r *bufio.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	tooLong, prevCR := false, false
	for {
		chunk, err := r.ReadSlice('\n')
		endsCRLF := len(chunk) >= 2 && chunk[len(chunk)-2] == '\r' || len(chunk) == 1 && prevCR
		if len(chunk) > 0 {
			prevCR = chunk[len(chunk)-1] == '\r'
		}
		if len(buf)+len(chunk) > maxCommandLine {
			tooLong = true
			buf = buf[:0]
		}
		if !tooLong {
			buf = append(buf, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return buf, err
		}
		if tooLong {
			if endsCRLF {
				return nil, errLineTooLong
			}
			continue
		}
		if n := len(buf); n >= 2 && buf[n-2] == '\r' {
			return buf[:n-2], nil
		}
	}
}
