package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"amavisgo/conf"
	"amavisgo/internal/testenv"
)

// Postfix's own postconf reads a master.cf whose amavisfeed transport may open more connections
// than max_servers: a warning names the transport, its maxproc and what to change.
func TestPostfixMaxprocWarning(t *testing.T) {
	testenv.RequireProgram(t, "postconf", "/usr/sbin/postconf")
	cfg, err := conf.Parse("t.toml", []byte("max_servers = 2\ninet_socket_port = [10024, 10026]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, mainFilter, maxproc, want string
	}{
		{"over", "amavisfeed:[127.0.0.1]:10024", "10",
			"(!)WARN: Postfix transport amavisfeed (content_filter = amavisfeed:[127.0.0.1]:10024) has maxproc 10, more than max_servers 2: " +
				"connections beyond max_servers wait and time out; set its maxproc in master.cf to 2 or raise max_servers"},
		{"default", "amavisfeed:[127.0.0.1]:10024", "-",
			"(!)WARN: Postfix transport amavisfeed (content_filter = amavisfeed:[127.0.0.1]:10024) has maxproc 100 (default_process_limit), more than max_servers 2: " +
				"connections beyond max_servers wait and time out; set its maxproc in master.cf to 2 or raise max_servers"},
		{"equal", "amavisfeed:[127.0.0.1]:10024", "2", ""},
		{"another port", "amavisfeed:[127.0.0.1]:10099", "10", ""},
		{"only in master.cf", "", "10",
			"(!)WARN: Postfix transport amavisfeed (content_filter = amavisfeed:[127.0.0.1]:10026) has maxproc 10, more than max_servers 2: " +
				"connections beyond max_servers wait and time out; set its maxproc in master.cf to 2 or raise max_servers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			main := "compatibility_level = 3.6\n"
			if tc.mainFilter != "" {
				main += "content_filter = " + tc.mainFilter + "\n"
			}
			master := "submission inet n - y - - smtpd\n  -o content_filter=amavisfeed:[127.0.0.1]:10026\n" +
				"amavisfeed unix - - n - " + tc.maxproc + " lmtp\n  -o lmtp_data_done_timeout=1200\n"
			if tc.mainFilter != "" {
				master = "amavisfeed unix - - n - " + tc.maxproc + " lmtp\n"
			}
			os.WriteFile(filepath.Join(dir, "main.cf"), []byte(main), 0o644)
			os.WriteFile(filepath.Join(dir, "master.cf"), []byte(master), 0o644)
			got := postfixMaxproc(context.Background(), cfg, dir)
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("warnings %q, want none", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("warnings\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
