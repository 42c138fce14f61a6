package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
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

// Archives that declare gigabytes (testdata/README.md): a 152-byte 7z declaring a 3 GiB
// LZMA2 dictionary made the decoder allocate it, 3.1 GB resident from the third such message
// on, 9.3 GB for ten at once, and an OOM kill under a memory limit; a 39-byte 7z declaring 2^28
// files ended the process with a fatal "out of memory". For each, three and then ten at once
// must leave the daemon's peak RSS under 256 MB and be answered within seconds, and a normal
// message must pass after them.
func TestHugeDeclarationsKeepMemoryBounded(t *testing.T) {
	files, err := filepath.Glob("testdata/*")
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata: %v %v", files, err)
	}
	hop := smtptest.Start(t, smtptest.Options{})
	d := newDaemon(t, daemonConfig{Port: testenv.FreePort(t), ForwardPort: atoi(t, portOf(hop.Addr)), MaxServers: 10})
	d.start()
	sent := 0
	for _, file := range files {
		if strings.HasSuffix(file, ".md") {
			continue
		}
		archive, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(file)
		hostile := []byte("From: <sender@example.org>\r\nTo: <rcpt@example.com>\r\nSubject: invoice\r\n" +
			"Date: Sun, 22 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
			"--b\r\nContent-Type: application/octet-stream; name=" + name + "\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(archive) + "\r\n--b--\r\n")
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
			sent += n
			for i, err := range errs {
				if err != nil {
					t.Errorf("%s, %d at once, message %d: %v", name, n, i, err)
				}
			}
			hwm := vmHWM(t, d.cmd.Process.Pid)
			t.Logf("%s, %d at once: answered in %v, peak RSS %.1f MiB", name, n, took, float64(hwm)/(1<<20))
			if hwm > 256<<20 {
				t.Errorf("%s, %d at once: peak RSS %d MiB", name, n, hwm>>20)
			}
			if took > 20*time.Second {
				t.Errorf("%s, %d at once took %v", name, n, took)
			}
		}
	}
	if err := sendVia(d.Addr, message("<after@example.org>", "after", "a normal message\n")); err != nil {
		t.Fatalf("the normal message after them: %v", err)
	}
	if got := len(hop.Msgs()); got != sent+1 {
		t.Errorf("the next hop got %d messages, want %d and the normal one", got, sent)
	}
}
