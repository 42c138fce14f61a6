package amavis

import (
	"os"
	"path/filepath"
	"strings"
)

// evidenceMark is the file that marks a message directory kept on purpose: a message whose
// processing failed keeps its directory for the postmaster (amavis's $allow_preserving_evidence,
// Amavis::TempDir's "PRESERVING EVIDENCE"), and the clean-up at start-up leaves it alone.
const evidenceMark = "PRESERVING-EVIDENCE"

// dropSpoolDir removes a message's directory after the reply, or keeps it as evidence when
// processing failed.
func (d *Daemon) dropSpoolDir(tl *taskLog, m *Message) {
	if m.preserve != "" && m.cfg.AllowPreservingEvidence {
		if err := os.WriteFile(filepath.Join(m.Dir, evidenceMark), []byte(m.preserve+"\n"), 0o640); err == nil {
			tl.Logf(-1, "PRESERVING EVIDENCE in %s", m.Dir)
			return
		}
	}
	if err := removeMessageDir(m); err != nil { // files.go
		tl.Logf(-1, "Can't remove %s: %v", m.Dir, err)
	}
}

// removeStaleTempdirs removes the message directories TEMPBASE/amavis-* that a killed daemon
// left behind (Debian's amavis unit does this with find before the start); the messages in them
// were not answered, so the MTA still has them. Directories kept as evidence stay, and the log
// says so. Links are not followed.
func (d *Daemon) removeStaleTempdirs(tempbase string) {
	entries, err := os.ReadDir(tempbase)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "amavis-") {
			continue
		}
		dir := filepath.Join(tempbase, e.Name())
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
