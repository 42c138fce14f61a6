package unpack

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Small archive formats without a maintained Go library, parsed here: cpio, ar (deb), the rpm
// envelope, TNEF (winmail.dat), uuencoded blocks in text.

var errFormat = errors.New("malformed archive")

const maxNameLen = 4096

// cpioMode maps the S_IFMT bits of a cpio (or ar) mode to an fs.FileMode type.
func cpioMode(m uint64) fs.FileMode {
	switch m & 0o170000 {
	case 0o100000, 0:
		return 0
	case 0o040000:
		return fs.ModeDir
	case 0o120000:
		return fs.ModeSymlink
	}
	return fs.ModeDevice
}

func decodeCpio(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	return walkCpio(j, p, bufio.NewReaderSize(f, 32<<10))
}

// walkCpio reads the odc (070707), newc (070701/070702) and binary cpio formats.
func walkCpio(j *job, p *Part, br *bufio.Reader) (bool, error) {
	for n := 0; ; n++ {
		name, mode, size, pad, err := cpioHeader(br)
		if err != nil {
			return n > 0, decodeError{err}
		}
		if name == "TRAILER!!!" {
			return false, nil
		}
		lr := &io.LimitedReader{R: br, N: size}
		err = j.member(p, name, cpioMode(mode), size, func() (io.Reader, error) { return lr, nil }, "cpio")
		if err = memberErr(err); err != nil {
			return true, err
		}
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return true, decodeError{err}
		}
		if _, err := br.Discard(int((pad - size%pad) % pad)); err != nil {
			return false, nil
		}
	}
}

// cpioHeader reads one header and the name; pad is the data alignment of the format.
func cpioHeader(br *bufio.Reader) (name string, mode uint64, size, pad int64, err error) {
	magic, err := br.Peek(6)
	if err != nil {
		return "", 0, 0, 0, errFormat
	}
	var hdrLen, nameLen int64
	switch {
	case string(magic) == "070701" || string(magic) == "070702":
		var h [110]byte
		if _, err = io.ReadFull(br, h[:]); err != nil {
			return
		}
		field := func(i int) (uint64, error) { return strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 64) }
		var v [13]uint64
		for i := range v {
			if v[i], err = field(i); err != nil {
				return "", 0, 0, 0, errFormat
			}
		}
		mode, size, nameLen, hdrLen, pad = v[1], int64(v[6]), int64(v[11]), 110, 4
	case string(magic) == "070707":
		var h [76]byte
		if _, err = io.ReadFull(br, h[:]); err != nil {
			return
		}
		oct := func(a, b int) (uint64, error) { return strconv.ParseUint(string(h[a:b]), 8, 64) }
		var m, nl, fs uint64
		m, err = oct(18, 24)
		if err == nil {
			nl, err = oct(59, 65)
		}
		if err == nil {
			fs, err = oct(65, 76)
		}
		if err != nil {
			return "", 0, 0, 0, errFormat
		}
		mode, size, nameLen, hdrLen, pad = m, int64(fs), int64(nl), 76, 1
	case magic[0] == 0xc7 && magic[1] == 0x71 || magic[0] == 0x71 && magic[1] == 0xc7:
		var h [26]byte
		if _, err = io.ReadFull(br, h[:]); err != nil {
			return
		}
		var bo binary.ByteOrder = binary.LittleEndian
		if h[0] == 0x71 {
			bo = binary.BigEndian
		}
		mode = uint64(bo.Uint16(h[6:]))
		nameLen = int64(bo.Uint16(h[20:]))
		size = int64(bo.Uint16(h[22:]))<<16 | int64(bo.Uint16(h[24:]))
		hdrLen, pad = 26, 2
	default:
		return "", 0, 0, 0, errFormat
	}
	if nameLen <= 0 || nameLen > maxNameLen {
		return "", 0, 0, 0, errFormat
	}
	nb := make([]byte, nameLen+(pad-(hdrLen+nameLen)%pad)%pad)
	if _, err = io.ReadFull(br, nb); err != nil {
		return "", 0, 0, 0, errFormat
	}
	return string(bytes.TrimRight(nb[:nameLen], "\x00")), mode, size, pad, nil
}

// decodeAr reads Unix ar archives (Debian packages), GNU and BSD long names included.
func decodeAr(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 32<<10)
	if _, err := br.Discard(8); err != nil {
		return true, decodeError{err}
	}
	var longNames []byte
	for n := 0; ; n++ {
		var h [60]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if err == io.EOF && n > 0 {
				return false, nil
			}
			return n > 0, decodeError{errFormat}
		}
		if h[58] != '`' || h[59] != '\n' {
			return n > 0, decodeError{errFormat}
		}
		size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || size < 0 {
			return n > 0, decodeError{errFormat}
		}
		name := strings.TrimRight(string(h[:16]), " ")
		lr := &io.LimitedReader{R: br, N: size}
		switch {
		case name == "/" || name == "/SYM64/" || name == "__.SYMDEF" || name == "__.SYMDEF SORTED":
			name = ""
		case name == "//":
			if size > 1<<20 {
				return true, decodeError{errFormat}
			}
			longNames, _ = io.ReadAll(lr)
			name = ""
		case strings.HasPrefix(name, "/") && len(name) > 1:
			off, err := strconv.Atoi(name[1:])
			if err != nil || off < 0 || off >= len(longNames) {
				return true, decodeError{errFormat}
			}
			name = string(longNames[off:])
			if e := strings.IndexAny(name, "/\n"); e >= 0 {
				name = name[:e]
			}
		case strings.HasPrefix(name, "#1/"):
			l, err := strconv.Atoi(name[3:])
			if err != nil || l < 0 || l > maxNameLen || int64(l) > size {
				return true, decodeError{errFormat}
			}
			nb := make([]byte, l)
			if _, err := io.ReadFull(lr, nb); err != nil {
				return true, decodeError{errFormat}
			}
			name = string(bytes.TrimRight(nb, "\x00"))
		default:
			name = strings.TrimSuffix(name, "/")
		}
		if name != "" {
			mode, _ := strconv.ParseUint(strings.TrimSpace(string(h[40:48])), 8, 64)
			err := j.member(p, name, cpioMode(mode), lr.N, func() (io.Reader, error) { return lr, nil }, "ar")
			if err = memberErr(err); err != nil {
				return true, err
			}
		}
		if _, err := io.Copy(io.Discard, lr); err != nil {
			return true, decodeError{err}
		}
		if size%2 == 1 {
			br.Discard(1)
		}
	}
}

// decodeRPM skips the lead and the two headers and extracts the payload (a compressed
// cpio archive, decoded in the next tier), as rpm2cpio does.
func decodeRPM(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 32<<10)
	if _, err := br.Discard(96); err != nil {
		return true, decodeError{err}
	}
	for i := 0; i < 2; i++ {
		var h [16]byte
		if _, err := io.ReadFull(br, h[:]); err != nil || string(h[:3]) != "\x8e\xad\xe8" {
			return true, decodeError{errFormat}
		}
		n := int64(binary.BigEndian.Uint32(h[8:]))*16 + int64(binary.BigEndian.Uint32(h[12:]))
		if n > p.Size {
			return true, decodeError{errFormat}
		}
		if i == 0 {
			n += (8 - n%8) % 8 // the signature header is padded to 8
		}
		if _, err := br.Discard(int(n)); err != nil {
			return true, decodeError{errFormat}
		}
	}
	_, err = j.extract(p, "", br, "rpm2cpio")
	return false, err
}

// TNEF attribute ids (MS-OXTNEF).
const (
	tnefAttachRendData = 0x00069002
	tnefAttachTitle    = 0x00018010
	tnefAttachData     = 0x0006800f
	tnefAttachment     = 0x00069005

	mapiAttachLongFilename = 0x3707
)

// mapiLongName finds PR_ATTACH_LONG_FILENAME in an encoded MAPI property list; "" if absent.
func mapiLongName(b []byte) string {
	r := mapiReader{b: b}
	n := r.u32()
	for i := uint32(0); i < n && r.ok(); i++ {
		v := r.u32()
		typ, id := uint16(v), uint16(v>>16)
		if id >= 0x8000 { // named property: GUID, kind, then an id or a name
			r.skip(16)
			if r.u32() == 0 {
				r.skip(4)
			} else {
				r.skip(int(r.u32()))
				r.align()
			}
		}
		multi := typ&0x1000 != 0
		typ &^= 0x1000
		variable := typ == 0x001e || typ == 0x001f || typ == 0x0102 || typ == 0x000d
		count := uint32(1)
		if multi || variable {
			count = r.u32()
		}
		for k := uint32(0); k < count && r.ok(); k++ {
			switch {
			case variable: // string8, unicode, binary, object: length, bytes, padding
				val := r.take(int(r.u32()))
				r.align()
				if id == mapiAttachLongFilename && r.ok() {
					if typ == 0x001f {
						return utf16le(val)
					}
					return toUTF8("", bytes.TrimRight(val, "\x00"))
				}
			case typ == 0x0002 || typ == 0x0003 || typ == 0x0004 || typ == 0x000a || typ == 0x000b:
				r.skip(4) // int16 (padded), int32, float, error, bool
			case typ == 0x0005 || typ == 0x0006 || typ == 0x0007 || typ == 0x0014 || typ == 0x0040:
				r.skip(8) // double, currency, apptime, int64, systime
			case typ == 0x0048:
				r.skip(16) // CLSID
			default:
				return ""
			}
		}
	}
	return ""
}

type mapiReader struct {
	b  []byte
	at int
}

func (r *mapiReader) ok() bool { return r.at <= len(r.b) }

func (r *mapiReader) take(n int) []byte {
	if n < 0 || r.at+n > len(r.b) {
		r.at = len(r.b) + 1
		return nil
	}
	v := r.b[r.at : r.at+n]
	r.at += n
	return v
}

func (r *mapiReader) skip(n int) { r.take(n) }
func (r *mapiReader) align()     { r.take((4 - r.at%4) % 4) }

func (r *mapiReader) u32() uint32 {
	v := r.take(4)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func utf16le(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		if c := binary.LittleEndian.Uint16(b[i:]); c != 0 {
			u = append(u, c)
		}
	}
	return string(utf16.Decode(u))
}

// decodeTNEF extracts the attachments of a winmail.dat with their titles as names.
func decodeTNEF(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 32<<10)
	if _, err := br.Discard(6); err != nil {
		return true, decodeError{err}
	}
	title := ""
	var last *Part
	for {
		var h [9]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if err == io.EOF {
				return false, nil
			}
			return true, decodeError{errFormat}
		}
		id := binary.LittleEndian.Uint32(h[1:])
		size := int64(binary.LittleEndian.Uint32(h[5:]))
		lr := &io.LimitedReader{R: br, N: size}
		switch id {
		case tnefAttachRendData:
			title = ""
		case tnefAttachTitle:
			b, _ := io.ReadAll(io.LimitReader(lr, maxNameLen))
			title = string(bytes.TrimRight(b, "\x00"))
		case tnefAttachData:
			m, err := j.extract(p, title, lr, "tnef")
			if memberErr(err) != nil {
				return true, err
			}
			last = m
		case tnefAttachment:
			// MAPI properties of the attachment, after its data: the long file name
			if last != nil && size <= 1<<20 {
				b, _ := io.ReadAll(lr)
				if n := mapiLongName(b); n != "" {
					last.addName(memberName(n))
				}
			}
		}
		if _, err := io.Copy(io.Discard, lr); err != nil || lr.N > 0 {
			return true, decodeError{errFormat}
		}
		if _, err := br.Discard(2); err != nil { // checksum
			return false, nil
		}
	}
}

// maxUU bounds the uuencoded blocks taken from one text.
const maxUU = 1000

// decodeUUE extracts uuencoded files from a text part; the text itself is kept.
func decodeUUE(j *job, p *Part) (bool, error) {
	if p.noUU {
		return true, nil
	}
	data, _, unmap, err := mapFile(p.Path)
	if err != nil {
		return true, internalError{err}
	}
	defer unmap()
	if !bytes.Contains(data, []byte("begin ")) {
		return true, nil
	}
	for _, b := range findUU(data, maxUU) {
		if _, err := j.extract(p, b.name, bytes.NewReader(b.data), "uudecode"); err != nil {
			return true, memberErr(err)
		}
	}
	return true, nil
}
