package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStaleTempdirRemoved: SIGKILL while a message streams into us leaves its directory in
// TEMPBASE; the restarted daemon removes it before it listens (and logs so at level 1), and
// Postfix's retry delivers the message once.
func TestStaleTempdirRemoved(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, "lmtp", 2, []string{"message_size_limit = 52428800"})
	var body bytes.Buffer
	line := strings.Repeat("stale temporary directories are removed ", 2) + "\r\n"
	for body.Len() < 8<<20 {
		body.WriteString(line)
	}
	qid, err := p.pf.Submit(sender, rcpt, append(message("<stale@e2e>", "stale", ""), body.Bytes()...))
	if err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(p.am.Dir, "home", "tmp")
	var dir string
	deadline := time.Now().Add(30 * time.Second)
	for dir == "" {
		files, _ := filepath.Glob(filepath.Join(spool, "amavis-*", "email.txt"))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.Size() > 64<<10 {
				dir = filepath.Dir(f)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no growing email.txt under %s", spool)
		}
		time.Sleep(time.Millisecond)
	}
	p.am.kill(syscall.SIGKILL)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed daemon's directory is not there: %v", err)
	}
	p.pf.WaitQueued(t, qid, "deferred", 30*time.Second)

	p.am.start()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the stale directory %s survived the restart: %v", dir, err)
	}
	p.am.waitLog(regexp.MustCompile(`TempDir: removed stale `+regexp.QuoteMeta(dir)+`$`), 10*time.Second)
	if err := p.pf.Flush(); err != nil {
		t.Fatal(err)
	}
	p.pf.WaitMessages(t, 1, 60*time.Second)
	assertDeliveredOnce(t, p.pf, []string{"<stale@e2e>"})
}
