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

// unlinkMessageFiles removes what a message leaves in its directory, by name: its email.txt
// and the decoded parts (os.RemoveAll would read each directory and try every entry as a file
// first). Anything else (an external decoder's scratch directory, a file of a hook) makes the
// directory fail spoolDirs' check, and it is removed whole. A file outside the directory
// (AM.PDP's message file is the MTA's) is never touched here.
func unlinkMessageFiles(m *Message) {
	partsDir := filepath.Join(m.Dir, "parts")
	if m.Unpacked != nil {
		for _, p := range m.Unpacked.Parts {
			if p != m.Unpacked.Root && filepath.Dir(p.Path) == partsDir {
				syscall.Unlink(p.Path)
			}
		}
	}
	if m.File == filepath.Join(m.Dir, "email.txt") {
		syscall.Unlink(m.File)
	}
}

// pid is the daemon's process id, a part of every message directory's name (it does not
// change: the daemon does not fork).
var pid = os.Getpid()
