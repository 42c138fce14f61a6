package unpack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/bodgit/sevenzip"
	"github.com/ulikunitz/xz/lzma"
)

// The 7z library allocates whatever dictionary or window a coder's properties declare before it
// reads a byte of data: a 734-byte archive declaring a 3 GiB LZMA2 dictionary took 3 GiB per
// member. Our own decompressors for the coders with a declared size refuse anything over
// maxDict first; the member is then undecodable, as any other broken member.
func init() {
	sevenzip.RegisterDecompressor([]byte{0x21}, decode7zLZMA2)
	sevenzip.RegisterDecompressor([]byte{0x03, 0x01, 0x01}, decode7zLZMA)
	sevenzip.RegisterDecompressor([]byte{0x04, 0xf7, 0x11, 0x01}, decode7zZstd)
}

// errDictTooLarge: a compressed stream declares a dictionary (window) over maxDict.
var errDictTooLarge = fmt.Errorf("dictionary over %d MiB", maxDict>>20)

// lzma2Dict is the dictionary size an LZMA2 property byte declares (xz and 7z alike).
func lzma2Dict(p byte) (int64, error) {
	switch {
	case p > 40:
		return 0, errors.New("invalid LZMA2 dictionary property")
	case p == 40:
		return 1<<32 - 1, nil
	}
	return int64(2|p&1) << (p/2 + 11), nil
}

func decode7zLZMA2(props []byte, size uint64, readers []io.ReadCloser) (io.ReadCloser, error) {
	if len(readers) != 1 || len(props) != 1 {
		return nil, errors.New("lzma2: malformed coder")
	}
	dict, err := lzma2Dict(props[0])
	if err != nil {
		return nil, err
	}
	if dict > maxDict {
		return nil, errDictTooLarge
	}
	if size > 0 { // a decoder needs no more dictionary than it has output to make
		dict = min(dict, int64(min(size, maxDict)))
	}
	r, err := lzma.Reader2Config{DictCap: int(max(dict, lzma.MinDictCap))}.NewReader2(readers[0])
	if err != nil {
		return nil, err
	}
	return readCloser{r, readers[0]}, nil
}

// decode7zLZMA reads a 7z LZMA coder: 5 property bytes (lc/lp/pb, the dictionary size), the
// unpacked size from the folder; the library's reader takes them as a .lzma header.
func decode7zLZMA(props []byte, size uint64, readers []io.ReadCloser) (io.ReadCloser, error) {
	if len(readers) != 1 || len(props) != 5 {
		return nil, errors.New("lzma: malformed coder")
	}
	if int64(binary.LittleEndian.Uint32(props[1:])) > maxDict {
		return nil, errDictTooLarge
	}
	header := binary.LittleEndian.AppendUint64(bytes.Clone(props), size)
	r, err := lzma.ReaderConfig{DictCap: maxDict}.NewReader(io.MultiReader(bytes.NewReader(header), readers[0]))
	if err != nil {
		return nil, err
	}
	return readCloser{r, readers[0]}, nil
}

func decode7zZstd(_ []byte, _ uint64, readers []io.ReadCloser) (io.ReadCloser, error) {
	if len(readers) != 1 {
		return nil, errors.New("zstd: malformed coder")
	}
	r, err := newZstd(readers[0])
	if err != nil {
		return nil, err
	}
	return readCloser{r, readers[0]}, nil
}

// readCloser reads from a decoder; Close closes the decoder, when it has a Close, and the
// stream under it.
type readCloser struct {
	io.Reader
	under io.Closer
}

func (r readCloser) Close() error {
	if c, ok := r.Reader.(io.Closer); ok {
		c.Close()
	}
	return r.under.Close()
}
