package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestLogrotate: Debian's logrotate, with contrib/logrotate/amavisgo pointed at our LOGFILE and
// a state file of its own, rotates the log while messages flow; the daemon reopens LOGFILE on
// the reload the postrotate script asks for and goes on logging into the new file, and every
// message's main log line is in exactly one of the two files.
func TestLogrotate(t *testing.T) {
	t.Parallel()
	logrotate := testenv.RequireProgram(t, "logrotate", "/usr/sbin/logrotate")
	p := startPipeline(t, "lmtp", 2, nil)
	src, err := os.ReadFile("../../contrib/logrotate/amavisgo")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(src)
	for _, kv := range [][2]string{
		{"/var/log/amavisgo.log", p.am.LogFile},
		{"create 0640 amavis adm", "create 0640 nobody nogroup"},
		{"/usr/local/sbin/amavisd -c /etc/amavisgo/amavisd.toml reload", p.am.bin + " -c " + p.am.Config + " reload"},
	} {
		if !strings.Contains(conf, kv[0]) {
			t.Fatalf("contrib/logrotate/amavisgo has no %q", kv[0])
		}
		conf = strings.ReplaceAll(conf, kv[0], kv[1])
	}
	dir := t.TempDir()
	confFile := filepath.Join(dir, "amavisgo")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}

	// Messages flow while logrotate moves the file and asks for the reload; once the daemon has
	// logged the reload into the new file, the last third follows, so that some lines must be
	// there whatever the timing.
	const n = 24
	var rotateOut []byte
	sent := make(chan error, 1)
	submit := func(i int) error {
		_, err := p.pf.Submit(sender, rcpt, message(fmt.Sprintf("<rot-%d@e2e>", i), "rotate", "line\n"))
		return err
	}
	go func() {
		for i := range 2 * n / 3 {
			if err := submit(i); err != nil {
				sent <- err
				return
			}
			if i == n/3 {
				// mid-stream: logrotate moves the file while messages are being checked
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := exec.CommandContext(ctx, logrotate, "-v", "-f", "-s", filepath.Join(dir, "state"), confFile).CombinedOutput()
				cancel()
				rotateOut = out
				if err != nil {
					sent <- fmt.Errorf("logrotate: %v\n%s", err, out)
					return
				}
			}
		}
		sent <- nil
	}()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	p.am.waitLog(regexp.MustCompile(`reloaded configuration `), 20*time.Second)
	for i := 2 * n / 3; i < n; i++ {
		if err := submit(i); err != nil {
			t.Fatal(err)
		}
	}
	p.pf.WaitMessages(t, n, 60*time.Second)
	p.am.waitLog(regexp.MustCompile(`Passed CLEAN .*Message-ID: <rot-`+fmt.Sprint(n-1)+`@e2e>`), 10*time.Second)

	rotated, err := os.ReadFile(p.am.LogFile + ".1")
	if err != nil {
		t.Fatalf("no rotated log: %v\nlogrotate -v printed:\n%s", err, rotateOut)
	}
	current := p.am.Log()
	if !strings.Contains(current, "reloaded configuration ") {
		t.Errorf("the new LOGFILE lacks the reload's line:\n%s", tail(current, 3000))
	}
	for i := range n {
		re := regexp.MustCompile(`Passed CLEAN .*Message-ID: <rot-` + fmt.Sprint(i) + `@e2e>`)
		if c := len(re.FindAllString(string(rotated), -1)) + len(re.FindAllString(current, -1)); c != 1 {
			t.Errorf("<rot-%d@e2e>: %d main log lines in the two files, want 1", i, c)
		}
	}
	if !regexp.MustCompile(`Passed CLEAN .*Message-ID: <rot-` + fmt.Sprint(n-1) + `@e2e>`).MatchString(current) {
		t.Errorf("the last message was not logged into the new LOGFILE")
	}
	st, err := os.Stat(p.am.LogFile)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("new LOGFILE: %v, %v; want mode 0640 as logrotate created it", st, err)
	}
}
