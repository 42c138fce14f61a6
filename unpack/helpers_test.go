package unpack

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// eicar is the anti-virus test file; every format must deliver it byte for byte.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// debianLimits are Debian's amavisd.conf values ($MAXLEVELS 14, $MAXFILES 1500, quotas).
var debianLimits = Limits{MaxLevels: 14, MaxFiles: 1500, MinExpansionQuota: 102400, MaxExpansionQuota: 314572800}

// needProg returns the path of an external program; a missing one fails the test under
// CI=true and skips it elsewhere.
func needProg(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI installs it: see .ci/run)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// run executes a program in dir, failing the test on error.
func run(t testing.TB, dir string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(needProg(t, name), args...)
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, errb.String())
	}
	return out.Bytes()
}

// unpackMsg writes msg as email.txt in a fresh directory and unpacks it.
func unpackMsg(t testing.TB, lim Limits, msg []byte) (*Result, string) {
	t.Helper()
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	if err := os.WriteFile(email, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	parts := filepath.Join(dir, "parts")
	r, err := New(lim, nil, func(string, ...any) {}).Unpack(context.Background(), email, parts)
	if err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return r, parts
}

// withAttachment is a multipart/mixed message with a text part and one base64 attachment.
func withAttachment(name, ctype string, content []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: test\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=-=b=-=\"\r\n\r\n" +
		"--=-=b=-=\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n" +
		"--=-=b=-=\r\nContent-Type: " + ctype + "; name=\"" + name + "\"\r\n" +
		"Content-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(content)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--=-=b=-=--\r\n")
	return b.Bytes()
}

// fileWith returns the parts whose file holds exactly content.
func fileWith(t testing.TB, r *Result, content string) []*Part {
	t.Helper()
	var out []*Part
	for _, p := range r.Parts {
		if p.Path == "" || p == r.Root {
			continue
		}
		b, err := os.ReadFile(p.Path)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if string(b) == content {
			out = append(out, p)
		}
	}
	return out
}

// describe renders the tree for failure messages.
func describe(r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hold=%q mime-errors=%q\n", r.Hold, r.MIMEErrors)
	for _, p := range r.Parts {
		fmt.Fprintf(&b, "%s%s type=%q names=%q short=%v size=%d attrs=%q file=%v\n",
			strings.Repeat("  ", p.Depth), p.Name, p.Type, p.Names, p.ShortTypes, p.Size, p.Attrs, p.Path != "")
	}
	return b.String()
}

// onlyInside lists every entry under root and fails if anything other than regular files
// named pNNN exists; it also fails for anything new in outside.
func assertOnlyParts(t testing.TB, parts string) {
	t.Helper()
	ents, err := os.ReadDir(parts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || len(e.Name()) < 4 || e.Name()[0] != 'p' {
			t.Errorf("unexpected entry in parts/: %s (%v)", e.Name(), e.Type())
		}
	}
}
