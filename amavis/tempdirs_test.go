package amavis

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/smtp/smtptest"
)

// A message whose quarantine failed (QUARANTINEDIR is a file) is answered 451 and its
// directory is kept with the reason, and the log says PRESERVING EVIDENCE; the next start on
// the same TEMPBASE keeps it (and says so at level 1) while a directory a killed daemon left
// behind is removed; with allow_preserving_evidence = false nothing is kept.
func TestPreservingEvidence(t *testing.T) {
	h := hop(t, smtptest.Options{})
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o640)
	scanner := `QUARANTINEDIR = "` + notDir + `"
archive_quarantine_method = "local:archive-%m"
`
	td := startDaemon(t, h.Addr, "log_level = 1\n"+scanner)
	got := sendMessage(t, td, false, "a@example.org", []string{"x@example.com"}, "Subject: s\r\n\r\nbody\r\n")
	if len(got) != 1 || !strings.HasPrefix(got[0], "451 4.5.0 ") {
		t.Fatalf("reply %q, want 451 4.5.0", got)
	}
	dirs, _ := filepath.Glob(filepath.Join(td.tempbase, "amavis-*"))
	if len(dirs) != 1 {
		t.Fatalf("TEMPBASE holds %v, want the failed message's directory", dirs)
	}
	kept := dirs[0]
	why, err := os.ReadFile(filepath.Join(kept, evidenceMark))
	if err != nil || !strings.Contains(string(why), "quar+notif FAILED") {
		t.Errorf("evidence mark: %q, %v", why, err)
	}
	if _, err := os.Stat(filepath.Join(kept, "email.txt")); err != nil {
		t.Errorf("the kept directory lacks the message: %v", err)
	}
	if !strings.Contains(td.log.String(), "(!)PRESERVING EVIDENCE in "+kept) {
		t.Errorf("no PRESERVING EVIDENCE line for %s", kept)
	}

	// What a daemon killed in the middle of a message leaves: a directory with a partial file.
	stale := filepath.Join(td.tempbase, "amavis-20261122T094500-99999-AbCdEfGh")
	os.Mkdir(stale, 0o750)
	os.WriteFile(filepath.Join(stale, "email.txt"), []byte("Subject: half"), 0o640)
	// not ours: left alone; nor amavisd-milter's, nor one of a daemon still running (PID 1)
	other := filepath.Join(td.tempbase, "af0123456789")
	os.Mkdir(other, 0o750)
	milter := filepath.Join(td.tempbase, "amavis-milter-Xy12Ab")
	os.Mkdir(milter, 0o750)
	running := filepath.Join(td.tempbase, "amavis-20261122T094500-00001-AbCdEfGh")
	os.Mkdir(running, 0o750)

	cfg, err := conf.Parse("t.toml", []byte("MYHOME = \""+td.tempbase+"\"\nlog_level = 1\ninet_socket_port = \"127.0.0.1:0\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &syncBuffer{}
	d := New(cfg, NewWriterLog(logBuf, "mx.example.com", NoOverride))
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	d.closeListeners()
	for dir, want := range map[string]bool{kept: true, stale: false, other: true, milter: true, running: true} {
		if _, err := os.Stat(dir); (err == nil) != want {
			t.Errorf("%s after the start: %v, want kept %v", dir, err, want)
		}
	}
	for _, line := range []string{"TempDir: kept, PRESERVING EVIDENCE in " + kept, "TempDir: removed stale " + stale,
		"TempDir: kept " + running + ": its daemon, PID 1, is running"} {
		if !strings.Contains(logBuf.String(), line) {
			t.Errorf("start-up log lacks %q:\n%s", line, logBuf.String())
		}
	}

	off := startDaemon(t, h.Addr, "allow_preserving_evidence = false\n"+scanner)
	sendMessage(t, off, false, "a@example.org", []string{"x@example.com"}, "Subject: s\r\n\r\nbody\r\n")
	if files := spoolFiles(t, off.tempbase); len(files) != 0 {
		t.Errorf("allow_preserving_evidence = false, but %v stayed", files)
	}
}
