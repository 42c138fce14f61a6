// Package pidfile keeps amavis's $pid_file: the one line with the master's process id that
// `amavisd stop` and `amavisd reload` signal, and that stops a second daemon from starting.
package pidfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrRunning is returned by Create when a live daemon holds the pid file.
//
//lint:ignore ST1005 amavis's own text, which log parsers and clients match
var ErrRunning = errors.New("The amavisd daemon is already running")

// NotRunning explains why no daemon was found: the text amavis prints after "The amavisd daemon
// is apparently not running, ".
type NotRunning struct{ Why string }

func (e *NotRunning) Error() string { return "The amavisd daemon is apparently not running, " + e.Why }

// Running returns the pid of the live daemon named by the pid file. It returns a *NotRunning
// error when the file is missing or empty, when it is older than the system's uptime (left
// over from before a reboot: its pid may now be an unrelated process), or when the process is
// gone; other errors mean the file could not be trusted at all.
func Running(path string) (int, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, &NotRunning{Why: "no PID file " + path}
	case err != nil:
		return 0, fmt.Errorf("PID file %s is inaccessible: %w", path, err)
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("PID file %s is not a regular file", path)
	}
	pid, err := read(path)
	if err != nil {
		return 0, err
	}
	if pid == 0 {
		return 0, &NotRunning{Why: "empty PID file " + path}
	}
	if up, ok := uptime(); ok && time.Since(fi.ModTime()) > up+70*time.Second {
		return 0, &NotRunning{Why: "stale PID file " + path + " (older than the system's uptime)"}
	}
	if pid == os.Getpid() || !alive(pid) {
		return 0, &NotRunning{Why: fmt.Sprintf("no process [%d] of PID file %s", pid, path)}
	}
	return pid, nil
}

// read parses the file: one line with a positive number, or nothing (pid 0).
func read(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return 0, fmt.Errorf("Can't open PID file %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	if strings.ContainsAny(s, "\n") {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return 0, fmt.Errorf("More than one line in file %s", path)
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid < 1 || len(s) > 10 {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return 0, fmt.Errorf("Invalid PID in file %s: [%s]", path, s)
	}
	return pid, nil
}

// alive reports whether a process exists (signal 0); EPERM means it exists under another user.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// uptime reads the time since boot from /proc/uptime.
func uptime() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(sec * float64(time.Second)), true
}

// Create writes pid into a new pid file. A file left by a dead or pre-boot daemon is replaced;
// one that names a live daemon is left alone and the error wraps ErrRunning with its pid.
// O_EXCL settles a race between two daemons starting at once.
func Create(path string, pid int) error {
	for attempt := 0; ; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := fmt.Fprintf(f, "%d\n", pid)
			cerr := f.Close()
			if werr != nil || cerr != nil {
				os.Remove(path)
				return fmt.Errorf("writing PID file %s: %v", path, errors.Join(werr, cerr))
			}
			return nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return fmt.Errorf("creating PID file: %w", err)
		}
		running, rerr := Running(path)
		if rerr == nil {
			return fmt.Errorf("%w, PID: [%d]", ErrRunning, running)
		}
		var nr *NotRunning
		if !errors.As(rerr, &nr) && !strings.HasPrefix(rerr.Error(), "Invalid PID") {
			return rerr
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return fmt.Errorf("Can't remove PID file %s: %w", path, err)
		}
	}
}

// Remove deletes the pid file if it still holds pid: a daemon that lost its file to a newer
// one must not delete the newer one's.
func Remove(path string, pid int) error {
	got, err := read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || got != pid {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
