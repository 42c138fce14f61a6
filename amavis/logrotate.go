package amavis

import (
	"os"
)

// ReopenLog opens LOGFILE again, by name, and writes on there from now on: logrotate renames
// the file and then signals a reload, and our lines must go to the new file (amavis reopens
// its log the same way on SIGHUP). The old file is closed only after the new one took over, so
// no line is lost or written twice. With syslog or stderr there is nothing to reopen.
func (d *Daemon) ReopenLog() error { return d.log.reopen() }

func (l *Log) reopen() error {
	if l.path == "" {
		return nil
	}
	if cur, err := os.Stat(l.path); err == nil {
		if open, err := l.file.Stat(); err == nil && os.SameFile(cur, open) {
			return nil // not rotated: keep the file we have (root may own it)
		}
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.file
	l.w, l.file = f, f
	l.mu.Unlock()
	return old.Close()
}
