package amavis

import (
	"os"
	"path/filepath"
	"syscall"
)

// Every system call counts at 2 KB a message: these keep the message's own files to the calls
// they need.

// openPlain opens a regular file for the spool or the forwarding. os.Open and os.OpenFile try
// to register every file with the network poller, which a regular file refuses: four fcntl
// calls and a failed epoll_ctl per open. os.NewFile on the blocking descriptor costs one fcntl.
func openPlain(path string, flag int, perm uint32) (*os.File, error) {
	fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC, perm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// removeMessageDir removes a message's directory. What a message leaves there is known (its
// email.txt, parts/ with the decoded parts), so those are unlinked by name: os.RemoveAll reads
// each directory and tries every entry as a file first, 22 system calls for a message of one
// part against 5. Anything else (an external decoder's scratch directory, a file of a hook)
// keeps a directory from going, and os.RemoveAll then removes the rest. A file outside the
// directory (AM.PDP's message file is the MTA's) is never touched here.
func removeMessageDir(m *Message) error {
	partsDir := filepath.Join(m.Dir, "parts")
	if m.Unpacked != nil {
		for _, p := range m.Unpacked.Parts {
			if p != m.Unpacked.Root && filepath.Dir(p.Path) == partsDir {
				syscall.Unlink(p.Path)
			}
		}
	}
	syscall.Rmdir(partsDir)
	if m.File == filepath.Join(m.Dir, "email.txt") {
		syscall.Unlink(m.File)
	}
	if err := syscall.Rmdir(m.Dir); err == nil || err == syscall.ENOENT {
		return nil
	}
	return os.RemoveAll(m.Dir)
}

// pid is the daemon's process id, a part of every message directory's name (it does not
// change: the daemon does not fork).
var pid = os.Getpid()
