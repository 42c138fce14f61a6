package testenv

import (
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
	if err != nil || !strings.HasSuffix(string(conf), "StreamMaxLength 1K\n") {
		t.Fatalf("clamd.conf does not end with the extra line: %q, %v", conf, err)
	}
}
