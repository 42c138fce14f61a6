package amavis

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// logID is amavis's log id: 5-digit pid, connection counter, and for the second and later
// transactions of a session the transaction number: "01234-05", "01234-05-2".
func logID(pid int, conn int64, seq int) string {
	if seq > 1 {
		return fmt.Sprintf("%05d-%02d-%d", pid, conn, seq)
	}
	return fmt.Sprintf("%05d-%02d", pid, conn)
}

// makeSpoolDir creates TEMPBASE/amavis-<YYYYMMDDTHHMMSS>-<pid>-<8 random> (mode 0750).
func makeSpoolDir(tempbase string, now time.Time) (string, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	name := fmt.Sprintf("amavis-%s-%05d-%s", now.Format("20060102T150405"), os.Getpid(),
		base64.RawURLEncoding.EncodeToString(rnd[:]))
	dir := filepath.Join(tempbase, name)
	if err := os.Mkdir(dir, 0750); err != nil {
		return "", err
	}
	return dir, nil
}
