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

// spoolDir is one message directory and its parts/, with the descriptors its check reads.
type spoolDir struct {
	path, base  string // TEMPBASE/amavis-..., and the TEMPBASE it was made in
	fd, partsFD int    // open O_DIRECTORY descriptors of path and path/parts
}

// spoolDirs holds the directories of finished messages. It grows to the number of messages
// processed at once (max_servers, and AM.PDP requests) and no further.
type spoolDirs struct {
	mu     sync.Mutex
	free   []*spoolDir
	closed bool
}

// take returns an empty message directory in tempbase: one kept from an earlier message, or a
// new one.
func (p *spoolDirs) take(tempbase string, now time.Time) (*spoolDir, error) {
	p.mu.Lock()
	for len(p.free) > 0 {
		sd := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if sd.base == tempbase {
			p.mu.Unlock()
			return sd, nil
		}
		sd.remove() // TEMPBASE changed with a reload
	}
	p.mu.Unlock()
	return newSpoolDir(tempbase, now)
}

// newSpoolDir makes TEMPBASE/amavis-<YYYYMMDDTHHMMSS>-<pid>-<8 random>/parts (mode 0750).
func newSpoolDir(tempbase string, now time.Time) (*spoolDir, error) {
	dir, err := makeSpoolDir(tempbase, now) // spool.go
	if err != nil {
		return nil, err
	}
	sd := &spoolDir{path: dir, base: tempbase, fd: -1, partsFD: -1}
	parts := filepath.Join(dir, "parts")
	if err = syscall.Mkdir(parts, 0o750); err == nil {
		if sd.fd, err = openDir(dir); err == nil {
			sd.partsFD, err = openDir(parts)
		}
	}
	if err != nil {
		sd.remove()
		return nil, &os.PathError{Op: "mkdir", Path: parts, Err: err}
	}
	return sd, nil
}

func openDir(path string) (int, error) {
	return syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
}

// put takes back the directory of a finished message whose files were unlinked: kept when it
// is clean, removed otherwise.
func (p *spoolDirs) put(sd *spoolDir) error {
	clean := sd.clean()
	p.mu.Lock()
	if clean && !p.closed {
		p.free = append(p.free, sd)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return sd.remove()
}

// clean: the directory is still the one at its path (not removed or replaced, which would
// make every later message fail), and holds parts/ and nothing else, parts/ nothing at all.
func (sd *spoolDir) clean() bool {
	var atPath, open syscall.Stat_t
	if syscall.Stat(sd.path, &atPath) != nil || syscall.Fstat(sd.fd, &open) != nil ||
		atPath.Dev != open.Dev || atPath.Ino != open.Ino {
		return false
	}
	return dirHolds(sd.fd, "parts") && dirHolds(sd.partsFD, "")
}

// dirHolds: the open directory fd has no entry but . and .. and want (when not "").
func dirHolds(fd int, want string) bool {
	if _, err := syscall.Seek(fd, 0, 0); err != nil {
		return false
	}
	var buf [256]byte
	n, err := syscall.ReadDirent(fd, buf[:])
	if err != nil || n == len(buf) {
		return false
	}
	_, _, names := syscall.ParseDirent(buf[:n], -1, nil) // skips . and ..
	return len(names) == 0 && want == "" || len(names) == 1 && names[0] == want
}

// release gives up the directory without removing it (kept as evidence).
func (sd *spoolDir) release() {
	for _, fd := range []int{sd.fd, sd.partsFD} {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
	sd.fd, sd.partsFD = -1, -1
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
