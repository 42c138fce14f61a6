package main

import (
	"fmt"
	"strings"
	"testing"

	"amavisgo/conf"
)

func TestStartupDiagnostics(t *testing.T) {
	cfg, err := conf.Parse("a.toml", []byte(`
inet_socket_port = [10024, 10026]
inet_socket_bind = ["127.0.0.1"]
unix_socketname = "/run/amavisgo/amavisd.sock"
interface_policy = { "10026" = "ORIGINATING", "SOCK" = "AM.PDP-SOCK" }
[policy_bank.ORIGINATING]
originating = true
[policy_bank."AM.PDP-SOCK"]
protocol = "AM.PDP"
`))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	startupDiagnostics(cfg, func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) })
	want := "listening on tcp:127.0.0.1:10024, policy bank ''\n" +
		"listening on tcp:127.0.0.1:10026, policy bank ORIGINATING\n" +
		"listening on unix:/run/amavisgo/amavisd.sock, policy bank AM.PDP-SOCK\n"
	if got := strings.Join(lines, "\n") + "\n"; got != want {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", got, want)
	}
}
