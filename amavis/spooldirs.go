package amavis

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// A message directory is made once and used again, as amavis keeps one directory per child
// process across its tasks (Amavis::TempDir): making and removing TEMPBASE/amavis-* and its
// parts/ were four of the most expensive system calls on a small message's path
// (docs/performance.md). A directory is taken again only when it is verifiably what a new one
// would be: still at its name, holding an empty parts/ and nothing else. What a message left
// there never meets the next one; such a directory is removed as before.

// spoolDir is one message directory, with the descriptor its check reads.
type spoolDir struct {
	path, base string    // TEMPBASE/amavis-..., and the TEMPBASE it was made in
	fd         int       // an open O_DIRECTORY descriptor of path
	idle       time.Time // when it was given back
}

// spoolDirs holds the directories of finished messages. It grows to the number of messages
// processed at once (max_servers, and AM.PDP requests); a directory unused for dropAfter goes.
type spoolDirs struct {
	mu     sync.Mutex
	free   []*spoolDir // the most recently given back last
	closed bool
}

// dropAfter: a kept directory unused this long is removed (after a burst of mail, or a reload
// that lowered max_servers).
const dropAfter = 10 * time.Minute

// take returns an empty message directory in tempbase: one kept from an earlier message, or a
// new one. A kept directory is checked right before it is used, so that whatever came into it
// after its message (or a clean-up job's removal) is seen.
func (p *spoolDirs) take(tempbase string, now time.Time) (*spoolDir, error) {
	for {
		p.mu.Lock()
		if len(p.free) == 0 {
			p.mu.Unlock()
			return newSpoolDir(tempbase, now)
		}
		sd := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		p.mu.Unlock()
		if sd.base == tempbase && sd.clean() {
			return sd, nil
		}
		sd.remove() // TEMPBASE changed with a reload, or the directory is not what it was
	}
}

// newSpoolDir makes TEMPBASE/amavis-<YYYYMMDDTHHMMSS>-<pid>-<8 random>/parts (mode 0750).
func newSpoolDir(tempbase string, now time.Time) (*spoolDir, error) {
	dir, err := makeSpoolDir(tempbase, now) // spool.go
	if err != nil {
		return nil, err
	}
	sd := &spoolDir{path: dir, base: tempbase, fd: -1}
	parts := filepath.Join(dir, "parts")
	if err = syscall.Mkdir(parts, 0o750); err == nil {
		sd.fd, err = syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		sd.remove()
		return nil, &os.PathError{Op: "mkdir", Path: parts, Err: err}
	}
	return sd, nil
}

// put takes back the directory of a finished message whose files were unlinked; take checks
// it before it serves again. Directories unused for dropAfter are removed.
func (p *spoolDirs) put(sd *spoolDir, now time.Time) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return sd.remove()
	}
	sd.idle = now
	p.free = append(p.free, sd)
	var stale []*spoolDir
	for len(p.free) > 0 && now.Sub(p.free[0].idle) > dropAfter {
		stale = append(stale, p.free[0])
		p.free = p.free[1:]
	}
	p.mu.Unlock()
	for _, old := range stale {
		old.remove()
	}
	return nil
}

// clean: the directory is still the one at its path (not removed or replaced, which would make
// every later message fail), and holds parts/ and nothing else, parts/ nothing at all. parts/
// is opened afresh: a parts/ made again (unpack makes a missing one) is the one looked at.
func (sd *spoolDir) clean() bool {
	var atPath, open syscall.Stat_t
	if syscall.Stat(sd.path, &atPath) != nil || syscall.Fstat(sd.fd, &open) != nil ||
		atPath.Dev != open.Dev || atPath.Ino != open.Ino {
		return false
	}
	if _, err := syscall.Seek(sd.fd, 0, 0); err != nil || !dirHolds(sd.fd, "parts") { // read before
		return false
	}
	parts, err := syscall.Openat(sd.fd, "parts", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(parts)
	return dirHolds(parts, "")
}

// dirHolds: the open directory fd, read from its current position, has no entry but . and ..
// and want (when not ""). It reads to the end of the directory: one read stops before an entry
// that does not fit, and a long name must not go unseen.
func dirHolds(fd int, want string) bool {
	var buf [1024]byte
	seen := false
	for {
		n, err := syscall.ReadDirent(fd, buf[:])
		if err != nil {
			return false
		}
		if n == 0 {
			return seen || want == ""
		}
		_, _, names := syscall.ParseDirent(buf[:n], -1, nil) // skips . and ..
		for _, name := range names {
			if name != want || seen {
				return false
			}
			seen = true
		}
	}
}

// release gives up the directory without removing it (kept as evidence).
func (sd *spoolDir) release() {
	if sd.fd >= 0 {
		syscall.Close(sd.fd)
		sd.fd = -1
	}
}

// remove deletes the directory with whatever is in it.
func (sd *spoolDir) remove() error {
	sd.release()
	return os.RemoveAll(sd.path)
}

// close removes the kept directories; a directory given back later is removed too. The daemon
// calls it when it stops.
func (p *spoolDirs) close() {
	p.mu.Lock()
	free := p.free
	p.free, p.closed = nil, true
	p.mu.Unlock()
	for _, sd := range free {
		sd.remove()
	}
}
