package unpack

import (
	"bytes"
	"path/filepath"
	"sync"
	"syscall"
)

// partFile writes one part file with plain system calls (an os.File would also try to
// register with the network poller) and keeps the head of the data, so that the part is typed
// without reading it back.
type partFile struct {
	fd    int
	n     int64
	head  [sniffLen]byte
	nhead int
	begin bool // "begin " seen: the text may hold uuencoded files
	tail  [5]byte
}

var beginMark = []byte("begin ")

// partFiles keeps closed partFiles for the next part: each holds a sniffLen head, which would
// otherwise be allocated (and cleared) for every part of every message.
var partFiles = sync.Pool{New: func() any { return new(partFile) }}

// create opens the new file of part p.
func (j *job) create(p *Part) (*partFile, error) {
	path := filepath.Join(j.dir, p.Name)
	fd, err := syscall.Open(path, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, internalError{&pathError{"create", path, err}}
	}
	p.Path = path
	f := partFiles.Get().(*partFile)
	f.fd, f.n, f.nhead, f.begin, f.tail = fd, 0, 0, false, [5]byte{}
	return f, nil
}

func (w *partFile) Write(b []byte) (int, error) {
	if w.nhead < sniffLen {
		w.nhead += copy(w.head[w.nhead:], b)
	}
	if !w.begin {
		// also across the seam of two writes
		var seam [10]byte
		k := copy(seam[:], w.tail[:min(int(w.n), 5)])
		k += copy(seam[k:], b[:min(len(b), 5)])
		w.begin = bytes.Contains(b, beginMark) || bytes.Contains(seam[:k], beginMark)
	}
	if len(b) >= 5 {
		copy(w.tail[:], b[len(b)-5:])
	}
	done := 0
	for done < len(b) {
		n, err := syscall.Write(w.fd, b[done:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return done, internalError{err}
		}
		done += n
	}
	w.n += int64(done)
	return done, nil
}

// Close closes the file; w goes back to the pool and must not be used after.
func (w *partFile) Close() error {
	err := syscall.Close(w.fd)
	partFiles.Put(w)
	if err != nil {
		return internalError{err}
	}
	return nil
}

// finish records size and, when the head tells, the short types of a freshly written part.
func (w *partFile) finish(p *Part) {
	p.Size = w.n
	p.noUU = !w.begin
	if w.n == 0 {
		return
	}
	head := w.head[:w.nhead]
	t := detect(head)
	if t == nil {
		if w.n > sniffLen {
			return // let detectFile look further (ISO 9660)
		}
		t = fallback(head)
	}
	p.ShortTypes = t
	p.mail = (t[0] == "asc" || t[0] == "txt") && looksLikeMail(head)
}

type pathError struct {
	op, path string
	err      error
}

func (e *pathError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
