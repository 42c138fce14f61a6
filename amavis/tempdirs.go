package amavis

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// evidenceMark is the file that marks a message directory kept on purpose: a message whose
// processing failed keeps its directory for the postmaster (amavis's $allow_preserving_evidence,
// Amavis::TempDir's "PRESERVING EVIDENCE"), and the clean-up at start-up leaves it alone.
const evidenceMark = "PRESERVING-EVIDENCE"

// dropSpoolDir empties a message's directory after the reply and keeps it for the next
// message (spooldirs.go), or keeps it as evidence when processing failed.
func (d *Daemon) dropSpoolDir(tl *taskLog, m *Message) {
	sd := m.spool
	if sd == nil {
		return
	}
	m.spool = nil
	if m.preserve != "" && m.cfg.AllowPreservingEvidence {
		if err := os.WriteFile(filepath.Join(m.Dir, evidenceMark), []byte(m.preserve+"\n"), 0o640); err == nil {
			tl.Logf(-1, "PRESERVING EVIDENCE in %s", m.Dir)
			sd.release()
			return
		}
	}
	unlinkMessageFiles(m) // files.go
	if err := d.spoolDirs.put(sd, time.Now()); err != nil {
		tl.Logf(-1, "Can't remove %s: %v", m.Dir, err)
	}
}

// ourTempdir is the name makeSpoolDir gives a message directory; its group is the daemon's PID.
// Other programs' directories in the same TEMPBASE (amavisd-milter's amavis-milter-*, a Perl
// amavisd's amavis-...) do not match.
var ourTempdir = regexp.MustCompile(`^amavis-\d{8}T\d{6}-(\d+)-[A-Za-z0-9_-]{8}$`)

// removeStaleTempdirs removes the message directories TEMPBASE/amavis-* that a killed daemon
// left behind (Debian's amavis unit does this with find before the start); the messages in them
// were not answered, so the MTA still has them. It runs once the sockets are bound, so a second
// daemon started by mistake fails before it touches anything, and it leaves alone directories
// of another program, of a daemon that is still running, and those kept as evidence (logged).
// Links are not followed.
func (d *Daemon) removeStaleTempdirs(tempbase string) {
	entries, err := os.ReadDir(tempbase)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := ourTempdir.FindStringSubmatch(e.Name())
		if !e.IsDir() || name == nil {
			continue
		}
		dir := filepath.Join(tempbase, e.Name())
		if pid, _ := strconv.Atoi(name[1]); pid != os.Getpid() && processAlive(pid) {
			d.log.logf("", 1, "TempDir: kept %s: its daemon, PID %d, is running", dir, pid)
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, evidenceMark)); err == nil {
			d.log.logf("", 1, "TempDir: kept, PRESERVING EVIDENCE in %s", dir)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			d.log.logf("", -1, "TempDir: can't remove stale %s: %v", dir, err)
			continue
		}
		d.log.logf("", 1, "TempDir: removed stale %s", dir)
	}
}

// processAlive: a process with this PID exists (kill 0 says so, or that it is not ours).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
