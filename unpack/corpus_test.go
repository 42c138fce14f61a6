package unpack

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// A format builder makes an archive (or compressed stream) holding content as member name.
// Where a real program exists we use it; formats nobody here can write (rar, cab, lha,
// tnef, rpm, Z, OLE) are built byte by byte from their specifications.
type builder struct {
	format string
	ext    string
	progs  []string // programs needed to build or to decode
	build  func(t *testing.T, name string, content []byte) []byte
}

// inDir writes content as name in a fresh directory and runs a program there that leaves out.
func inDir(t *testing.T, name string, content []byte, out string, prog string, args ...string) []byte {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, nil, prog, args...)
	b, err := os.ReadFile(filepath.Join(dir, out))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var builders = []builder{
	{"zip", "zip", nil, func(t *testing.T, name string, c []byte) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, _ := zw.Create(name)
		w.Write(c)
		zw.Close()
		return b.Bytes()
	}},
	{"zip(program)", "zip", []string{"zip"}, func(t *testing.T, name string, c []byte) []byte {
		return inDir(t, name, c, "o.zip", "zip", "-q", "o.zip", name)
	}},
	{"tar", "tar", nil, func(t *testing.T, name string, c []byte) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		tw.WriteHeader(&tar.Header{Name: "dir/" + name, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg})
		tw.Write(c)
		tw.Close()
		return b.Bytes()
	}},
	{"gz", "gz", nil, func(t *testing.T, name string, c []byte) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Name = name
		zw.Write(c)
		zw.Close()
		return b.Bytes()
	}},
	{"bz2", "bz2", []string{"bzip2"}, func(t *testing.T, name string, c []byte) []byte {
		return run(t, "", c, "bzip2", "-c")
	}},
	{"xz", "xz", []string{"xz"}, func(t *testing.T, name string, c []byte) []byte {
		return run(t, "", c, "xz", "-c")
	}},
	{"lzma", "lzma", []string{"xz"}, func(t *testing.T, name string, c []byte) []byte {
		return run(t, "", c, "xz", "--format=lzma", "-c")
	}},
	{"zst", "zst", []string{"zstd"}, func(t *testing.T, name string, c []byte) []byte {
		return run(t, "", c, "zstd", "-q", "-c")
	}},
	{"lz4", "lz4", []string{"lz4"}, func(t *testing.T, name string, c []byte) []byte {
		return run(t, "", c, "lz4", "-q", "-c")
	}},
	{"7z", "7z", []string{"7z"}, func(t *testing.T, name string, c []byte) []byte {
		return inDir(t, name, c, "o.7z", "7z", "a", "-bd", "-bso0", "o.7z", name)
	}},
	{"rar", "rar", nil, func(t *testing.T, name string, c []byte) []byte { return makeRAR(name, c, 0, 0) }},
	{"cpio-newc", "cpio", []string{"cpio"}, func(t *testing.T, name string, c []byte) []byte {
		return cpioOf(t, name, c, "newc")
	}},
	{"cpio-odc", "cpio", []string{"cpio"}, func(t *testing.T, name string, c []byte) []byte {
		return cpioOf(t, name, c, "odc")
	}},
	{"cpio-bin", "cpio", []string{"cpio"}, func(t *testing.T, name string, c []byte) []byte {
		return cpioOf(t, name, c, "bin")
	}},
	{"deb", "deb", []string{"ar"}, func(t *testing.T, name string, c []byte) []byte {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "debian-binary"), []byte("2.0\n"), 0o644)
		os.WriteFile(filepath.Join(dir, name), c, 0o644)
		run(t, dir, nil, "ar", "rc", "o.deb", "debian-binary", name)
		b, _ := os.ReadFile(filepath.Join(dir, "o.deb"))
		return b
	}},
	{"rpm", "rpm", []string{"cpio", "rpm2cpio"}, func(t *testing.T, name string, c []byte) []byte {
		return makeRPM(t, name, c)
	}},
	{"tnef", "dat", []string{"tnef"}, func(t *testing.T, name string, c []byte) []byte {
		b := makeTNEF(name, c)
		// the real tnef program must read what we built
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "winmail.dat"), b, 0o644)
		if got := string(run(t, dir, nil, "tnef", "-t", "-f", "winmail.dat")); !strings.Contains(got, name) {
			t.Fatalf("tnef -t does not list %s: %q", name, got)
		}
		return b
	}},
	{"Z", "Z", []string{"gzip"}, func(t *testing.T, name string, c []byte) []byte { return makeZ(c) }},
	{"cab", "cab", []string{"cabextract"}, func(t *testing.T, name string, c []byte) []byte { return makeCAB(name, c) }},
	{"arj", "arj", []string{"arj"}, func(t *testing.T, name string, c []byte) []byte {
		return inDir(t, name, c, "o.arj", "arj", "a", "-y", "o.arj", name)
	}},
	{"lha", "lzh", []string{"7z"}, func(t *testing.T, name string, c []byte) []byte { return makeLHA(name, c) }},
	{"lzo", "lzo", []string{"lzop"}, func(t *testing.T, name string, c []byte) []byte {
		return run(t, "", c, "lzop", "-c")
	}},
	{"lrz", "lrz", []string{"lrzip", "lrzcat"}, func(t *testing.T, name string, c []byte) []byte {
		return inDir(t, name, c, "o.lrz", "lrzip", "-q", "-o", "o.lrz", name)
	}},
	{"arc", "arc", []string{"arc", "nomarch"}, func(t *testing.T, name string, c []byte) []byte {
		return inDir(t, name, c, "o.arc", "arc", "a", "o.arc", name)
	}},
	{"iso", "iso", []string{"genisoimage", "7z"}, func(t *testing.T, name string, c []byte) []byte {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "root"), 0o755)
		os.WriteFile(filepath.Join(dir, "root", name), c, 0o644)
		run(t, dir, nil, "genisoimage", "-quiet", "-J", "-o", "o.iso", "root")
		b, _ := os.ReadFile(filepath.Join(dir, "o.iso"))
		return b
	}},
	{"doc (OLE)", "doc", []string{"7z"}, func(t *testing.T, name string, c []byte) []byte { return makeOLE(t, name, c) }},
	{"uue", "txt", nil, func(t *testing.T, name string, c []byte) []byte {
		return []byte("Here it comes:\n\n" + uuencode(name, c) + "\nbye\n")
	}},
	{"message/rfc822", "eml", nil, func(t *testing.T, name string, c []byte) []byte {
		return withAttachment(name, "application/octet-stream", c)
	}},
}

// TestCorpusEICAR: the EICAR string in every format, alone and nested three deep, comes out
// as a file holding exactly the EICAR string. Self-extracting programs are TestSelfExtracting's;
// freeze (F) and zoo have a decoder entry but no program in Debian 12, so no row here.
func TestCorpusEICAR(t *testing.T) {
	for _, b := range builders {
		t.Run(b.format, func(t *testing.T) {
			for _, p := range b.progs {
				needProg(t, p)
			}
			content := []byte(eicar)
			name := "eicar.com"
			for depth := 1; depth <= 3; depth++ {
				content = b.build(t, name, content)
				name = fmt.Sprintf("level%d.%s", depth, b.ext)
				if depth != 1 && depth != 3 {
					continue
				}
				ctype := "application/octet-stream"
				if b.format == "message/rfc822" {
					ctype = "message/rfc822"
				}
				r, _ := unpackMsg(t, debianLimits, withAttachment(name, ctype, content))
				if r.Hold != "" {
					t.Fatalf("depth %d: hold %q\n%s", depth, r.Hold, describe(r))
				}
				got := fileWith(t, r, eicar)
				if len(got) == 0 {
					t.Fatalf("depth %d: no part holds the EICAR string\n%s", depth, describe(r))
				}
				// the archives themselves are replaced by their members (as in amavis) except
				// for containers that stay scannable as they are
				levels := 1
				if b.format == "rpm" {
					levels = 3 // rpm, its gzip'd payload, the cpio archive
				}
				if b.format != "uue" && b.format != "message/rfc822" && got[0].Depth != levels*depth+1 {
					t.Errorf("depth %d: EICAR part at tree depth %d\n%s", depth, got[0].Depth, describe(r))
				}
			}
		})
	}
}

func cpioOf(t *testing.T, name string, c []byte, format string) []byte {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, name), c, 0o644)
	return run(t, dir, []byte(name+"\n"), "cpio", "--quiet", "-o", "-H", format)
}

// makeRAR writes a RAR 4 archive with one stored member. flags may add 0x04 (encrypted);
// hostOS 3 (Unix) takes attr as a Unix mode.
func makeRAR(name string, c []byte, extraFlags uint16, mode uint32) []byte {
	var b bytes.Buffer
	b.WriteString("Rar!\x1a\x07\x00")
	block := func(typ byte, flags uint16, body []byte) {
		h := []byte{typ, byte(flags), byte(flags >> 8), 0, 0}
		binary.LittleEndian.PutUint16(h[3:], uint16(7+len(body)))
		h = append(h, body...)
		var crc [2]byte
		binary.LittleEndian.PutUint16(crc[:], uint16(crc32.ChecksumIEEE(h)))
		b.Write(crc[:])
		b.Write(h)
	}
	block(0x73, 0, make([]byte, 6))
	fh := make([]byte, 25)
	binary.LittleEndian.PutUint32(fh[0:], uint32(len(c)))
	binary.LittleEndian.PutUint32(fh[4:], uint32(len(c)))
	attr := uint32(0x20)
	if mode != 0 {
		fh[8] = 3
		attr = mode
	}
	binary.LittleEndian.PutUint32(fh[9:], crc32.ChecksumIEEE(c))
	binary.LittleEndian.PutUint32(fh[13:], 0x5a210000)
	fh[17] = 20
	fh[18] = 0x30
	binary.LittleEndian.PutUint16(fh[19:], uint16(len(name)))
	binary.LittleEndian.PutUint32(fh[21:], attr)
	fh = append(fh, name...)
	block(0x74, 0x8000|extraFlags, fh)
	b.Write(c)
	block(0x7b, 0x4000, nil)
	return b.Bytes()
}

// makeRPM wraps a gzip'd newc cpio payload in an rpm lead and two empty headers, and checks
// with rpm2cpio that it is an rpm.
func makeRPM(t *testing.T, name string, c []byte) []byte {
	var b bytes.Buffer
	lead := make([]byte, 96)
	copy(lead, "\xed\xab\xee\xdb\x03\x00")
	binary.BigEndian.PutUint16(lead[78:], 5) // signature type: header-style
	b.Write(lead)
	// each header holds one tag; rpm2cpio refuses headers without any
	header := func(tag uint32, pad bool) {
		h := []byte("\x8e\xad\xe8\x01\x00\x00\x00\x00")
		h = binary.BigEndian.AppendUint32(h, 1)
		h = binary.BigEndian.AppendUint32(h, 4)
		for _, v := range []uint32{tag, 4, 0, 1} { // INT32, offset 0, count 1
			h = binary.BigEndian.AppendUint32(h, v)
		}
		h = binary.BigEndian.AppendUint32(h, 0)
		for pad && len(h)%8 != 0 {
			h = append(h, 0)
		}
		b.Write(h)
	}
	header(1007, true)  // RPMSIGTAG_PAYLOADSIZE
	header(1009, false) // RPMTAG_SIZE
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(cpioOf(t, name, c, "newc"))
	zw.Close()
	b.Write(z.Bytes())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.rpm"), b.Bytes(), 0o644)
	// rpm2cpio warns (and exits 1) about v3 packages, but must still write the payload
	cmd := exec.Command(needProg(t, "rpm2cpio"), "x.rpm")
	cmd.Dir = dir
	if out, _ := cmd.Output(); !bytes.Contains(out, c) {
		t.Fatalf("rpm2cpio does not read our rpm")
	}
	return b.Bytes()
}

// makeTNEF writes a winmail.dat with one attachment.
func makeTNEF(name string, c []byte) []byte { return makeTNEFLong(name, "", c) }

// makeTNEFLong adds the attachment's MAPI properties with a long file name when long != "".
func makeTNEFLong(name, long string, c []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x78\x9f\x3e\x22\x01\x00")
	attr := func(level byte, id uint32, data []byte) {
		h := make([]byte, 9)
		h[0] = level
		binary.LittleEndian.PutUint32(h[1:], id)
		binary.LittleEndian.PutUint32(h[5:], uint32(len(data)))
		b.Write(h)
		b.Write(data)
		var sum uint16
		for _, x := range data {
			sum += uint16(x)
		}
		binary.Write(&b, binary.LittleEndian, sum)
	}
	attr(1, 0x00089006, []byte{0, 0, 1, 0})                         // attTnefVersion
	attr(1, 0x00069007, []byte("\xe4\x04\x00\x00\x00\x00\x00\x00")) // attOemCodepage
	attr(2, tnefAttachRendData, make([]byte, 14))
	attr(2, tnefAttachTitle, append([]byte(name), 0))
	attr(2, tnefAttachData, c)
	if long != "" {
		var m []byte
		le32 := func(v uint32) { m = binary.LittleEndian.AppendUint32(m, v) }
		le32(2)
		le32(0x0e200003) // PR_ATTACH_SIZE, PT_LONG
		le32(uint32(len(c)))
		le32(0x3707001e) // PR_ATTACH_LONG_FILENAME, PT_STRING8
		le32(1)
		le32(uint32(len(long) + 1))
		m = append(m, long...)
		m = append(m, 0)
		for len(m)%4 != 0 {
			m = append(m, 0)
		}
		attr(2, tnefAttachment, m)
	}
	return b.Bytes()
}

// makeZ writes Unix compress (.Z) output using literal 9-bit codes only, which is valid LZW.
func makeZ(c []byte) []byte {
	out := []byte{0x1f, 0x9d, 0x90}
	var acc uint32
	nbits := 0
	for _, x := range c {
		acc |= uint32(x) << nbits
		nbits += 9
		for nbits >= 8 {
			out = append(out, byte(acc))
			acc >>= 8
			nbits -= 8
		}
	}
	if nbits > 0 {
		out = append(out, byte(acc))
	}
	if len(c)+257 >= 512 {
		panic("makeZ: input too long for 9-bit codes")
	}
	return out
}

// makeCAB writes a Microsoft cabinet with one uncompressed folder and file (data blocks of
// at most 32 KiB, as the format requires).
func makeCAB(name string, c []byte) []byte {
	blocks := (len(c) + 32767) / 32768
	fileOff := 36 + 8
	dataOff := fileOff + 16 + len(name) + 1
	total := dataOff + 8*blocks + len(c)
	b := make([]byte, 0, total)
	le32 := func(v int) { b = binary.LittleEndian.AppendUint32(b, uint32(v)) }
	le16 := func(v int) { b = binary.LittleEndian.AppendUint16(b, uint16(v)) }
	b = append(b, "MSCF"...)
	le32(0)
	le32(total)
	le32(0)
	le32(fileOff)
	le32(0)
	b = append(b, 3, 1)
	le16(1) // folders
	le16(1) // files
	le16(0)
	le16(0)
	le16(0)
	le32(dataOff) // CFFOLDER
	le16(blocks)
	le16(0)      // no compression
	le32(len(c)) // CFFILE
	le32(0)
	le16(0)
	le16(0x5a21)
	le16(0)
	le16(0x20)
	b = append(b, name...)
	b = append(b, 0)
	for len(c) > 0 {
		n := min(len(c), 32768)
		le32(0) // CFDATA, no checksum
		le16(n)
		le16(n)
		b = append(b, c[:n]...)
		c = c[n:]
	}
	return b
}

// makeLHA writes a level-0 LHA archive with one stored (-lh0-) member.
func makeLHA(name string, c []byte) []byte {
	h := []byte("-lh0-")
	h = binary.LittleEndian.AppendUint32(h, uint32(len(c)))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(c)))
	h = binary.LittleEndian.AppendUint32(h, 0x5a210000)
	h = append(h, 0x20, 0, byte(len(name)))
	h = append(h, name...)
	h = binary.LittleEndian.AppendUint16(h, crc16(c))
	var sum byte
	for _, x := range h {
		sum += x
	}
	out := append([]byte{byte(len(h)), sum}, h...)
	out = append(out, c...)
	return append(out, 0)
}

func crc16(b []byte) uint16 {
	var crc uint16
	for _, x := range b {
		crc ^= uint16(x)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xa001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func uuencode(name string, c []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "begin 644 %s\n", name)
	enc := func(v byte) byte {
		if v == 0 {
			return '`'
		}
		return v + ' '
	}
	for len(c) > 0 {
		n := min(45, len(c))
		line := c[:n]
		c = c[n:]
		b.WriteByte(enc(byte(n)))
		for i := 0; i < n; i += 3 {
			var x [3]byte
			copy(x[:], line[i:min(i+3, n)])
			b.WriteByte(enc(x[0] >> 2))
			b.WriteByte(enc((x[0]<<4 | x[1]>>4) & 0x3f))
			b.WriteByte(enc((x[1]<<2 | x[2]>>6) & 0x3f))
			b.WriteByte(enc(x[2] & 0x3f))
		}
		b.WriteByte('\n')
	}
	b.WriteString("`\nend\n")
	return b.String()
}

// makeOLE writes an OLE compound file (MS-CFB version 3, as .doc and .xls are) with one stream:
// under 4096 bytes in the mini stream, as the format requires, else in ordinary sectors. 7z
// must list the stream, so that a mistake here is not taken for one of the decoder's.
func makeOLE(t *testing.T, name string, c []byte) []byte {
	const (
		sector     = 512
		endOfChain = 0xfffffffe
		freeSect   = 0xffffffff
		fatSect    = 0xfffffffd
		noStream   = 0xffffffff
	)
	mini := len(c) < 4096
	// sectors: 0 FAT, 1 directory, 2 mini FAT (when mini), then the data
	first := uint32(2)
	if mini {
		first = 3
	}
	data := c
	if mini {
		data = append(append([]byte(nil), c...), make([]byte, (64-len(c)%64)%64)...)
	}
	nData := (len(data) + sector - 1) / sector
	if int(first)+nData > sector/4 {
		t.Fatalf("makeOLE: %d bytes need more than one FAT sector", len(c))
	}
	le32 := binary.LittleEndian.AppendUint32
	chain := func(start, n, size int) []byte { // a chain of n entries from start, in a table of size entries
		var b []byte
		for i := 0; i < size; i++ {
			switch {
			case i >= start && i < start+n-1:
				b = le32(b, uint32(i+1))
			case i == start+n-1:
				b = le32(b, endOfChain)
			default:
				b = le32(b, freeSect)
			}
		}
		return b
	}
	fat := chain(int(first), nData, sector/4)
	binary.LittleEndian.PutUint32(fat[0:], fatSect)
	binary.LittleEndian.PutUint32(fat[4:], endOfChain)
	if mini {
		binary.LittleEndian.PutUint32(fat[8:], endOfChain)
	}
	entry := func(n string, typ byte, child uint32, start uint32, size int) []byte {
		e := make([]byte, 128)
		u := utf16.Encode([]rune(n))
		for i, x := range u {
			binary.LittleEndian.PutUint16(e[2*i:], x)
		}
		binary.LittleEndian.PutUint16(e[64:], uint16(2*len(u)+2))
		e[66], e[67] = typ, 1
		binary.LittleEndian.PutUint32(e[68:], noStream)
		binary.LittleEndian.PutUint32(e[72:], noStream)
		binary.LittleEndian.PutUint32(e[76:], child)
		binary.LittleEndian.PutUint32(e[116:], start)
		binary.LittleEndian.PutUint32(e[120:], uint32(size))
		return e
	}
	var dir []byte
	if mini {
		dir = append(entry("Root Entry", 5, 1, first, len(data)), entry(name, 2, noStream, 0, len(c))...)
	} else {
		dir = append(entry("Root Entry", 5, 1, endOfChain, 0), entry(name, 2, noStream, first, len(c))...)
	}
	for i := 0; i < 2; i++ {
		e := make([]byte, 128)
		binary.LittleEndian.PutUint32(e[68:], noStream)
		binary.LittleEndian.PutUint32(e[72:], noStream)
		binary.LittleEndian.PutUint32(e[76:], noStream)
		dir = append(dir, e...)
	}
	h := []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
	h = append(h, make([]byte, 16)...)
	h = binary.LittleEndian.AppendUint16(h, 0x3e)
	h = binary.LittleEndian.AppendUint16(h, 3)
	h = binary.LittleEndian.AppendUint16(h, 0xfffe)
	h = binary.LittleEndian.AppendUint16(h, 9)
	h = binary.LittleEndian.AppendUint16(h, 6)
	h = append(h, make([]byte, 6)...)
	h = le32(h, 0)    // directory sectors (0 in version 3)
	h = le32(h, 1)    // FAT sectors
	h = le32(h, 1)    // first directory sector
	h = le32(h, 0)    // transaction signature
	h = le32(h, 4096) // mini stream cutoff
	if mini {
		h = le32(h, 2)
		h = le32(h, 1)
	} else {
		h = le32(h, endOfChain)
		h = le32(h, 0)
	}
	h = le32(h, endOfChain) // no DIFAT sectors
	h = le32(h, 0)
	h = le32(h, 0) // DIFAT[0]: the FAT is sector 0
	for len(h) < sector {
		h = le32(h, freeSect)
	}
	out := append(h, fat...)
	out = append(out, dir...)
	if mini {
		out = append(out, chain(0, len(data)/64, sector/4)...)
	}
	out = append(out, data...)
	out = append(out, make([]byte, (sector-len(out)%sector)%sector)...)
	dirT := t.TempDir()
	os.WriteFile(filepath.Join(dirT, "o.doc"), out, 0o644)
	if got := string(run(t, dirT, nil, "7z", "l", "o.doc")); !strings.Contains(got, name) {
		t.Fatalf("7z does not list %s in our compound file:\n%s", name, got)
	}
	return out
}
