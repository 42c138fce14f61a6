package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/internal/testenv"
)

func TestStartupDiagnostics(t *testing.T) {
	empty := t.TempDir()
	cfg, err := conf.Parse("a.toml", []byte(fmt.Sprintf(`
inet_socket_port = [10024, 10026]
inet_socket_bind = ["127.0.0.1"]
unix_socketname = "/run/amavisgo/amavisd.sock"
interface_policy = { "10026" = "ORIGINATING", "SOCK" = "AM.PDP-SOCK" }
path = [%q]
[policy_bank.ORIGINATING]
originating = true
[policy_bank."AM.PDP-SOCK"]
protocol = "AM.PDP"
`, empty)))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	startupDiagnostics(cfg, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	log := strings.Join(lines, "\n") + "\n"
	for _, want := range []string{
		"listening on tcp:127.0.0.1:10024, policy bank ''\n",
		"listening on tcp:127.0.0.1:10026, policy bank ORIGINATING\n",
		"listening on unix:/run/amavisgo/amavisd.sock, policy bank AM.PDP-SOCK\n",
		"Found decoder for .gz      at internal\n",
		"No decoder for arj: none of arj, 7z found",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, log)
		}
	}
	// With the system's path the installed archivers are found.
	arj := testenv.RequireProgram(t, "arj")
	cfg.Path = []string{filepath.Dir(arj)}
	lines = nil
	startupDiagnostics(cfg, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	if log := strings.Join(lines, "\n"); !strings.Contains(log, "Found decoder for .arj     at "+arj) {
		t.Errorf("arj (installed) not found:\n%s", log)
	}
}

func TestAVDiagnostics(t *testing.T) {
	clamd := testenv.StartClamd(t)
	down := filepath.Join(t.TempDir(), "nobody-listens.sock")
	cfg, err := conf.Parse("a.toml", []byte(fmt.Sprintf(`
[[av_scanners]]
name = "ClamAV-clamd"
sockets = [%q, %q]
clean_pattern = '\bOK$'
infected_pattern = '\bFOUND$'
names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'
[[av_scanners_backup]]
name = "NoSuchScanner"
command = ["no-such-scanner-program"]
args = "{}"
clean_codes = [0]
infected_codes = [1]
`, clamd.Socket, down)))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	avDiagnostics(cfg, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	log := strings.Join(lines, "\n") + "\n"
	for _, want := range []string{
		"Using primary internal av scanner code for ClamAV-clamd\n",
		"ClamAV-clamd: clamd at " + clamd.Socket + " is " + clamd.Version + "\n",
		"(!)ClamAV-clamd: clamd at " + down + " does not answer: ",
		"(!)NoSuchScanner is not usable: program not found: no-such-scanner-program\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, log)
		}
	}
	lines = nil
	avDiagnostics(&conf.Config{}, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	if len(lines) != 1 || lines[0] != "(!)av_scanners is empty: mail is not checked for viruses" {
		t.Errorf("without scanners: %q", lines)
	}
}
