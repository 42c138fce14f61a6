package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// vmHWM is a process's peak resident set size (VmHWM), in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/pid/status")
	return 0
}

// sendVia sends one message to addr with net/smtp and returns the error for a reply that is not
// 2xx (nil when the message was accepted).
func sendVia(addr string, body []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mta.example.org"); err != nil {
		return err
	}
	if err := c.Mail(sender); err != nil {
		return err
	}
	if err := c.Rcpt("rcpt@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// A 7z member whose LZMA2 properties declare a 3 GiB dictionary (testdata/dict3g.7z, 152 bytes,
// made by unpack's sevenZip and lzma2Stored test builders) once made the decoder allocate it:
// 3.1 GB resident from the third such message on, 6.2 GB for two at once, and an OOM kill under
// a memory limit. Three, then ten at once, must leave the daemon's peak RSS under 256 MB and be
// answered within seconds, and a normal message must pass after them.
func TestHugeDictionaryArchivesKeepMemoryBounded(t *testing.T) {
	archive, err := os.ReadFile("testdata/dict3g.7z")
	if err != nil {
		t.Fatal(err)
	}
	hostile := []byte("From: <sender@example.org>\r\nTo: <rcpt@example.com>\r\nSubject: invoice\r\n" +
		"Date: Sun, 22 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/x-7z-compressed; name=invoice.7z\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString(archive) + "\r\n--b--\r\n")
	hop := smtptest.Start(t, smtptest.Options{})
	d := newDaemon(t, daemonConfig{Port: testenv.FreePort(t), ForwardPort: atoi(t, portOf(hop.Addr)), MaxServers: 10})
	d.start()
	for _, n := range []int{3, 10} {
		start := time.Now()
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = sendVia(d.Addr, hostile) }()
		}
		wg.Wait()
		took := time.Since(start)
		for i, err := range errs {
			if err != nil {
				t.Errorf("%d at once, message %d: %v", n, i, err)
			}
		}
		hwm := vmHWM(t, d.cmd.Process.Pid)
		t.Logf("%d at once: answered in %v, peak RSS %.1f MiB", n, took, float64(hwm)/(1<<20))
		if hwm > 256<<20 {
			t.Errorf("%d at once: peak RSS %d MiB", n, hwm>>20)
		}
		if took > 20*time.Second {
			t.Errorf("%d at once took %v", n, took)
		}
	}
	if err := sendVia(d.Addr, message("<after@example.org>", "after", "a normal message\n")); err != nil {
		t.Fatalf("the normal message after them: %v", err)
	}
	if got := len(hop.Msgs()); got != 14 {
		t.Errorf("the next hop got %d messages, want 13 and the normal one", got)
	}
}
