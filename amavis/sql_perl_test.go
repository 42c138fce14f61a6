package amavis

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// perlAmavisd starts Debian's amavisd-new forwarding to hop, scanning with clamd, and logging
// and quarantining to the MariaDB database dsn (DBD::MariaDB); it returns its SMTP address.
func perlAmavisd(t *testing.T, hopPort, clamdSocket, dsn, user string) string {
	t.Helper()
	return testenv.StartPerlAmavisd(t, testenv.PerlOptions{Hostname: "mx.example.com", Domain: "example.com",
		Forward: "127.0.0.1:" + hopPort, Modules: []string{"DBD::MariaDB"}, Conf: testenv.PerlPath + fmt.Sprintf(`$QUARANTINEDIR = "$MYHOME/virusmails";
@local_domains_acl = ( ".example.com" );
@bypass_spam_checks_maps = (1);
@bypass_virus_checks_maps = (0);
%s$final_virus_destiny = D_DISCARD;
$final_banned_destiny = D_DISCARD;
$virus_admin = undef;
$virus_quarantine_method = 'sql:';
$banned_files_quarantine_method = 'sql:';
@storage_sql_dsn = ( ['%s', '%s', ''] );
$sql_allow_8bit_address = 1;
$banned_filename_re = new_RE(
  qr'\.[^./]*\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\.?$'i,
  qr'^application/x-msdownload$'i,
  qr'^application/x-msdos-program$'i,
  qr'.\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i,
  qr'^\.(exe-ms)$',
);
`, testenv.PerlClamd(clamdSocket), dsn, user)}).SMTPAddr
}

// TestSQLSideBySidePerl: the same clean, EICAR and banned messages through Debian's Perl
// amavisd-new and through ours, each logging to its own MariaDB database with amavis's schema:
// the msgs, msgrcpt, maddr and quarantine rows are equal but for ids, times, the log id and the
// next hop's queue id.
func TestSQLSideBySidePerl(t *testing.T) {
	clamd := testenv.StartClamd(t)
	// the Perl daemon runs as amavis and must reach clamd's socket
	os.Chmod(filepath.Dir(clamd.Socket), 0o755)
	os.Chmod(clamd.Socket, 0o666)
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	h := hop(t, smtptest.Options{})
	clean := "From: =?UTF-8?Q?J=C3=B6rg?= <bob@sender.example.org>\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Message-ID: <side1@sender.example.org>\r\nSubject: =?ISO-8859-1?Q?caf=E9?=\r\n\r\nclean body\r\n"
	banned := mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
		"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		wrap76(base64.StdEncoding.EncodeToString(pe))+"--b1--\r\n")
	msgs := []string{clean, eicarMessages(t)["plain"], banned}

	dump := func(usePerl bool) string {
		srv, name, db := sqlDB(t, "mysql")
		var send func(msg string)
		if usePerl {
			pa := perlAmavisd(t, h.Port(), clamd.Socket, fmt.Sprintf("DBI:MariaDB:database=%s;mariadb_socket=%s", name, srv.Socket), srv.User())
			send = func(msg string) { smtpSend(t, pa, "bob@sender.example.org", "x@example.com", msg) }
		} else {
			d := startDaemon(t, h.Addr, fmt.Sprintf("storage_sql_dsn = [[%q, %q, \"\"]]\nsql_allow_8bit_address = true\n"+
				"virus_quarantine_method = \"sql:\"\nbanned_files_quarantine_method = \"sql:\"\n%s\n[[av_scanners]]\nname = \"clamd\"\ntype = \"clamd\"\nsockets = [%q]\n",
				srv.DSN(name), srv.User(), rules, clamd.Socket))
			send = func(msg string) { smtpSend(t, d.addr, "bob@sender.example.org", "x@example.com", msg) }
		}
		for _, m := range msgs {
			send(m)
		}
		testenv.WaitRows(t, db, 3, 20*time.Second, "SELECT count(*) FROM msgrcpt")
		rows, err := db.Query(`SELECT m.content, m.quar_type, m.quar_loc = m.mail_id, m.dsn_sent, m.spam_level, m.message_id,
			m.from_addr, m.subject, m.policy, m.size, m.originating, m.host, m.client_addr, m.time_iso, r.rseqnum, r.is_local, r.content, r.ds, r.rs,
			r.bl, r.wl, r.bspam_level, r.smtp_resp, s.email, s.domain, a.email, a.domain,
			(SELECT count(*) FROM quarantine q WHERE q.mail_id = m.mail_id)
			FROM msgs m JOIN msgrcpt r ON r.mail_id = m.mail_id JOIN maddr s ON s.id = m.sid JOIN maddr a ON a.id = r.rid
			ORDER BY m.time_num, m.am_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out []string
		ids := regexp.MustCompile(`id=\d+-\d+(-\d+)?|queued as \w+|MTA\(smtp:\[127\.0\.0\.1\]:\d+\)|^\d{8}T\d{6}Z$`)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			var f []string
			for _, v := range vals {
				s := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					s = string(b)
				}
				f = append(f, ids.ReplaceAllString(s, "<id>"))
			}
			out = append(out, strings.Join(f, " | "))
		}
		return strings.Join(out, "\n")
	}
	perl := dump(true)
	ours := dump(false)
	if perl != ours {
		t.Errorf("rows differ\nPerl:\n%s\nours:\n%s", perl, ours)
	}
}

// smtpSend sends one message over SMTP and returns the reply to the data.
func smtpSend(t *testing.T, addr, from, to, msg string) string {
	t.Helper()
	c, r := dial(t, addr)
	defer c.Close()
	expectPrefix(t, r, "220 ")
	send(t, c, "EHLO mta.example.com")
	for l := expectPrefix(t, r, "250"); !strings.HasPrefix(l, "250 "); l = expectPrefix(t, r, "250") {
	}
	send(t, c, "MAIL FROM:<"+from+">", "RCPT TO:<"+to+">", "DATA")
	expectPrefix(t, r, "250 ")
	expectPrefix(t, r, "250 ")
	expectPrefix(t, r, "354 ")
	c.Write([]byte(msg + ".\r\n"))
	reply := expectPrefix(t, r, "")
	send(t, c, "QUIT")
	return reply
}
