package amavis

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// newMailID returns amavis's mail_id and secret_id (72 bits, 12 base64url characters each):
// the secret is random, mail_id is base64url(MD5(secret)) cut to size, retried until it
// starts and ends with a letter or digit (SPEC §4.1).
func newMailID() (mailID, secretID string) {
	var secret [9]byte
	for range 100 {
		rand.Read(secret[:])
		sum := md5.Sum(secret[:])
		id := base64.URLEncoding.EncodeToString(sum[:])[:12]
		if isAlnumByte(id[0]) && isAlnumByte(id[11]) {
			return id, base64.URLEncoding.EncodeToString(secret[:])
		}
	}
	panic("unreachable: 100 mail_id attempts")
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

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
