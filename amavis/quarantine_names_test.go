package amavis

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"amavisgo/smtp/smtptest"
)

// Each blocking category goes to its own quarantine with amavis's file name (Amavis::Conf's
// *_quarantine_method defaults, written by Amavis::Out::Local): a banned message to
// banned-<mail_id> (Delivered-To: banned-quarantine), a bad header to badh-<mail_id> even though it
// passes (bad-header-quarantine, {RelayedInbound,Quarantined}, X-Quarantine-ID on top of the passed
// copy), under the subdirectory of quarantine_subdir_levels; a clean message is not quarantined.
func TestQuarantineNamesByCategory(t *testing.T) {
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	const good = "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n"
	for _, tc := range []struct {
		name, msg, prefix, deliveredTo, alert, log string
	}{
		{"banned", mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee\r\n"+
			"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			wrap76("TVqQAAMAAAAEAAAA//8AAA==")+"--b1--\r\n"),
			"banned-", "banned-quarantine", "X-Amavis-Alert: BANNED, message contains application/octet-stream,",
			"Blocked BANNED (application/octet-stream,"},
		{"bad header", good + "Subject: one\r\nSubject: two\r\n\r\nbody\r\n",
			"badh-", "bad-header-quarantine", `X-Amavis-Alert: BAD HEADER SECTION, Duplicate header field: "Subject"`,
			"Passed BAD-HEADER-8 {RelayedInbound,Quarantined}"},
		{"clean", good + "Subject: fine\r\n\r\nbody\r\n", "", "", "", "Passed CLEAN {RelayedInbound}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hop(t, smtptest.Options{})
			qdir := t.TempDir()
			td := startDaemon(t, h.Addr, "QUARANTINEDIR = \""+qdir+"\"\nquarantine_subdir_levels = 1\n"+string(rules))
			sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, tc.msg)
			waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
			line := mainLogLines(td.log.String())[0]
			var files []string
			filepath.WalkDir(qdir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			if !strings.Contains(line, ") "+tc.log) {
				t.Errorf("log line %q lacks %q", line, tc.log)
			}
			if tc.prefix == "" {
				if len(files) != 0 || strings.Contains(line, "quarantine:") {
					t.Errorf("a clean message was quarantined: %v, %q", files, line)
				}
				return
			}
			m := regexp.MustCompile(`, quarantine: ((\w)/` + tc.prefix + `([A-Za-z0-9_-]{12})), (?:.*, )?mail_id: ([A-Za-z0-9_-]{12}),`).FindStringSubmatch(line)
			if m == nil || m[3] != m[4] || m[2] != m[4][:1] {
				t.Fatalf("log line %q: want quarantine: X/%sMAILID with its mail_id", line, tc.prefix)
			}
			if len(files) != 1 || files[0] != filepath.Join(qdir, m[1]) {
				t.Fatalf("quarantine holds %v, want %s", files, m[1])
			}
			stored, _ := os.ReadFile(files[0])
			lead := "Return-Path: <bob@sender.example.org>\nDelivered-To: " + tc.deliveredTo + "\nX-Envelope-From: <bob@sender.example.org>\n" +
				"X-Envelope-To: <x@example.com>\n"
			if !strings.HasPrefix(string(stored), lead) || !strings.Contains(string(stored), "\nX-Quarantine-ID: <"+m[4]+">\n") ||
				!strings.Contains(strings.ReplaceAll(string(stored), "\n ", " "), "\n"+tc.alert) {
				t.Errorf("%s does not start with\n%s\nor lacks the id or %q:\n%s", m[1], lead, tc.alert, stored)
			}
			// A passed copy tells its local recipient where the quarantined one is.
			if msgs := h.Msgs(); strings.HasPrefix(tc.log, "Passed") &&
				(len(msgs) != 1 || !strings.HasPrefix(string(msgs[0].Data), "X-Quarantine-ID: <"+m[4]+">\r\n")) {
				t.Errorf("the passed copy does not start with X-Quarantine-ID: <%s>", m[4])
			}
		})
	}
}
