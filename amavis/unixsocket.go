package amavis

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// removeStaleSocket removes a Unix socket left by a daemon that is gone, so that ours can be
// bound in its place; a socket another daemon still answers on (Debian's Perl amavisd uses
// the same path) is not taken from it.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("unix_socketname %s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("unix_socketname %s: another daemon listens there", path)
	}
	return os.Remove(path)
}
