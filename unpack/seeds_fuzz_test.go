package unpack

// Seeds for the fuzz targets: the shapes an attacker sends. Archives whose headers declare
// allocations (dictionaries, windows, sizes) far over what a message may cost, archives nested
// deeper than MAXLEVELS, members with hostile names, MIME with huge folded headers. Each is
// built here byte by byte (or with the standard library) so that the fuzzer starts from a
// well-formed file and mutates from there; TestFuzzSeedShapes checks that the tame variant of
// every builder unpacks, so that the hostile one reaches the field it declares.

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz/lzma"
)

// hugeDict is a dictionary or window no message may make us allocate (3 GiB).
const hugeDict = 3 << 30

// hostileNames are member names meant to escape parts/, to hide an extension or to break
// whatever logs or matches them.
var hostileNames = []string{
	"../../../../tmp/amavisgo-escape.exe",
	"/etc/cron.d/amavisgo-absolute",
	`..\..\..\Windows\System32\evil.exe`,
	"C:\\evil.exe",
	"a\x00.txt.exe",
	strings.Repeat("A", 4096) + ".exe",
	strings.Repeat("d/", 2000) + "deep.exe",
	"\u202etxt.exe",                         // right-to-left override: shows as "exe.txt"
	"\uff45\uff58\uff45.\uff45\uff58\uff45", // fullwidth "exe.exe"
	"\xff\xfe\xc0\xafinvalid-utf8.exe",
	"name\r\nX-Injected: header.exe",
	"=?utf-8?b?ZXZpbC5leGU=?=",
	"",
	".",
	"..",
	"dir/",
}

// lzma2Stored is an LZMA2 stream that holds c in uncompressed chunks (valid LZMA2 without an
// encoder): 0x01 resets the dictionary, 0x02 does not; 0x00 ends the stream.
func lzma2Stored(c []byte) []byte {
	var b []byte
	ctl := byte(0x01)
	for len(c) > 0 {
		n := min(len(c), 64<<10)
		b = append(b, ctl, byte((n-1)>>8), byte(n-1))
		b = append(b, c[:n]...)
		c, ctl = c[n:], 0x02
	}
	return append(b, 0x00)
}

// lzma2DictByte is the LZMA2 property byte for the smallest dictionary of at least size.
func lzma2DictByte(size int64) byte {
	for p := byte(0); p < 40; p++ {
		if int64(2|p&1)<<(p/2+11) >= size {
			return p
		}
	}
	return 40
}

// lzmaRaw is c compressed as a raw LZMA stream (no header): what a 7z LZMA coder holds.
func lzmaRaw(c []byte) []byte {
	var b bytes.Buffer
	w, err := lzma.WriterConfig{DictCap: 1 << 16, Size: int64(len(c))}.NewWriter(&b)
	if err != nil {
		panic(err)
	}
	w.Write(c)
	if err := w.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()[lzma.HeaderLen:]
}

// lzmaAlone is c as a .lzma file whose header declares dictionary dict and size size
// (-1: unknown, the stream then ends with a marker).
func lzmaAlone(c []byte, dict uint32, size int64) []byte {
	var b bytes.Buffer
	cfg := lzma.WriterConfig{DictCap: 1 << 16, Size: int64(len(c))}
	if size < 0 {
		cfg = lzma.WriterConfig{DictCap: 1 << 16, EOSMarker: true}
	}
	w, err := cfg.NewWriter(&b)
	if err != nil {
		panic(err)
	}
	w.Write(c)
	if err := w.Close(); err != nil {
		panic(err)
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[1:], dict)
	binary.LittleEndian.PutUint64(out[5:], uint64(size))
	return out
}

// szNumber is 7z's variable-length number: the leading one bits of the first byte count
// the bytes that follow (little-endian), its remaining bits are the high part.
func szNumber(v uint64) []byte {
	for i := 0; i < 8; i++ {
		if v < 1<<(7*(i+1)) {
			b := []byte{byte(uint16(0xff00)>>i) | byte(v>>(8*i))}
			for k := 0; k < i; k++ {
				b = append(b, byte(v>>(8*k)))
			}
			return b
		}
	}
	return binary.LittleEndian.AppendUint64([]byte{0xff}, v)
}

// sevenZipCoder is one 7z coder: its method id and properties.
type sevenZipCoder struct{ id, props []byte }

var (
	sevenZipCopy = sevenZipCoder{id: []byte{0x00}}
	// sevenZipLZMA2 declares dictionary dict; the data must be lzma2Stored.
	sevenZipLZMA2 = func(dict int64) sevenZipCoder {
		return sevenZipCoder{[]byte{0x21}, []byte{lzma2DictByte(dict)}}
	}
	// sevenZipLZMA declares dictionary dict (lc=3 lp=0 pb=2); the data must be lzmaRaw.
	sevenZipLZMA = func(dict uint32) sevenZipCoder {
		return sevenZipCoder{[]byte{0x03, 0x01, 0x01}, binary.LittleEndian.AppendUint32([]byte{0x5d}, dict)}
	}
)

// sevenZip writes a 7z archive of one folder (one coder) holding one member: packed is the
// coder's output, size the unpacked size the header declares (the member's), crc its CRC.
func sevenZip(name string, coder sevenZipCoder, packed []byte, size uint64, crc uint32) []byte {
	var h []byte
	add := func(b ...byte) { h = append(h, b...) }
	num := func(v uint64) { h = append(h, szNumber(v)...) }
	// Header, MainStreamsInfo, PackInfo: at 0, one stream of len(packed) bytes
	add(0x01, 0x04, 0x06)
	num(0)
	num(1)
	add(0x09)
	num(uint64(len(packed)))
	add(0x00)
	// UnpackInfo, one folder (not external) of one simple coder
	add(0x07, 0x0b)
	num(1)
	add(0x00)
	num(1)
	if coder.props == nil {
		add(byte(len(coder.id)))
		add(coder.id...)
	} else {
		add(byte(len(coder.id)) | 0x20)
		add(coder.id...)
		num(uint64(len(coder.props)))
		add(coder.props...)
	}
	add(0x0c) // CodersUnpackSize
	num(size)
	add(0x00)
	// SubStreamsInfo: the member's CRC; end of MainStreamsInfo
	add(0x08, 0x0a, 0x01)
	h = binary.LittleEndian.AppendUint32(h, crc)
	add(0x00, 0x00)
	// FilesInfo: one file, its name in UTF-16 (not external); end of Header
	var n []byte
	for _, u := range utf16.Encode([]rune(name)) {
		n = binary.LittleEndian.AppendUint16(n, u)
	}
	n = append(n, 0, 0)
	add(0x05)
	num(1)
	add(0x11)
	num(uint64(1 + len(n)))
	add(0x00)
	add(n...)
	add(0x00, 0x00)
	return sevenZipRaw(packed, h)
}

// sevenZipRaw writes a 7z archive of packed streams and header h, with the signature header
// that points to h and checks it.
func sevenZipRaw(packed, h []byte) []byte {
	start := make([]byte, 20) // next header offset, size, CRC
	binary.LittleEndian.PutUint64(start[0:], uint64(len(packed)))
	binary.LittleEndian.PutUint64(start[8:], uint64(len(h)))
	binary.LittleEndian.PutUint32(start[16:], crc32.ChecksumIEEE(h))
	out := []byte("7z\xbc\xaf\x27\x1c\x00\x04")
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(start))
	out = append(out, start...)
	out = append(out, packed...)
	return append(out, h...)
}

// sevenZipCountSeeds are 7z headers of a few bytes whose counts and sizes the library
// allocates for before reading what they count: a folder without coders (its bind pairs
// are then 0-1), 3 GiB of coder properties, 2^28 coders, folders and pack sizes, 2^24 files.
func sevenZipCountSeeds() [][]byte {
	n := func(b []byte, v uint64) []byte { return append(b, szNumber(v)...) }
	streams := func(folder []byte) []byte { // Header, MainStreamsInfo, one pack stream of 1 byte
		h := []byte{0x01, 0x04, 0x06, 0x00, 0x01, 0x09, 0x01, 0x00, 0x07, 0x0b, 0x01, 0x00}
		return append(h, folder...)
	}
	const many = 1 << 28
	return [][]byte{
		sevenZipRaw([]byte{0}, streams([]byte{0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00})),
		sevenZipRaw([]byte{0}, streams(n([]byte{0x01, 0x21, 0x21}, hugeDict))),
		sevenZipRaw([]byte{0}, streams(n(nil, many))),
		sevenZipRaw([]byte{0}, append(n([]byte{0x01, 0x04, 0x06, 0x00, 0x01, 0x09, 0x01, 0x00, 0x07, 0x0b}, many), 0x00)),
		sevenZipRaw([]byte{0}, append(n([]byte{0x01, 0x04, 0x06, 0x00}, many), 0x09)),
		sevenZipRaw(nil, n([]byte{0x01, 0x05}, many/16)), // 120 bytes each: 2^28 is a fatal "out of memory"
	}
}

// xzStream writes an xz stream (CRC32 check) with one block per element of dicts, each
// holding c as LZMA2 and declaring that dictionary.
func xzStream(c []byte, dicts ...int64) []byte {
	pad := func(b []byte) []byte {
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	out := []byte("\xfd7zXZ\x00\x00\x01")
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE([]byte{0, 1}))
	index := binary.AppendUvarint([]byte{0x00}, uint64(len(dicts)))
	for _, d := range dicts {
		// block header: its size, flags (one filter), LZMA2 (0x21) with one property byte
		bh := pad([]byte{0, 0x00, 0x21, 0x01, lzma2DictByte(d)})
		bh[0] = byte(len(bh) / 4) // (len(bh)+4)/4 - 1, the CRC included
		bh = binary.LittleEndian.AppendUint32(bh, crc32.ChecksumIEEE(bh))
		data := lzma2Stored(c)
		index = binary.AppendUvarint(index, uint64(len(bh)+len(data)+4))
		index = binary.AppendUvarint(index, uint64(len(c)))
		out = append(out, bh...)
		out = append(out, pad(data)...)
		out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(c))
	}
	index = pad(index)
	index = binary.LittleEndian.AppendUint32(index, crc32.ChecksumIEEE(index))
	out = append(out, index...)
	footer := binary.LittleEndian.AppendUint32(nil, uint32(len(index)/4-1))
	footer = append(footer, 0, 1)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(footer))
	out = append(out, footer...)
	return append(out, "YZ"...)
}

// zstdFrame writes a zstd frame holding c in raw blocks. window > 0 declares that window
// (rounded up to what the descriptor can say); window == 0 makes a single-segment frame
// whose content size is fcs.
func zstdFrame(c []byte, window int64, fcs uint64) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd}
	if window > 0 {
		e, m := 0, 0
		for int64(1)<<(10+e)+int64(1)<<(10+e)/8*int64(m) < window {
			if m++; m == 8 {
				e, m = e+1, 0
			}
		}
		out = append(out, 0x00, byte(e<<3|m)) // no content size, not single segment
	} else {
		out = append(out, 0xe0) // 8-byte content size, single segment
		out = binary.LittleEndian.AppendUint64(out, fcs)
	}
	for first := true; first || len(c) > 0; first = false {
		n := min(len(c), 128<<10)
		hdr := uint32(n) << 3 // raw block
		if n == len(c) {
			hdr |= 1 // last
		}
		out = append(out, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		out = append(out, c[:n]...)
		c = c[n:]
	}
	return out
}

// rar5Varint is RAR 5's variable-length integer: 7 bits a byte, low first.
func rar5Varint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// rar5 writes a RAR 5 archive with one member. comp is the compression information field:
// 0 stores the data; rar5Comp makes one that declares a method and a dictionary.
func rar5(name string, c []byte, size uint64, comp uint64) []byte {
	out := []byte("Rar!\x1a\x07\x01\x00")
	block := func(body []byte, data []byte) {
		h := rar5Varint(nil, uint64(len(body)))
		h = append(h, body...)
		out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(h))
		out = append(out, h...)
		out = append(out, data...)
	}
	block([]byte{1, 0, 0}, nil) // main archive header: no flags
	var f []byte
	f = rar5Varint(f, 2)      // file header
	f = rar5Varint(f, 0x0002) // with a data area
	f = rar5Varint(f, uint64(len(c)))
	f = rar5Varint(f, 0x0004) // CRC32 present
	f = rar5Varint(f, size)
	f = rar5Varint(f, 0x20) // Windows "archive" attribute
	f = binary.LittleEndian.AppendUint32(f, crc32.ChecksumIEEE(c))
	f = rar5Varint(f, comp)
	f = rar5Varint(f, 0) // Windows
	f = rar5Varint(f, uint64(len(name)))
	f = append(f, name...)
	block(f, c)
	block([]byte{5, 0, 0}, nil) // end of archive
	return out
}

// rar5Comp is a RAR 5 compression information field: algorithm version (0 RAR 5, 1 RAR 7),
// method 1-5, dictionary 128 KiB << dictLog, solid.
func rar5Comp(version, method, dictLog uint64, solid bool) uint64 {
	v := version | method<<7 | dictLog<<10
	if solid {
		v |= 0x40
	}
	return v
}

// tarOf writes a tar of members; names tar cannot write are left out.
func tarOf(members map[string][]byte) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, c := range members {
		if tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}) == nil {
			tw.Write(c)
		}
	}
	tw.Close()
	return b.Bytes()
}

func gzipOf(c []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(c)
	zw.Close()
	return b.Bytes()
}

// hostileNamesZip holds one member (the EICAR file) under each hostile name.
func hostileNamesZip() []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, n := range hostileNames {
		if w, err := zw.CreateHeader(&zip.FileHeader{Name: n, Method: zip.Store}); err == nil {
			w.Write([]byte(eicar))
		}
	}
	zw.Close()
	return b.Bytes()
}

// hugeDictSeeds are archives whose headers ask for hugeDict (or a size near it) before
// any data: 7z LZMA2 and LZMA coders, xz (in the first block, in a later block, in a second
// stream), .lzma, zstd (window, single-segment content size) and RAR 5 and 7.
func hugeDictSeeds() [][]byte {
	c := []byte(eicar)
	crc := crc32.ChecksumIEEE(c)
	return [][]byte{
		sevenZip("e.com", sevenZipLZMA2(hugeDict), lzma2Stored(c), uint64(len(c)), crc),
		sevenZip("e.com", sevenZipLZMA(hugeDict), lzmaRaw(c), uint64(len(c)), crc),
		sevenZip("e.com", sevenZipLZMA(1<<31-1), lzmaRaw(c), hugeDict, crc), // the size caps the dictionary: lie about it too
		xzStream(c, hugeDict),
		xzStream(c, 1<<16, hugeDict),
		append(xzStream(c, 1<<16), xzStream(c, hugeDict)...),
		lzmaAlone(c, hugeDict, -1),
		lzmaAlone(c, hugeDict, hugeDict),
		zstdFrame(c, hugeDict, 0),
		zstdFrame(c, 0, hugeDict),
		rar5("e.com", c, hugeDict, rar5Comp(0, 3, 15, false)),
		rar5("e.com", c, uint64(len(c)), rar5Comp(0, 3, 15, true)), // solid: the size does not cap it
		rar5("e.com", c, hugeDict, rar5Comp(1, 3, 19, false)),      // RAR 7: up to 64 GiB
	}
}

// nestedSeed wraps the EICAR file in depth layers of archives, cycling through the formats
// we decode in-process.
func nestedSeed(t testing.TB, depth int) []byte {
	c := []byte(eicar)
	for i := 0; i < depth; i++ {
		switch i % 7 {
		case 0:
			c = zipOf(t, map[string][]byte{fmt.Sprintf("l%d", i): c})
		case 1:
			c = tarOf(map[string][]byte{fmt.Sprintf("l%d", i): c})
		case 2:
			c = gzipOf(c)
		case 3:
			c = sevenZip(fmt.Sprintf("l%d", i), sevenZipLZMA2(1<<16), lzma2Stored(c), uint64(len(c)), crc32.ChecksumIEEE(c))
		case 4:
			c = xzStream(c, 1<<16)
		case 5:
			c = zstdFrame(c, 1<<16, 0)
		case 6:
			c = rar5(fmt.Sprintf("l%d", i), c, uint64(len(c)), 0)
		}
	}
	return c
}

// zipInZip is the EICAR file in depth zips.
func zipInZip(t testing.TB, depth int) []byte {
	c := []byte(eicar)
	for i := 0; i < depth; i++ {
		c = zipOf(t, map[string][]byte{fmt.Sprintf("z%d.zip", i): c})
	}
	return c
}

// archiveSeeds are FuzzArchive's hostile seeds.
func archiveSeeds(t testing.TB) [][]byte {
	c := []byte(eicar)
	s := append(hugeDictSeeds(), sevenZipCountSeeds()...)
	s = append(s, nestedSeed(t, 14), zipInZip(t, 20), hostileNamesZip())
	for _, n := range hostileNames[:8] {
		s = append(s,
			sevenZip(n, sevenZipCopy, c, uint64(len(c)), crc32.ChecksumIEEE(c)),
			rar5(n, c, uint64(len(c)), 0))
	}
	return append(s, tarOf(map[string][]byte{hostileNames[0]: c, hostileNames[5]: c, hostileNames[7]: c}))
}

// foldedHeader is a message whose Subject is folded into size bytes of continuation lines.
func foldedHeader(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nSubject: x")
	for b.Len() < size {
		b.WriteString("\r\n y")
	}
	b.WriteString("\r\nContent-Type: text/plain\r\n\r\nbody\r\n")
	return b.Bytes()
}

// mimeSeeds are FuzzMIME's hostile seeds.
func mimeSeeds() [][]byte {
	s := [][]byte{foldedHeader(1 << 20)}
	// a Content-Type parameter continued over 2,000 RFC 2231 sections
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream")
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&b, ";\r\n name*%d*=%%2E%%2E%%2F%%00x", i)
	}
	b.WriteString("\r\n\r\nx\r\n--b--\r\n")
	s = append(s, []byte(b.String()))
	// messages nested in messages, multiparts in multiparts
	msg := "Content-Type: text/plain\r\n\r\n" + uuencode("e.com", []byte(eicar)) + "\r\n"
	for i := 0; i < 40; i++ {
		msg = "Subject: " + fmt.Sprint(i) + "\r\nContent-Type: message/rfc822\r\n\r\n" + msg
	}
	s = append(s, []byte(msg))
	msg = "Content-Type: text/plain\r\n\r\nx\r\n"
	for i := 0; i < 40; i++ {
		bd := fmt.Sprint("b", i)
		msg = "Content-Type: multipart/mixed; boundary=" + bd + "\r\n\r\n--" + bd + "\r\n" + msg + "--" + bd + "--\r\n"
	}
	s = append(s, []byte(msg))
	// hostile names in filename parameters, an archive declaring a huge dictionary
	for _, n := range hostileNames[:6] {
		s = append(s, withAttachment(strings.ReplaceAll(n, `"`, ""), "application/octet-stream", []byte(eicar)))
	}
	return append(s, withAttachment("x.7z", "application/x-7z-compressed", hugeDictSeeds()[0]))
}

// cpioNewc writes a newc cpio archive with one member of the given mode whose header
// declares size (the data is c).
func cpioNewc(name string, mode uint32, c []byte, size uint32) []byte {
	entry := func(b []byte, name string, mode uint32, c []byte, size uint32) []byte {
		b = fmt.Appendf(b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			1, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
		b = append(append(b, name...), 0)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, c...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	b := entry(nil, name, mode, c, size)
	return entry(b, "TRAILER!!!", 0, nil, 0)
}

// arGNU writes a GNU ar archive whose members are named through the long-name table.
func arGNU(names []string, c []byte) []byte {
	b := []byte("!<arch>\n")
	member := func(name string, data []byte) {
		b = fmt.Appendf(b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", name, 0, 0, 0, 0o644, len(data))
		b = append(b, data...)
		if len(data)%2 == 1 {
			b = append(b, '\n')
		}
	}
	var table []byte
	var offs []int
	for _, n := range names {
		offs = append(offs, len(table))
		table = append(table, n+"/\n"...)
	}
	member("//", table)
	for _, o := range offs {
		member(fmt.Sprintf("/%d", o), c)
	}
	return b
}

// TestFuzzSeedShapes: the seed builders write files our decoders read (the EICAR file comes
// out of each tame variant), so that the hostile variants get as far as the field they
// declare; and the hostile variants declare what they say.
func TestFuzzSeedShapes(t *testing.T) {
	c := []byte(eicar)
	crc := crc32.ChecksumIEEE(c)
	tame := map[string][]byte{
		"7z copy":          sevenZip("e.com", sevenZipCopy, c, uint64(len(c)), crc),
		"7z lzma2":         sevenZip("e.com", sevenZipLZMA2(1<<16), lzma2Stored(c), uint64(len(c)), crc),
		"7z lzma":          sevenZip("e.com", sevenZipLZMA(1<<16), lzmaRaw(c), uint64(len(c)), crc),
		"xz":               xzStream(c, 1<<16),
		"xz two blocks":    xzStream(c, 1<<16, 1<<16),
		"xz two streams":   append(xzStream(c, 1<<16), xzStream(c, 1<<16)...),
		"lzma":             lzmaAlone(c, 1<<16, int64(len(c))),
		"lzma no size":     lzmaAlone(c, 1<<16, -1),
		"zstd window":      zstdFrame(c, 1<<16, 0),
		"zstd single":      zstdFrame(c, 0, uint64(len(c))),
		"rar5 stored":      rar5("e.com", c, uint64(len(c)), 0),
		"nested 7 formats": nestedSeed(t, 7),
		"hostile names":    hostileNamesZip(),
		"cpio":             cpioNewc("../e.com", 0o100644, c, uint32(len(c))),
		"ar":               arGNU([]string{"../e.com"}, c),
	}
	u := New(debianLimits, nil, nil)
	for name, data := range tame {
		t.Run(name, func(t *testing.T) {
			var r *Result
			if name == "ar" { // only Debian packages are ar archives to amavis
				r = runDecoder(t, fuzzDir(t.TempDir()), u, decodeAr, data)
			} else {
				r, _ = unpackMsg(t, debianLimits, withAttachment("x.bin", "application/octet-stream", data))
			}
			found := false
			for _, p := range r.Parts {
				if p.Path != "" && p != r.Root {
					b, err := os.ReadFile(p.Path)
					found = found || err == nil && bytes.HasPrefix(b, c)
				}
			}
			if !found {
				t.Errorf("no part holds the EICAR file\n%s", describe(r))
			}
		})
	}
	for _, x := range [][]byte{xzStream(c, hugeDict), xzStream(c, 1<<20, hugeDict), append(xzStream(c, 1<<20), xzStream(c, hugeDict)...)} {
		if d, err := xzMaxDict(bytes.NewReader(x), int64(len(x))); err != nil || d < hugeDict {
			t.Errorf("the xz seed declares %d bytes (%v)", d, err)
		}
	}
	if d, err := xzMaxDict(bytes.NewReader(xzStream(c, 1<<20, 2<<20)), int64(len(xzStream(c, 1<<20, 2<<20)))); err != nil || d != 2<<20 {
		t.Errorf("xzMaxDict of a tame file: %d (%v)", d, err)
	}
	if d := int64(2|lzma2DictByte(hugeDict)&1) << (lzma2DictByte(hugeDict)/2 + 11); d != hugeDict {
		t.Errorf("the LZMA2 property byte declares %d bytes", d)
	}
}
