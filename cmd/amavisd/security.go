package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// checkConfigWritable refuses a configuration the daemon user (what we run as now) could change:
// the file itself writable, or its directory, where the file could be replaced by another one
// (as Amavis.pm's check of its config files, which tries to rename the file). A sticky directory
// (/tmp) lets only the owners of the file or of the directory rename the file.
func checkConfigWritable(file string) error {
	if file == "" {
		return nil
	}
	if unix.Access(file, unix.W_OK) == nil {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("Config file %q is writable, UID %d, EUID %d, EGID %d\nSECURITY PROBLEM, ABORTING",
			file, os.Getuid(), os.Geteuid(), os.Getegid())
	}
	dir := filepath.Dir(file)
	if unix.Access(dir, unix.W_OK|unix.X_OK) != nil {
		return nil
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode()&os.ModeSticky != 0 && !ownedByUs(fi) {
		if f, err := os.Stat(file); err == nil && !ownedByUs(f) {
			return nil
		}
	}
	//lint:ignore ST1005 amavis's own text, which log parsers and clients match
	return fmt.Errorf("Directory of a config file %q is writable, UID %d, EUID %d, EGID %d\nSECURITY PROBLEM, ABORTING",
		file, os.Getuid(), os.Geteuid(), os.Getegid())
}

func ownedByUs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
