package testenv

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartClamd(t *testing.T) {
	start := time.Now()
	c := StartClamd(t)
	t.Logf("clamd %q ready in %v", c.Version, time.Since(start))
	if c.VirusName != "Eicar-Test-Signature.UNOFFICIAL" {
		t.Errorf("VirusName = %q, want Eicar-Test-Signature.UNOFFICIAL (ClamAV 1.4 naming)", c.VirusName)
	}
	if !strings.HasPrefix(c.Version, "ClamAV ") {
		t.Errorf("Version = %q", c.Version)
	}

	// clamd must read a test's own temporary directory (mode 0700).
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "clean.txt"), []byte("hello\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "eicar.com"), []byte(EICAR), 0o600)
	reply, err := clamdCommand("tcp", c.TCPAddr, "CONTSCAN "+dir)
	if want := filepath.Join(dir, "eicar.com") + ": " + c.VirusName + " FOUND"; err != nil || reply != want {
		t.Errorf("CONTSCAN over TCP = %q, %v; want %q", reply, err, want)
	}

	c.Stop()
	if _, err := net.DialTimeout("unix", c.Socket, time.Second); err == nil {
		t.Error("unix socket still accepts after Stop")
	}
	if _, err := net.DialTimeout("tcp", c.TCPAddr, time.Second); err == nil {
		t.Error("TCP port still accepts after Stop")
	}
	c.Stop() // idempotent; t.Cleanup calls it again
}

func TestStartClamdExtraConf(t *testing.T) {
	c := StartClamd(t, "StreamMaxLength 1K")
	conf, err := os.ReadFile(filepath.Join(c.Dir, "clamd.conf"))
	if err != nil || !strings.Contains(string(conf), "\nStreamMaxLength 1K\n") || strings.Contains(string(conf), "StreamMaxLength 10M") {
		t.Fatalf("clamd.conf does not have the extra line in place of the default: %q, %v", conf, err)
	}
	// clamd applies it: a stream over the limit is refused.
	conn, err := net.Dial("unix", c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	chunk := append([]byte{0, 0, 8, 0}, make([]byte, 2048)...)
	conn.Write(append([]byte("zINSTREAM\x00"), chunk...))
	conn.Write([]byte{0, 0, 0, 0})
	reply, _ := io.ReadAll(conn)
	if want := "INSTREAM size limit exceeded. ERROR\x00"; string(reply) != want {
		t.Errorf("INSTREAM of 2 KiB = %q, want %q", reply, want)
	}
}
