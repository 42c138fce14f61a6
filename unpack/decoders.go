package unpack

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/bodgit/sevenzip"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/nwaples/rardecode/v2"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// decodeFunc decodes part p into new parts under it; keep tells whether p's own file stays
// (amavis keeps the original of mail and of text with uuencoded blocks, and drops archives).
type decodeFunc func(j *job, p *Part) (keep bool, err error)

// decoder is one entry of amavis's @decoders: the first entry whose short type matches wins;
// an external one whose program is missing is skipped.
type decoder struct {
	types []string
	run   decodeFunc // in-process, or nil
	ext   string     // external format (see externals)
}

var decoders = []decoder{
	{types: []string{"F"}, ext: "F"},
	{types: []string{"Z"}, ext: "Z"},
	{types: []string{"gz"}, run: decodeGzip},
	{types: []string{"bz2"}, run: decodeStream("bunzip2", func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil })},
	{types: []string{"xz"}, run: decodeXZ},
	{types: []string{"lzma"}, run: decodeStream("unlzma", func(r io.Reader) (io.Reader, error) {
		return lzma.ReaderConfig{DictCap: maxDict}.NewReader(r)
	})},
	{types: []string{"lrz"}, ext: "lrz"},
	{types: []string{"lzo"}, ext: "lzo"},
	{types: []string{"lz4"}, run: decodeStream("unlz4", func(r io.Reader) (io.Reader, error) { return lz4.NewReader(r), nil })},
	{types: []string{"rpm"}, run: decodeRPM},
	{types: []string{"cpio"}, run: decodeCpio},
	{types: []string{"tar"}, run: decodeTar},
	{types: []string{"deb"}, run: decodeAr},
	{types: []string{"rar"}, run: decodeRar},
	{types: []string{"arj"}, ext: "arj"},
	{types: []string{"arc"}, ext: "arc"},
	{types: []string{"zoo"}, ext: "zoo"},
	{types: []string{"doc"}, ext: "doc"},
	{types: []string{"cab"}, ext: "cab"},
	{types: []string{"tnef"}, run: decodeTNEF},
	{types: []string{"zip", "kmz"}, run: decodeZip},
	{types: []string{"7z"}, run: decode7z},
	{types: []string{"lha"}, ext: "lha"},
	{types: []string{"iso"}, ext: "iso"},
	{types: []string{"exe"}, run: decodeExe},
	{types: []string{"zst"}, run: decodeStream("unzstd", newZstd)},
	{types: []string{"uue", "asc", "txt"}, run: decodeUUE},
}

// maxDict bounds the dictionary (window) a compressed stream may ask us to allocate.
const maxDict = 64 << 20

// decoderFor picks the decoder of part p, or nil when it is atomic.
func (j *job) decoderFor(p *Part) decodeFunc {
	switch p.Type {
	case "message/rfc822", "message/global", "message/news":
		return decodeNested
	}
	if p.mail {
		return decodeNested
	}
	for _, d := range decoders {
		if !slices.ContainsFunc(d.types, func(t string) bool { return slices.Contains(p.ShortTypes, t) }) {
			continue
		}
		if d.run != nil {
			return d.run
		}
		if j.u.progs[d.ext] != "" {
			return externalDecoder(d.ext)
		}
	}
	return nil
}

func openPart(p *Part) (*os.File, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, internalError{err}
	}
	return f, nil
}

// decodeStream makes a decoder for a single compressed stream: one member, no name.
func decodeStream(by string, open func(io.Reader) (io.Reader, error)) decodeFunc {
	return func(j *job, p *Part) (bool, error) {
		f, err := openPart(p)
		if err != nil {
			return true, err
		}
		defer f.Close()
		r, err := open(bufio.NewReaderSize(f, 32<<10))
		if err != nil {
			return true, decodeError{err}
		}
		if c, ok := r.(io.Closer); ok {
			defer c.Close()
		}
		_, err = j.extract(p, "", r, by)
		return false, err
	}
}

func newZstd(r io.Reader) (io.Reader, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxDict), zstd.WithDecoderMaxMemory(1<<40))
	if err != nil {
		return nil, err
	}
	return zstdCloser{d}, nil
}

type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }

// decodeGzip keeps the name stored in the gzip header as the member's name.
func decodeGzip(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 32<<10))
	if err != nil {
		return true, decodeError{err}
	}
	_, err = j.extract(p, zr.Name, zr, "gunzip")
	return false, err
}

// decodeXZ refuses files in which any block asks for a dictionary over maxDict: the library
// allocates each block's dictionary before reading its data, and only the first block was
// checked once, so a later block or stream could still ask for 3 GiB.
func decodeXZ(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	d, err := xzMaxDict(f, p.Size)
	if err != nil {
		return true, decodeError{err} // a damaged file: left as it is, as the decoder would
	}
	if d > maxDict {
		p.addAttr("U")
		return true, decodeError{errDictTooLarge}
	}
	r, err := xz.ReaderConfig{DictCap: 1 << 20}.NewReader(bufio.NewReaderSize(f, 32<<10))
	if err != nil {
		return true, decodeError{err}
	}
	_, err = j.extract(p, "", r, "unxz")
	return false, err
}

// xzMaxDict is the largest dictionary any block of an xz file declares. It walks the streams
// from the end, as the format allows without decoding: each stream's footer gives its index,
// the index the sizes of its blocks, and so the place of every block header. A file whose
// structure does not add up is an error (the decoder would refuse it too, but only at its end).
func xzMaxDict(r io.ReaderAt, size int64) (int64, error) {
	read := func(off, n int64) ([]byte, error) {
		if off < 0 || n < 0 || n > 1<<20 || off+n > size {
			return nil, errors.New("xz: structure out of bounds")
		}
		b := make([]byte, n)
		_, err := r.ReadAt(b, off)
		return b, err
	}
	var most int64
	end := size
	for end > 0 {
		pad, err := read(end-4, 4)
		if err != nil {
			return 0, err
		}
		if binary.LittleEndian.Uint32(pad) == 0 { // stream padding
			end -= 4
			continue
		}
		footer, err := read(end-12, 12)
		if err != nil {
			return 0, err
		}
		if string(footer[10:]) != "YZ" {
			return 0, errors.New("xz: no stream footer")
		}
		indexSize := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
		indexAt := end - 12 - indexSize
		index, err := read(indexAt, indexSize)
		if err != nil {
			return 0, err
		}
		blocks, err := xzIndexBlocks(index)
		if err != nil {
			return 0, err
		}
		var total int64
		for _, unpadded := range blocks {
			total += (unpadded + 3) &^ 3
		}
		start := indexAt - total - 12
		if head, err := read(start, 6); err != nil || string(head) != "\xfd7zXZ\x00" {
			return 0, errors.New("xz: no stream header where the index says")
		}
		at := start + 12
		for _, unpadded := range blocks {
			first, err := read(at, 1)
			if err != nil {
				return 0, err
			}
			h, err := read(at, (int64(first[0])+1)*4)
			if err != nil {
				return 0, err
			}
			most = max(most, xzBlockDict(h))
			at += (unpadded + 3) &^ 3
		}
		end = start
	}
	return most, nil
}

// xzIndexBlocks reads the unpadded size of each block from a stream's index.
func xzIndexBlocks(index []byte) ([]int64, error) {
	if len(index) < 8 || index[0] != 0 {
		return nil, errors.New("xz: bad index")
	}
	b := index[1 : len(index)-4]
	next := func() (int64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 || v > 1<<62 {
			return 0, errors.New("xz: bad index")
		}
		b = b[n:]
		return int64(v), nil
	}
	count, err := next()
	if err != nil || count > int64(len(b)) { // each record takes at least two bytes
		return nil, errors.New("xz: bad index")
	}
	blocks := make([]int64, count)
	for i := range blocks {
		if blocks[i], err = next(); err != nil {
			return nil, err
		}
		if _, err := next(); err != nil { // uncompressed size
			return nil, err
		}
	}
	return blocks, nil
}

// xzBlockDict reads the LZMA2 dictionary size from an xz block header (h holds the whole
// header); 0 when it names no LZMA2 filter.
func xzBlockDict(h []byte) int64 {
	if len(h) < 2 {
		return 0
	}
	flags := h[1]
	h = h[2:]
	varint := func() uint64 {
		v, n := binary.Uvarint(h)
		if n <= 0 {
			h = nil
			return 0
		}
		h = h[n:]
		return v
	}
	if flags&0x40 != 0 {
		varint()
	}
	if flags&0x80 != 0 {
		varint()
	}
	for i := 0; i <= int(flags&3) && len(h) > 0; i++ {
		id, psize := varint(), varint()
		if uint64(len(h)) < psize {
			return 0
		}
		if id == 0x21 && psize == 1 {
			d, err := lzma2Dict(h[0] & 0x3f)
			if err != nil {
				return 1 << 40
			}
			return d
		}
		h = h[psize:]
	}
	return 0
}

// member handles one archive entry by its file mode: regular files are extracted, links
// and special files are recorded (L, S), directories are skipped.
func (j *job) member(p *Part, name string, mode fs.FileMode, size int64, open func() (io.Reader, error), by string) error {
	switch {
	case mode.IsDir():
		return nil
	case mode&fs.ModeSymlink != 0:
		return j.specialMember(p, name, "L", size)
	case !mode.IsRegular():
		return j.specialMember(p, name, "S", size)
	}
	r, err := open()
	if r == nil {
		return err // not readable; open recorded why
	}
	_, err = j.extract(p, name, r, by)
	return err
}

func decodeZip(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	zr, err := zip.NewReader(f, p.Size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return true, decodeError{err}
	}
	return zipMembers(j, p, zr)
}

func zipMembers(j *job, p *Part, zr *zip.Reader) (bool, error) {
	for _, zf := range zr.File {
		size := int64(zf.UncompressedSize64)
		if zf.Flags&1 != 0 && !zf.Mode().IsDir() {
			if err := j.specialMember(p, zf.Name, "C", size); err != nil {
				return true, err
			}
			continue
		}
		var rc io.ReadCloser
		err := j.member(p, zf.Name, zf.Mode(), size, func() (io.Reader, error) {
			r, err := zf.Open()
			if err != nil {
				// an unknown compression method: the member cannot be seen
				return nil, j.specialMember(p, zf.Name, "U", size)
			}
			rc = r
			return r, nil
		}, "unzip")
		if rc != nil {
			rc.Close() // returns the inflater to archive/zip's pool: one per member is garbage
		}
		if err = memberErr(err); err != nil {
			return true, err
		}
	}
	return false, nil
}

// memberErr lets one broken member pass (the next may be fine) and stops on limits.
func memberErr(err error) error {
	var de decodeError
	if errors.As(err, &de) {
		return nil
	}
	return err
}

func decode7z(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	if err := check7zHeader(f, p.Size); err != nil {
		if errors.Is(err, errKeyDerivation) {
			p.addAttr("C") // encrypted, and its key too costly to even try
		}
		return true, decodeError{err} // as when the library refuses an archive
	}
	zr, err := sevenzip.NewReader(f, p.Size)
	if err != nil {
		var re *sevenzip.ReadError
		if errors.As(err, &re) && re.Encrypted {
			p.addAttr("C") // encrypted headers: not even the names can be seen
		}
		return true, decodeError{err}
	}
	for i, zf := range zr.File {
		fi := zf.FileInfo()
		var rc io.ReadCloser
		var checked *crcReader
		err := j.member(p, zf.Name, fi.Mode(), fi.Size(), func() (io.Reader, error) {
			r, err := zf.Open()
			if err != nil {
				return nil, j.unreadable(p, zf.Name, fi.Size(), err)
			}
			rc = r
			checked = &crcReader{r: r, want: zf.CRC32}
			return checked, nil
		}, "7z")
		if rc != nil {
			rc.Close()
		}
		var re *sevenzip.ReadError
		switch {
		case errors.As(err, &re) && re.Encrypted:
			j.markLast(p, "C")
			continue
		case errors.Is(err, errCRC):
			// Data that fails its CRC is undecipherable, or encrypted when a password changes it.
			attr := "U"
			if sevenZipPasswordMatters(f, p.Size, i, checked.sum) {
				attr = "C"
			}
			j.markLast(p, attr)
			continue
		}
		if err = memberErr(err); err != nil {
			return true, err
		}
	}
	return false, nil
}

// errCRC: a member's data does not match the CRC its archive gives for it.
var errCRC = errors.New("CRC mismatch")

// crcReader checks a 7z member's data against its CRC at the end, which the library does not:
// an encrypted member read without its password can decode to plausible garbage.
type crcReader struct {
	r    io.Reader
	want uint32
	sum  uint32
}

func (c *crcReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.sum = crc32.Update(c.sum, crc32.IEEETable, b[:n])
	if err == io.EOF && c.want != 0 && c.sum != c.want {
		return n, errCRC
	}
	return n, err
}

// sevenZipPasswordMatters reads member i of the archive again with a password: when the data
// then differs (or the library reports encryption), the member is encrypted. The member was
// read once already, so this costs no more than that did.
func sevenZipPasswordMatters(f io.ReaderAt, size int64, i int, sumWithout uint32) bool {
	zr, err := sevenzip.NewReaderWithPassword(f, size, "amavisgo-probe")
	if err != nil || i >= len(zr.File) {
		return false
	}
	r, err := zr.File[i].Open()
	var re *sevenzip.ReadError
	if errors.As(err, &re) {
		return re.Encrypted
	}
	if err != nil {
		return false
	}
	defer r.Close()
	h := crc32.NewIEEE()
	_, err = io.Copy(h, io.LimitReader(r, int64(zr.File[i].UncompressedSize)))
	if errors.As(err, &re) {
		return re.Encrypted
	}
	return err == nil && h.Sum32() != sumWithout
}

// unreadable records a member that cannot be opened: C when encryption is the reason, else U.
func (j *job) unreadable(p *Part, name string, size int64, err error) error {
	attr := "U"
	var re *sevenzip.ReadError
	if errors.As(err, &re) && re.Encrypted {
		attr = "C"
	}
	if herr := j.specialMember(p, name, attr, size); herr != nil {
		return herr
	}
	return nil
}

// markLast adds attr to the last member of p (one whose data turned out encrypted).
func (j *job) markLast(p *Part, attr string) {
	if n := len(p.Children); n > 0 {
		p.Children[n-1].addAttr(attr)
	}
}

func decodeRar(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	return rarMembers(j, p, f)
}

func rarMembers(j *job, p *Part, f io.Reader) (bool, error) {
	rr, err := rardecode.NewReader(bufio.NewReaderSize(f, 32<<10), rardecode.MaxDictionarySize(maxDict))
	if err != nil {
		if errors.Is(err, rardecode.ErrArchiveEncrypted) {
			p.addAttr("C")
		}
		return true, decodeError{err}
	}
	for {
		h, err := rr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			if errors.Is(err, rardecode.ErrArchiveEncrypted) || errors.Is(err, rardecode.ErrArchivedFileEncrypted) {
				p.addAttr("C")
			}
			return true, decodeError{err}
		}
		if h.Encrypted && !h.IsDir {
			if err := j.specialMember(p, h.Name, "C", h.UnPackedSize); err != nil {
				return true, err
			}
			continue
		}
		mode := h.Mode()
		if h.IsDir {
			mode |= fs.ModeDir
		}
		err = j.member(p, h.Name, mode, h.UnPackedSize, func() (io.Reader, error) { return rr, nil }, "unrar")
		if err = memberErr(err); err != nil {
			return true, err
		}
	}
}

func decodeTar(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	tr := tar.NewReader(bufio.NewReaderSize(f, 32<<10))
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return n > 0, decodeError{err}
		}
		var mode fs.FileMode
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		case tar.TypeDir:
			mode = fs.ModeDir
		case tar.TypeSymlink, tar.TypeLink:
			mode = fs.ModeSymlink
		case tar.TypeXHeader, tar.TypeXGlobalHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			continue
		default:
			mode = fs.ModeDevice
		}
		err = j.member(p, h.Name, mode, h.Size, func() (io.Reader, error) { return tr, nil }, "tar")
		if err = memberErr(err); err != nil {
			return true, err
		}
	}
}

// decodeExe looks for an archive inside a program (a self-extracting zip or rar), as amavis's
// do_executable does with unrar and unarj; the program itself is kept.
func decodeExe(j *job, p *Part) (bool, error) {
	f, err := openPart(p)
	if err != nil {
		return true, err
	}
	defer f.Close()
	if zr, err := zip.NewReader(f, p.Size); err == nil && len(zr.File) > 0 {
		_, err := zipMembers(j, p, zr)
		return true, err
	}
	head := make([]byte, min(p.Size, 1<<20)) // rardecode looks this far for an SFX archive
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, p.Size), head); err != nil {
		return true, internalError{err}
	}
	if bytes.Contains(head, []byte("Rar!\x1a\x07")) {
		_, err := rarMembers(j, p, io.NewSectionReader(f, 0, p.Size))
		return true, err
	}
	return true, nil
}
