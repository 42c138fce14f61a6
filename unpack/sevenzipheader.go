package unpack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// The 7z library allocates for every count of an archive's header before reading what the
// count counts: a 39-byte archive declaring 2^28 files is a fatal "out of memory" (which no
// recover() can catch), a folder without coders a panic. check7zHeader reads the header first
// and refuses counts the header's own bytes cannot hold, and more members than any mail needs.
// It follows the grammar of 7-Zip's 7zFormat.txt, as far as the library reads it.

// Bounds of what a 7z header may declare: far above real mail, far below harm.
const (
	max7zHeader  = 16 << 20 // bytes of header, encoded or not
	max7zMembers = 1 << 16  // files, and unpacked streams
	max7zCoders  = 32       // coders of a folder, streams of a coder
	// max7zDicts bounds the dictionaries of the solid folders together: the library keeps a
	// decoder open per solid folder, so eight of 64 MiB each held 512 MiB.
	max7zDicts = 2 * maxDict
	// max7zKeyRounds is 7-Zip's own bound on AES key derivation (2^24 SHA-256 rounds): an
	// archive declaring 2^40 had the library hash for hours, past any child_timeout.
	max7zKeyRounds = 24
)

var (
	err7zHeader        = errors.New("7z header out of bounds")
	errKeyDerivation   = errors.New("7z AES key derivation over 2^24 rounds")
	errDictionariesSum = errors.New("7z dictionaries of the solid folders over 128 MiB")
)

// check7zHeader validates the header of the 7z archive in r (size bytes). An encoded header is
// decoded, when one LZMA, LZMA2 or Copy coder made it, and checked in turn; one encrypted (its
// first coder is AES) is left to the library, which cannot read it without a password.
func check7zHeader(r io.ReaderAt, size int64) error {
	var sig [32]byte
	if _, err := r.ReadAt(sig[:], 0); err != nil {
		return err
	}
	off, n := binary.LittleEndian.Uint64(sig[12:]), binary.LittleEndian.Uint64(sig[20:])
	if n > max7zHeader || off > uint64(size) || 32+off+n > uint64(size) {
		return err7zHeader
	}
	h := make([]byte, n)
	if _, err := r.ReadAt(h, 32+int64(off)); err != nil {
		return err
	}
	for range 4 { // an encoded header decodes to a header, which may be encoded again
		if len(h) == 0 {
			return nil
		}
		p := &szHeader{b: h[1:]}
		switch h[0] {
		case 0x01:
			return p.header()
		case 0x17:
			si, err := p.streamsInfo()
			if err != nil {
				return err
			}
			if h, err = si.decodeHeader(r, size); err != nil || h == nil {
				return err
			}
		default:
			return err7zHeader
		}
	}
	return err7zHeader
}

// szHeader reads a 7z header: numbers, ids and the structures made of them.
type szHeader struct{ b []byte }

func (p *szHeader) byte() (byte, error) {
	if len(p.b) == 0 {
		return 0, err7zHeader
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c, nil
}

// number is 7z's variable-length number: the leading one bits of the first byte count the
// bytes that follow (little-endian), its remaining bits are the high part.
func (p *szHeader) number() (uint64, error) {
	first, err := p.byte()
	if err != nil {
		return 0, err
	}
	var v uint64
	mask := byte(0x80)
	for i := 0; i < 8; i++ {
		if first&mask == 0 {
			return v | uint64(first&(mask-1))<<(8*i), nil
		}
		c, err := p.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c) << (8 * i)
		mask >>= 1
	}
	return v, nil
}

// numbers reads n numbers.
func (p *szHeader) numbers(n int) ([]uint64, error) {
	if n > len(p.b) { // each takes a byte at least
		return nil, err7zHeader
	}
	v := make([]uint64, n)
	for i := range v {
		var err error
		if v[i], err = p.number(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// count is a number of things that take at least a byte each of what follows.
func (p *szHeader) count() (int, error) {
	v, err := p.number()
	if err != nil || v > uint64(len(p.b)) {
		return 0, err7zHeader
	}
	return int(v), nil
}

func (p *szHeader) skip(n uint64) error {
	if n > uint64(len(p.b)) {
		return err7zHeader
	}
	p.b = p.b[n:]
	return nil
}

func (p *szHeader) expect(id byte) error {
	if c, err := p.byte(); err != nil || c != id {
		return err7zHeader
	}
	return nil
}

// digests reads n CRCs (some possibly undefined) and tells which are defined.
func (p *szHeader) digests(n int) ([]bool, error) {
	all, err := p.byte()
	if err != nil {
		return nil, err
	}
	defined := make([]bool, n)
	if all != 0 {
		for i := range defined {
			defined[i] = true
		}
	} else {
		bits := p.b
		if err := p.skip(uint64((n + 7) / 8)); err != nil {
			return nil, err
		}
		for i := range defined {
			defined[i] = bits[i/8]&(0x80>>(i%8)) != 0
		}
	}
	for _, d := range defined {
		if d {
			if err := p.skip(4); err != nil {
				return nil, err
			}
		}
	}
	return defined, nil
}

func (p *szHeader) header() error {
	for {
		id, err := p.byte()
		switch {
		case err != nil:
			return err
		case id == 0x00:
			return nil
		case id == 0x04:
			if _, err := p.streamsInfo(); err != nil {
				return err
			}
		case id == 0x05:
			if err := p.filesInfo(); err != nil {
				return err
			}
		default: // archive properties and additional streams: the library refuses them itself
			return nil
		}
	}
}

// szStreams is what an encoded header's streams info says of the header's data.
type szStreams struct {
	packPos   uint64
	packSizes []uint64
	folders   []szFolder
}

type szFolder struct {
	coders     [][]byte // method ids
	props      [][]byte
	outStreams int
	unpacked   []uint64
	crc        bool
	streams    uint64 // unpacked streams (members) in the folder; more than one: solid
}

func (p *szHeader) streamsInfo() (*szStreams, error) {
	si := &szStreams{}
	for {
		id, err := p.byte()
		if err != nil {
			return nil, err
		}
		switch id {
		case 0x00:
			return si, si.solidDictionaries()
		case 0x06:
			err = p.packInfo(si)
		case 0x07:
			err = p.unpackInfo(si)
		case 0x08:
			err = p.subStreamsInfo(si)
		default:
			return nil, err7zHeader
		}
		if err != nil {
			return nil, err
		}
	}
}

func (p *szHeader) packInfo(si *szStreams) error {
	var err error
	if si.packPos, err = p.number(); err != nil {
		return err
	}
	n, err := p.count()
	if err != nil || n > max7zMembers {
		return err7zHeader
	}
	for {
		id, err := p.byte()
		if err != nil {
			return err
		}
		switch id {
		case 0x00:
			return nil
		case 0x09:
			if si.packSizes, err = p.numbers(n); err != nil {
				return err
			}
		case 0x0a:
			if _, err := p.digests(n); err != nil {
				return err
			}
		default:
			return err7zHeader
		}
	}
}

func (p *szHeader) unpackInfo(si *szStreams) error {
	if err := p.expect(0x0b); err != nil {
		return err
	}
	n, err := p.count()
	if err != nil || n > max7zMembers {
		return err7zHeader
	}
	if err := p.expect(0x00); err != nil { // folders inline, not external
		return err
	}
	si.folders = make([]szFolder, n)
	for i := range si.folders {
		if err := p.folder(&si.folders[i]); err != nil {
			return err
		}
	}
	if err := p.expect(0x0c); err != nil {
		return err
	}
	for i := range si.folders {
		f := &si.folders[i]
		f.streams = 1
		if f.unpacked, err = p.numbers(f.outStreams); err != nil {
			return err
		}
	}
	for {
		id, err := p.byte()
		if err != nil {
			return err
		}
		switch id {
		case 0x00:
			return nil
		case 0x0a:
			crcs, err := p.digests(len(si.folders))
			if err != nil {
				return err
			}
			for i, c := range crcs {
				si.folders[i].crc = c
			}
		default:
			return err7zHeader
		}
	}
}

func (p *szHeader) folder(f *szFolder) error {
	coders, err := p.number()
	if err != nil || coders == 0 || coders > max7zCoders {
		return err7zHeader
	}
	in := 0
	for range coders {
		flags, err := p.byte()
		if err != nil {
			return err
		}
		id := p.b
		if err := p.skip(uint64(flags & 0x0f)); err != nil {
			return err
		}
		f.coders = append(f.coders, id[:flags&0x0f])
		ins, outs := uint64(1), uint64(1)
		if flags&0x10 != 0 {
			if ins, err = p.number(); err != nil {
				return err
			}
			if outs, err = p.number(); err != nil {
				return err
			}
		}
		if ins == 0 || outs == 0 || ins > max7zCoders || outs > max7zCoders {
			return err7zHeader
		}
		in, f.outStreams = in+int(ins), f.outStreams+int(outs)
		var props []byte
		if flags&0x20 != 0 {
			size, err := p.number()
			if err != nil {
				return err
			}
			props = p.b
			if err := p.skip(size); err != nil {
				return err
			}
			props = props[:size]
		}
		f.props = append(f.props, props)
		if string(f.coders[len(f.coders)-1]) == "\x06\xf1\x07\x01" && len(props) > 0 {
			if rounds := props[0] & 0x3f; rounds > max7zKeyRounds && rounds != 0x3f { // 0x3f: no hashing
				return errKeyDerivation
			}
		}
	}
	bindPairs := f.outStreams - 1
	if _, err := p.numbers(2 * bindPairs); err != nil {
		return err
	}
	packed := in - bindPairs
	if packed < 1 {
		return err7zHeader
	}
	if packed > 1 { // the indices of the packed streams; one is implied
		if _, err := p.numbers(packed); err != nil {
			return err
		}
	}
	return nil
}

// solidDictionaries bounds the dictionaries of the solid folders together: the library keeps
// the decoder of each open while it reads the folder's members (the others close after their
// one member).
func (si *szStreams) solidDictionaries() error {
	var sum uint64
	for i := range si.folders {
		if si.folders[i].streams > 1 {
			if sum += si.folders[i].dictionary(); sum > max7zDicts {
				return errDictionariesSum
			}
		}
	}
	return nil
}

// dictionary is what the folder's LZMA and LZMA2 coders declare, each no more than the
// folder's largest output (a decoder needs no more).
func (f *szFolder) dictionary() uint64 {
	var out uint64
	for _, n := range f.unpacked {
		out = max(out, n)
	}
	var sum uint64
	for i, id := range f.coders {
		var d int64
		switch string(id) {
		case "\x21":
			if len(f.props[i]) == 1 {
				d, _ = lzma2Dict(f.props[i][0])
			}
		case "\x03\x01\x01":
			if len(f.props[i]) == 5 {
				d = int64(binary.LittleEndian.Uint32(f.props[i][1:]))
			}
		}
		sum += min(uint64(d), out)
	}
	return sum
}

func (p *szHeader) subStreamsInfo(si *szStreams) error {
	streams := make([]uint64, len(si.folders))
	for i := range streams {
		streams[i] = 1
	}
	id, err := p.byte()
	if err != nil {
		return err
	}
	if id == 0x0d {
		var total uint64
		for i := range streams {
			if streams[i], err = p.number(); err != nil {
				return err
			}
			if total += streams[i]; streams[i] > max7zMembers || total > max7zMembers {
				return err7zHeader
			}
			if i < len(si.folders) {
				si.folders[i].streams = streams[i]
			}
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	}
	if id == 0x09 {
		for _, n := range streams {
			if _, err := p.numbers(int(max(n, 1) - 1)); err != nil {
				return err
			}
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	}
	if id == 0x0a {
		unknown := 0
		for i, n := range streams {
			if n != 1 || !si.folders[i].crc {
				unknown += int(n)
			}
		}
		if _, err := p.digests(unknown); err != nil {
			return err
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	}
	if id != 0x00 {
		return err7zHeader
	}
	return nil
}

func (p *szHeader) filesInfo() error {
	files, err := p.number()
	if err != nil || files > max7zMembers {
		return err7zHeader
	}
	for {
		kind, err := p.byte()
		if err != nil || kind == 0x00 {
			return err
		}
		size, err := p.number()
		if err != nil {
			return err
		}
		if err := p.skip(size); err != nil {
			return err
		}
	}
}

// decodeHeader decodes an encoded header made by one LZMA, LZMA2 or Copy coder; nil (and no
// error) when its first coder is AES: the library reports it as encrypted.
func (si *szStreams) decodeHeader(r io.ReaderAt, size int64) ([]byte, error) {
	if len(si.folders) != 1 || len(si.packSizes) != 1 {
		return nil, err7zHeader
	}
	f := si.folders[0]
	if bytes.Equal(f.coders[0], []byte{0x06, 0xf1, 0x07, 0x01}) {
		return nil, nil
	}
	if len(f.coders) != 1 || len(f.unpacked) != 1 || f.unpacked[0] > max7zHeader {
		return nil, err7zHeader
	}
	start, n := 32+si.packPos, si.packSizes[0]
	if si.packPos > uint64(size) || n > uint64(size) || start+n > uint64(size) {
		return nil, err7zHeader
	}
	var packed io.ReadCloser = io.NopCloser(io.NewSectionReader(r, int64(start), int64(n)))
	var dec io.ReadCloser
	var err error
	switch string(f.coders[0]) {
	case "\x00":
		dec = packed
	case "\x21":
		dec, err = decode7zLZMA2(f.props[0], f.unpacked[0], []io.ReadCloser{packed})
	case "\x03\x01\x01":
		dec, err = decode7zLZMA(f.props[0], f.unpacked[0], []io.ReadCloser{packed})
	default:
		return nil, err7zHeader
	}
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	h := make([]byte, f.unpacked[0])
	if _, err := io.ReadFull(dec, h); err != nil {
		return nil, err
	}
	return h, nil
}
