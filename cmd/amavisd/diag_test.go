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
