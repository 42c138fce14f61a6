package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestStartupDiagnosticsInLog: after a start, LOGFILE names each AV engine with clamd's
// VERSION or why it is not reachable, each decoder found, internal or missing on path, and each
// listen socket with its policy bank, in amavis's words.
func TestStartupDiagnosticsInLog(t *testing.T) {
	clamd := testenv.StartClamd(t)
	sevenZ := testenv.RequireProgram(t, "7z", "7za")
	dead := filepath.Join(t.TempDir(), "no-clamd.sock")
	// path holds 7z only: it takes arj (as amavis does), cabextract and zoo are missing.
	bin := t.TempDir()
	if err := os.Symlink(sevenZ, filepath.Join(bin, "7z")); err != nil {
		t.Fatal(err)
	}
	// log_level 1: the sockets and the decoders found are logged there, as amavis logs them
	e := newEnv(t, "smtp:[127.0.0.1]:10025", "allow_run_as_root = true", "log_level = 1", fmt.Sprintf("path = [%q]", bin),
		"[[av_scanners]]", `name = "ClamAV-clamd"`, `type = "clamd"`, fmt.Sprintf("sockets = [%q]", clamd.Socket),
		`query = "CONTSCAN {}\n"`, `clean_pattern = '\bOK$'`, `infected_pattern = '\bFOUND$'`,
		"[[av_scanners_backup]]", `name = "dead clamd"`, `type = "clamd"`, fmt.Sprintf("sockets = [%q]", dead),
		`query = "CONTSCAN {}\n"`, `clean_pattern = '\bOK$'`, `infected_pattern = '\bFOUND$'`)
	e.foreground()
	want := []string{
		`listening on tcp:` + regexp.QuoteMeta(e.addr) + `, policy bank ''$`,
		`Found primary av scanner ClamAV-clamd at ` + regexp.QuoteMeta(clamd.Socket) + `: ` + regexp.QuoteMeta(clamd.Version) + `$`,
		`\(!\)dead clamd: Can't connect to UNIX socket ` + regexp.QuoteMeta(dead) + `: No such file or directory$`,
		`Found decoder for    \.arj  at ` + regexp.QuoteMeta(filepath.Join(bin, "7z")) + `$`,
		`Internal decoder for \.zip $`,
		`No decoder for       \.cab $`,
		`No decoder for       \.zoo $`,
		`No ext program for   \.cab, tried: cabextract$`,
	}
	// The engines are asked after the daemon serves (within 10 s): wait for every line.
	var log []byte
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		log, _ = os.ReadFile(filepath.Join(e.dir, "amavisd.log"))
		missing := slices.DeleteFunc(slices.Clone(want), func(re string) bool {
			return regexp.MustCompile(`(?m): ` + re).Match(log)
		})
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("LOGFILE lacks lines %q:\n%s", missing, log)
		}
	}
}
