package amavis

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"amavisgo/hdr"
	"amavisgo/smtp"
)

// spool streams DATA once into Dir/email.txt, taking the header section, size and 8-bit
// status on the way.
func (d *Daemon) spool(m *Message, data *smtp.DataReader) error {
	f, err := openPlain(m.File, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0640) // files.go
	if err != nil {
		return err
	}
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	hc := headerCapture{limit: 256 << 10}
	w := spoolWriter{f: f, hc: &hc, limit: m.sizeLimit}
	if _, err := copyData(&w, data, *bp); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	m.Size = data.Size()
	m.Has8bit = w.has8bit
	m.Header = hc.buf
	m.HeaderComplete = hc.complete
	m.MessageID, _ = hdr.Get(m.Header, "Message-ID")
	// RFC 6152: an all-ASCII message is labeled 7BIT; 8-bit mail keeps its label.
	if !m.Has8bit {
		m.Body = "7BIT"
	}
	return nil
}

// copyData copies the message with one reusable buffer.
func copyData(w *spoolWriter, r *smtp.DataReader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			if r.Done() {
				return n, nil
			}
			return n, err
		}
	}
}

// spoolWriter writes to the spool file and looks at the bytes once on the way.
type spoolWriter struct {
	f       *os.File
	hc      *headerCapture
	has8bit bool
	// limit: past it the rest is only read, not stored (the message will be refused).
	limit, n int64
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.limit > 0 && w.n > w.limit {
		return len(p), nil
	}
	w.n += int64(len(p))
	if !w.hc.done {
		w.hc.Write(p)
	}
	if !w.has8bit {
		w.has8bit = has8bit(p)
	}
	return w.f.Write(p)
}

// has8bit: p holds a byte above 127. It looks at eight bytes a step: on a 100 KB message the
// byte loop was 4 % of the daemon's CPU (BenchmarkHas8bit).
func has8bit(p []byte) bool {
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p)&0x8080808080808080 != 0 {
			return true
		}
		p = p[8:]
	}
	for _, c := range p {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// makeSpoolDir creates TEMPBASE/amavis-<YYYYMMDDTHHMMSS>-<pid>-<8 random> (mode 0750).
func makeSpoolDir(tempbase string, now time.Time) (string, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	name := fmt.Sprintf("amavis-%s-%05d-%s", now.Format("20060102T150405"), pid,
		base64.RawURLEncoding.EncodeToString(rnd[:]))
	dir := filepath.Join(tempbase, name)
	if err := os.Mkdir(dir, 0750); err != nil {
		return "", err
	}
	return dir, nil
}
