package amavis

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// clamd unreachable, virus_scanners_failure_is_fatal: amavis tries three times (pausing 1 s,
// then 6 s), logs each attempt and the outcome under the message's log id in its own words
// (the lines of Debian's amavisd-new 2.13 for the same socket, without Perl's "at AV.pm line
// 663."), answers 451 and keeps the message's directory, saying so.
func TestClamdUnreachableLogged(t *testing.T) {
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "noclamd.sock")
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, fmt.Sprintf("log_level = 1\nvirus_scanners_failure_is_fatal = true\n"+
		"[[av_scanners]]\nname = \"ClamAV-clamd\"\ntype = \"clamd\"\nsockets = [%q]\nquery = \"CONTSCAN {}\\n\"\n", sock))
	got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, mimeMessage("text/plain", "hello\r\n"))
	if want := "451 4.5.0 Error in processing, id=PID-NN, virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED"; got[0] != want {
		t.Errorf("reply %q, want %q", got[0], want)
	}
	connect := "(PID-NN) (!)connect to " + sock + " failed, attempt #1: Can't connect to a UNIX socket " + sock + ": No such file or directory"
	failed := "All attempts (1) failed connecting to " + sock
	want := []string{
		connect,
		"(PID-NN) ClamAV-clamd: " + failed + ", retrying (1)",
		connect,
		"(PID-NN) (!)ClamAV-clamd: " + failed + ", retrying (2)",
		connect,
		"(PID-NN) (!)ClamAV-clamd av-scanner FAILED: run_av error: Too many retries to talk to " + sock + " (" + failed + ")",
		"(PID-NN) (!)WARN: all primary virus scanners failed, considering backups",
		"(PID-NN) (!!)AV: ALL VIRUS SCANNERS FAILED",
		"(PID-NN) (!!)TROUBLE in check_mail: virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED",
	}
	var lines []string
	preserved := ""
	waitFor(t, "PRESERVING EVIDENCE", func() bool {
		lines = nil
		for _, l := range logLines(td) {
			if p, ok := strings.CutPrefix(l, "(PID-NN) (!)PRESERVING EVIDENCE in "); ok {
				preserved = p
			} else if strings.HasPrefix(l, "(PID-NN) ") && strings.Contains(l, sock) || strings.Contains(l, "SCANNERS") || strings.Contains(l, "WARN") {
				lines = append(lines, l)
			}
		}
		return preserved != ""
	})
	if !slices.Equal(lines, want) {
		t.Errorf("log lines\n %s\nwant\n %s", strings.Join(lines, "\n "), strings.Join(want, "\n "))
	}
	kept, _ := filepath.Glob(filepath.Join(td.tempbase, "amavis-*", "email.txt"))
	if len(kept) != 1 || newNormalizer(td).line(filepath.Dir(kept[0])) != preserved {
		t.Errorf("kept %q, want the directory the log names, %q", kept, preserved)
	}
}

// clamd restarting: its socket is missing at the first attempt and back before the second, one
// second later; the message is scanned and passes, the failed attempt logged once, as amavis
// rides out a clamd restart.
func TestClamdRestartRiddenOut(t *testing.T) {
	clamd := testenv.StartClamd(t)
	dir, err := os.MkdirTemp("", "nc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "clamd.sock")
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, fmt.Sprintf("log_level = 1\n"+
		"[[av_scanners]]\nname = \"ClamAV-clamd\"\ntype = \"clamd\"\nsockets = [%q]\nquery = \"CONTSCAN {}\\n\"\n", sock))
	// Once the first attempt has failed, clamd "comes back": sock leads to the real one.
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for !strings.Contains(td.log.String(), "connect to "+sock+" failed") {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return // the test fails for want of a scan
		}
		go func() { <-done; ln.Close() }()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("unix", clamd.Socket)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, mimeMessage("text/plain", "hello\r\n"))
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
		t.Errorf("reply %q", got[0])
	}
	var failures []string
	for _, l := range logLines(td) {
		if strings.HasPrefix(l, "(PID-NN) ") && strings.Contains(l, sock) {
			failures = append(failures, l)
		}
	}
	want := []string{
		"(PID-NN) (!)connect to " + sock + " failed, attempt #1: Can't connect to a UNIX socket " + sock + ": No such file or directory",
		"(PID-NN) ClamAV-clamd: All attempts (1) failed connecting to " + sock + ", retrying (1)",
	}
	if !slices.Equal(failures, want) {
		t.Errorf("log lines\n %s\nwant\n %s", strings.Join(failures, "\n "), strings.Join(want, "\n "))
	}
	if l := mainLogLines(td.log.String()); len(l) != 1 || !strings.Contains(l[0], "Passed CLEAN ") {
		t.Errorf("main log lines %q", l)
	}
}
