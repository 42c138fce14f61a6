package unpack

import (
	"bytes"
	"encoding/base64"
	"io"
	"sync"
)

// Lenient transfer-encoding decoders: they never fail, they decode what a mail client would.

var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	return t
}()

// decodeBase64To decodes src to w in chunks. Characters outside the alphabet are skipped;
// '=' ends the current quantum, and decoding goes on after it, so that concatenated
// base64 blocks are all decoded. After each chunk, done (when not nil) is given the piece of
// src decoded since its last call.
func decodeBase64To(w io.Writer, src []byte, done func(piece []byte)) (int, error) {
	bp := outBufs.Get().(*[]byte)
	defer outBufs.Put(bp)
	out := (*bp)[:0]
	total := 0
	whole, last := src, 0
	var q [4]byte
	n := 0
	flushQ := func() {
		switch n {
		case 2:
			out = append(out, q[0]<<2|q[1]>>4)
		case 3:
			out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2)
		}
		n = 0
	}
	flush := func(min int) error {
		if len(out) < min {
			return nil
		}
		k, err := w.Write(out)
		total += k
		out = out[:0]
		if at := len(whole) - len(src); done != nil {
			done(whole[last:at])
			last = at
		}
		return err
	}
	for len(src) > 0 {
		line := src
		if i := bytes.IndexByte(src, '\n'); i >= 0 {
			line, src = src[:i], src[i+1:]
		} else {
			src = nil
		}
		// the common case, a clean line of whole quanta, goes through the library
		if l := bytes.TrimRight(line, "\r \t"); n == 0 && len(l) > 0 && len(l)%4 == 0 && len(l) <= 4096 {
			at := len(out)
			if k, err := base64.StdEncoding.Decode(out[at:at+len(l)/4*3], l); err == nil {
				out = out[:at+k]
				if err := flush(cap(out) - 4096); err != nil {
					return total, err
				}
				continue
			}
		}
		for _, c := range line {
			if c == '=' {
				flushQ()
				continue
			}
			v := b64[c]
			if v == 0xff {
				continue
			}
			q[n] = v
			n++
			if n == 4 {
				out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2, q[2]<<6|q[3])
				n = 0
				if err := flush(cap(out) - 4096); err != nil {
					return total, err
				}
			}
		}
		if err := flush(cap(out) - 4096); err != nil {
			return total, err
		}
	}
	flushQ()
	k, err := w.Write(out)
	*bp = out[:0]
	return total + k, err
}

// decodeQPTo decodes quoted-printable: "=XX" (either case) is a byte, "=" at the end of a line
// (after optional blanks) is a soft line break, any other "=" is kept as it is. done is called
// as in decodeBase64To.
func decodeQPTo(w io.Writer, src []byte, done func(piece []byte)) (int, error) {
	bp := outBufs.Get().(*[]byte)
	defer outBufs.Put(bp)
	out := (*bp)[:0]
	total := 0
	last := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '=' {
			if i+2 < len(src) {
				if h, ok := unhex(src[i+1]); ok {
					if l, ok := unhex(src[i+2]); ok {
						out = append(out, h<<4|l)
						i += 2
						goto next
					}
				}
			}
			// soft line break?
			k := i + 1
			for k < len(src) && (src[k] == ' ' || src[k] == '\t') {
				k++
			}
			if k == len(src) {
				break
			}
			if src[k] == '\n' {
				i = k
				goto next
			}
			if src[k] == '\r' && (k+1 == len(src) || src[k+1] == '\n') {
				i = k + 1
				goto next
			}
		}
		out = append(out, c)
	next:
		if len(out) >= cap(out)-4 {
			k, err := w.Write(out)
			total += k
			if err != nil {
				return total, err
			}
			out = out[:0]
			if done != nil {
				done(src[last : i+1])
				last = i + 1
			}
		}
	}
	k, err := w.Write(out)
	*bp = out[:0]
	return total + k, err
}

// uuBlock is one uuencoded file found in a text.
type uuBlock struct {
	name string
	data []byte
}

// findUU returns the uuencoded files in text: "begin <mode> <name>" lines followed by
// encoded lines up to "end". At most max blocks are returned.
func findUU(text []byte, max int) []uuBlock {
	var out []uuBlock
	for pos := 0; pos < len(text) && len(out) < max; {
		i := bytes.Index(text[pos:], []byte("begin "))
		if i < 0 {
			break
		}
		at := pos + i
		pos = at + 6
		if at > 0 && text[at-1] != '\n' {
			continue
		}
		line := text[at:]
		if e := bytes.IndexByte(line, '\n'); e >= 0 {
			line = line[:e]
		}
		line = bytes.TrimRight(line, "\r \t")
		if len(line) < 6 {
			continue
		}
		f := bytes.SplitN(line[6:], []byte(" "), 2)
		if len(f) != 2 || len(f[0]) < 3 || len(f[0]) > 4 || !octal(f[0]) || len(f[1]) == 0 {
			continue
		}
		data, used, ok := decodeUU(text[at+len(line):])
		if !ok {
			continue
		}
		out = append(out, uuBlock{name: string(f[1]), data: data})
		pos = at + len(line) + used
	}
	return out
}

func octal(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}

// decodeUU decodes uuencoded lines (an optional "begin" line first) up to "end" or the first
// line that is not uuencoded; ok reports that at least one data line was decoded.
func decodeUU(src []byte) (out []byte, used int, ok bool) {
	pos := 0
	for pos < len(src) {
		e := bytes.IndexByte(src[pos:], '\n')
		line := src[pos:]
		next := len(src)
		if e >= 0 {
			line = src[pos : pos+e]
			next = pos + e + 1
		}
		line = bytes.TrimRight(line, "\r")
		switch {
		case len(line) == 0 && ok:
			return out, pos, ok
		case len(line) == 0:
		case bytes.HasPrefix(line, []byte("begin ")) && !ok:
		case bytes.Equal(bytes.TrimSpace(line), []byte("end")):
			return out, next, ok
		case len(line) == 1 && (line[0] == '`' || line[0] == ' '):
		default:
			n := int((line[0] - ' ') & 0x3f)
			if n == 0 || len(line) < 1+(n+2)/3*4-1 {
				return out, pos, ok
			}
			enc := line[1:]
			for k := 0; k < n; k += 3 {
				var v [4]byte
				for m := 0; m < 4; m++ {
					if 4*(k/3)+m < len(enc) {
						v[m] = (enc[4*(k/3)+m] - ' ') & 0x3f
					}
				}
				b := [3]byte{v[0]<<2 | v[1]>>4, v[1]<<4 | v[2]>>2, v[2]<<6 | v[3]}
				out = append(out, b[:min(3, n-k)]...)
			}
			ok = true
		}
		pos = next
	}
	return out, pos, ok
}
