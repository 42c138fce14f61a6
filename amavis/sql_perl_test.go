package amavis

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// perlAmavisd starts Debian's amavisd-new in the foreground with a private home, listening on
// a free port, forwarding to hop, scanning with clamd, and logging and quarantining to the
// MariaDB database dsn (DBD::MariaDB); it returns the port once the daemon greets.
func perlAmavisd(t *testing.T, hopPort, clamdSocket, dsn, user string) string {
	t.Helper()
	bin := testenv.RequireProgram(t, "/usr/sbin/amavisd")
	if err := exec.Command("perl", "-MDBD::MariaDB", "-e", "1").Run(); err != nil {
		t.Skip("perl's DBD::MariaDB (libdbd-mariadb-perl) is not installed")
	}
	amavis, err := userIDs("amavis")
	if err != nil {
		t.Skip(err)
	}
	home, err := os.MkdirTemp("", "perlamavis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	for _, d := range []string{home, home + "/tmp", home + "/db", home + "/virusmails"} {
		os.MkdirAll(d, 0o750)
		os.Chown(d, amavis[0], amavis[1])
	}
	os.Chmod(home, 0o755)
	port := testenv.FreePort(t)
	// amavis refuses a configuration in a directory its user may write
	confDir, err := os.MkdirTemp("", "perlconf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(confDir) })
	os.Chmod(confDir, 0o755)
	conf := filepath.Join(confDir, "amavisd.conf")
	text := fmt.Sprintf(`use strict;
$MYHOME = '%[1]s';
$TEMPBASE = "$MYHOME/tmp";
$ENV{TMPDIR} = $TEMPBASE;
$db_home = "$MYHOME/db";
$QUARANTINEDIR = "$MYHOME/virusmails";
$lock_file = "$MYHOME/amavisd.lock";
$pid_file = "$MYHOME/amavisd.pid";
$daemon_user = 'amavis';
$daemon_group = 'amavis';
$ENV{PATH} = $path = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin';
$file = 'file';
$myhostname = 'mx.example.com';
$mydomain = 'example.com';
@local_domains_acl = ( ".example.com" );
$inet_socket_port = %[2]d;
$inet_socket_bind = '127.0.0.1';
$forward_method = 'smtp:[127.0.0.1]:%[3]s';
$notify_method = $forward_method;
$max_servers = 1;
$max_requests = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavisd.log";
$log_level = 0;
$enable_db = 0;
@bypass_spam_checks_maps = (1);
@bypass_virus_checks_maps = (0);
@av_scanners = (['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {}\n", "%[4]s"],
  qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ]);
@av_scanners_backup = ();
$final_virus_destiny = D_DISCARD;
$final_banned_destiny = D_DISCARD;
$virus_admin = undef;
$enable_dkim_verification = 0;
$virus_quarantine_method = 'sql:';
$banned_files_quarantine_method = 'sql:';
@storage_sql_dsn = ( ['%[5]s', '%[6]s', ''] );
$sql_allow_8bit_address = 1;
$banned_filename_re = new_RE(
  qr'\.[^./]*\.(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)\.?$'i,
  qr'^application/x-msdownload$'i,
  qr'^application/x-msdos-program$'i,
  qr'.\.(exe|vbs|pif|scr|bat|cmd|com|cpl)$'i,
  qr'^\.(exe-ms)$',
);
1;
`, home, port, hopPort, clamdSocket, dsn, user)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf, "foreground")
	out, _ := os.Create(filepath.Join(home, "stdout"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(home, "amavisd.log"))
			so, _ := os.ReadFile(filepath.Join(home, "stdout"))
			t.Logf("Perl amavisd log:\n%s\n%s", log, so)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			l, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(l, "220 ") {
				return addr
			}
		}
		select {
		case <-exited:
			so, _ := os.ReadFile(filepath.Join(home, "stdout"))
			t.Fatalf("Perl amavisd exited:\n%s", so)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("Perl amavisd does not greet")
		}
	}
}

func userIDs(name string) ([2]int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return [2]int{}, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return [2]int{uid, gid}, nil
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
