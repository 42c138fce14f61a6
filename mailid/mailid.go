// Package mailid makes and checks amavis's long-term message ids (Amavis::Util's generate_mail_id;
// Amavis::In::AMPDP checks a release's secret_id): mail_id = base64url(MD5(secret)) cut to the id
// length, secret_id = base64url(secret). The mail_id names quarantine files and appears in Received
// and X-Quarantine-ID; the secret_id, known only to whoever saw the log or SQL record, authorises a
// release.
package mailid

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

// DefaultBits is $mail_id_size_bits: 72 bits, 12 characters.
const DefaultBits = 72

// validID is what a release request may name (AM.PDP mail_id); also old "almost base64" ids.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_+-]*={0,2}$`)

// New returns a fresh mail_id and its secret_id of bits bits (a multiple of 24).
func New(bits int) (mailID, secretID string, err error) {
	if bits <= 0 || bits%24 != 0 {
		return "", "", fmt.Errorf("mail_id_size_bits (%d) must be a positive multiple of 24", bits)
	}
	mailID, secretID = generate(bits)
	return mailID, secretID, nil
}

// NewDefault returns a fresh mail_id and secret_id of DefaultBits, the size the daemon uses.
func NewDefault() (mailID, secretID string) { return generate(DefaultBits) }

// generate draws secrets until the id starts and ends with a letter or digit, as amavis does,
// so that ids are safe inside file names and words. crypto/rand.Read does not fail.
func generate(bits int) (mailID, secretID string) {
	secret := make([]byte, bits/8)
	for {
		rand.Read(secret)
		id := FromSecret(secret, bits/6)
		if alnum(id[0]) && alnum(id[len(id)-1]) {
			return id, base64.RawURLEncoding.EncodeToString(secret)
		}
	}
}

// FromSecret derives the mail_id of n characters from the raw secret bytes.
func FromSecret(secret []byte, n int) string {
	sum := md5.Sum(secret)
	id := base64.RawURLEncoding.EncodeToString(sum[:])
	if n < len(id) {
		id = id[:n]
	}
	return id
}

// Valid reports whether s has the shape of a mail_id a release request may name.
func Valid(s string) bool { return validID.MatchString(s) }

// Check reports whether secretID authorises mailID. It accepts the current form and, as amavis
// does, ids made before amavis 2.7 (id = MD5 of the base64 text, '/' written as '-').
func Check(mailID, secretID string) bool {
	if mailID == "" || secretID == "" {
		return false
	}
	if !strings.Contains(secretID, "+") {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(secretID, "="))
		if err == nil && FromSecret(raw, len(mailID)) == mailID {
			return true
		}
	}
	if !strings.Contains(secretID, "_") {
		sum := md5.Sum([]byte(secretID))
		old := strings.ReplaceAll(base64.StdEncoding.EncodeToString(sum[:]), "/", "-")
		if len(mailID) <= len(old) && old[:len(mailID)] == mailID {
			return true
		}
	}
	return false
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
