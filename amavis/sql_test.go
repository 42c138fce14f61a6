package amavis

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/quarantine"
	"amavisgo/smtp/smtptest"
)

// One PostgreSQL and one MariaDB for the package's SQL tests, started on first use and stopped
// by TestMain.
var (
	sqlServers   = map[string]*testenv.SQLServer{}
	sqlServersMu sync.Mutex
	sqlDBSeq     int
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range sqlServers {
		s.Stop()
	}
	os.Exit(code)
}

// sqlDB makes a new database with amavis's schema on the server of kind ("Pg" or "mysql").
func sqlDB(t testing.TB, kind string) (*testenv.SQLServer, string, *sql.DB) {
	t.Helper()
	sqlServersMu.Lock()
	s := sqlServers[kind]
	if s == nil {
		start := testenv.StartPostgres
		if kind == "mysql" {
			start = testenv.StartMariaDB
		}
		var err error
		if s, err = start(); err != nil {
			sqlServersMu.Unlock()
			if os.Getenv("CI") == "true" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		sqlServers[kind] = s
	}
	sqlDBSeq++
	name := fmt.Sprintf("amavis%d", sqlDBSeq)
	sqlServersMu.Unlock()
	return s, name, s.CreateDB(t, name)
}

// q rewrites ? as $n for PostgreSQL in the tests' own queries.
func q(kind, s string) string {
	if kind != "Pg" {
		return s
	}
	for n := 1; strings.Contains(s, "?"); n++ {
		s = strings.Replace(s, "?", fmt.Sprintf("$%d", n), 1)
	}
	return s
}

// releaseScript is Debian's amavisd-release talking to socket.
func releaseScript(t *testing.T, socket string) string {
	t.Helper()
	prog := testenv.RequireProgram(t, "amavisd-release", "/usr/sbin/amavisd-release")
	src, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	const line = "$socketname = '/var/lib/amavis/amavisd.sock';"
	if !bytes.Contains(src, []byte(line)) {
		t.Fatalf("%s has no %q line", prog, line)
	}
	script := filepath.Join(t.TempDir(), "amavisd-release")
	if err := os.WriteFile(script, bytes.Replace(src, []byte(line), []byte("$socketname = '"+socket+"';"), 1), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestSQLLogQuarantineRelease: clean, EICAR and banned messages through a daemon that logs to
// amavis's schema and quarantines to sql:, on PostgreSQL 15 and MariaDB: the rows carry
// amavis's values, smtp_resp is the reply the client got, the chunks reassemble into the
// stored message, and amavisd-release with only the mail_id delivers it once.
func TestSQLLogQuarantineRelease(t *testing.T) {
	clamd := testenv.StartClamd(t)
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Pg", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			srv, name, db := sqlDB(t, kind)
			h := hop(t, smtptest.Options{KeepData: 1 << 20})
			sock := filepath.Join(t.TempDir(), "amavisd.sock")
			td := startDaemon(t, h.Addr, fmt.Sprintf(`
storage_sql_dsn = [[%q, %q, ""]]
sql_allow_8bit_address = true
sql_quarantine_chunksize_max = 1000
unix_socketname = %q
interface_policy = { %q = "PDP" }
virus_quarantine_method = "sql:"
banned_files_quarantine_method = "sql:"
%s
[[av_scanners]]
name = "clamd"
type = "clamd"
sockets = [%q]

[policy_bank.PDP]
protocol = "AM.PDP"
auth_required_release = false
`, srv.DSN(name), srv.User(), sock, sock, rules, clamd.Socket))
			clean := "From: =?UTF-8?Q?J=C3=B6rg?= <Bob@Sender.Example.ORG>\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\nMessage-ID: <clean1@sender.example.org>\r\nSubject: hello\r\n\r\nclean body\r\n"
			eicar := eicarMessages(t)["plain"]
			banned := mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
				"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
				wrap76(base64.StdEncoding.EncodeToString(pe))+"--b1--\r\n")
			type sent struct {
				msg, reply        string
				content, quarType string
				ds                string
			}
			cases := []*sent{
				{msg: clean, content: "C", quarType: " ", ds: "P"},
				{msg: eicar, content: "V", quarType: "Q", ds: "D"},
				{msg: banned, content: "B", quarType: "Q", ds: "D"},
			}
			for _, c := range cases {
				c.reply = sendMessage(t, td, false, "Bob@Sender.Example.ORG", []string{"X@Sub.Example.COM"}, c.msg)[0]
			}
			testenv.WaitRows(t, db, 3, 10*time.Second, "SELECT count(*) FROM msgrcpt")
			rows, err := db.Query(`SELECT m.mail_id, m.content, m.quar_type, m.quar_loc, m.host, m.size, r.ds, r.smtp_resp,
				r.is_local, ra.email, ra.domain, sa.domain, m.from_addr FROM msgs m JOIN msgrcpt r ON r.mail_id = m.mail_id
				JOIN maddr ra ON ra.id = r.rid JOIN maddr sa ON sa.id = m.sid ORDER BY m.time_num, m.am_id`)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for i := 0; rows.Next(); i++ {
				var mailID []byte
				var content, qt, qloc, host, ds, resp, local, remail, rdom, sdom, from string
				var size int64
				if err := rows.Scan(&mailID, &content, &qt, &qloc, &host, &size, &ds, &resp, &local, &remail, &rdom, &sdom, &from); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, string(mailID))
				c := cases[i]
				if kind == "mysql" && qt == "" {
					qt = " " // MySQL's CHAR drops trailing blanks
				}
				got := []string{content, qt, ds, newNormalizer(td).line(resp), local, remail, rdom, sdom, host}
				want := []string{c.content, c.quarType, c.ds, c.reply, "Y", "x@sub.example.com", "com.example.sub", "org.example.sender", "mx.example.com"}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("message %d rows\n got %q\nwant %q", i, got, want)
				}
				if c.quarType == "Q" && qloc != string(mailID) {
					t.Errorf("message %d: quar_loc %q, want the mail_id %s", i, qloc, mailID)
				}
				if i == 0 && from != "Jörg <Bob@Sender.Example.ORG>" {
					t.Errorf("from_addr %q", from)
				}
				if size != int64(len(c.msg)) {
					t.Errorf("message %d: size %d, want %d", i, size, len(c.msg))
				}
			}
			if len(ids) != 3 {
				t.Fatalf("%d messages logged, want 3", len(ids))
			}
			// the EICAR message's chunks, reassembled, are the stored format of the message
			var text bytes.Buffer
			var chunks int
			crow, err := db.Query(q(kind, "SELECT chunk_ind, mail_text FROM quarantine WHERE mail_id = ? ORDER BY chunk_ind"), []byte(ids[1]))
			if err != nil {
				t.Fatal(err)
			}
			for crow.Next() {
				var ind int
				var b []byte
				crow.Scan(&ind, &b)
				chunks++
				if ind != chunks || (len(b) != 1000 && crow.Next()) {
					t.Fatalf("chunk %d: index %d, %d bytes", chunks, ind, len(b))
				}
				text.Write(b)
			}
			st, err := quarantine.OpenReader("sql", io.NopCloser(bytes.NewReader(text.Bytes())))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(st.Body)
			if st.QuarantineID != ids[1] || st.Sender != "Bob@Sender.Example.ORG" || fmt.Sprint(st.Blocked) != "[X@Sub.Example.COM]" {
				t.Errorf("stored fields: id %s sender %s blocked %v", st.QuarantineID, st.Sender, st.Blocked)
			}
			if !bytes.HasSuffix(body, []byte(strings.ReplaceAll(eicar, "\r\n", "\n"))) {
				t.Errorf("the quarantined text does not end with the message:\n%s", body)
			}
			// released with only the mail_id, as amavisd-release is used
			before := len(h.Msgs())
			out, err := exec.Command(releaseScript(t, sock), ids[1]).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "250 2.0.0") {
				t.Fatalf("amavisd-release %s: %v\n%s", ids[1], err, out)
			}
			msgs := h.Msgs()
			if len(msgs) != before+1 {
				t.Fatalf("%d messages delivered by the release, want 1", len(msgs)-before)
			}
			rel := msgs[len(msgs)-1]
			relData := bytes.ReplaceAll(rel.Data, []byte("\r\n"), []byte("\n"))
			if fmt.Sprint(rel.Rcpts) != "[X@Sub.Example.COM]" || !bytes.HasSuffix(relData, []byte(strings.ReplaceAll(eicar, "\r\n", "\n"))) {
				t.Errorf("released copy to %v:\n%s", rel.Rcpts, rel.Data)
			}
			// the banned one as modoboa-amavis asks: quar_type Q, the secret_id, a recipient
			var secret []byte
			if err := db.QueryRow(q(kind, "SELECT secret_id FROM msgs WHERE mail_id = ?"), []byte(ids[2])).Scan(&secret); err != nil {
				t.Fatal(err)
			}
			conn, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(conn, "request=release\r\nmail_id=%s\r\nsecret_id=%s\r\nquar_type=Q\r\nrecipient=%%3Cother@example.com%%3E\r\n\r\n", ids[2], secret)
			resp, _ := bufio.NewReader(conn).ReadString('\n')
			if !regexp.MustCompile(`^setreply=250 [\d.]+ `).MatchString(resp) {
				t.Errorf("modoboa's release request: %q", resp)
			}
			if msgs := h.Msgs(); len(msgs) != before+2 || fmt.Sprint(msgs[len(msgs)-1].Rcpts) != "[other@example.com]" {
				t.Errorf("after modoboa's request: %d releases, the last to %v", len(msgs)-before, msgs[len(msgs)-1].Rcpts)
			}
		})
	}
}

// TestSQLLogDatabaseDown: the log database stopped: mail keeps flowing (the log's failure is
// only logged, and retried); once it is back the next message is logged.
func TestSQLLogDatabaseDown(t *testing.T) {
	srv, name, db := sqlDB(t, "Pg")
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, fmt.Sprintf("storage_sql_dsn = [[%q, %q, \"\"]]\nsql_allow_8bit_address = true\nsql_timeout = 2\n", srv.DSN(name), srv.User()))
	srv.Kill()
	restarted := false
	defer func() {
		if !restarted {
			srv.Restart()
		}
	}()
	got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") || len(h.Msgs()) != 1 {
		t.Fatalf("with the database down: %q, %d delivered", got[0], len(h.Msgs()))
	}
	if !strings.Contains(td.log.String(), "WARN save_info_preliminary") {
		t.Errorf("no warning in the log:\n%s", td.log.String())
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	got = sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
		t.Fatalf("after the restart: %q", got[0])
	}
	testenv.WaitRows(t, db, 1, 10*time.Second, "SELECT count(*) FROM msgs WHERE content = 'C'")
}

// TestSQLPolicyPerRecipient: users/policy/wblist rows make one recipient a virus lover with
// the sender whitelisted, while the other recipient of the same message keeps the defaults;
// a lookup database that does not answer is a 451 and nothing is delivered.
func TestSQLPolicyPerRecipient(t *testing.T) {
	clamd := testenv.StartClamd(t)
	srv, name, db := sqlDB(t, "Pg")
	for _, s := range []string{
		"INSERT INTO policy (id, policy_name, virus_lover, bypass_virus_checks) VALUES (1, 'default', NULL, NULL), (2, 'lover', 'Y', NULL), (3, 'bypass', 'N', 'Y')",
		"INSERT INTO users (id, priority, policy_id, email) VALUES (1, 7, 2, 'lover@example.com'), (2, 0, 1, '@.'), (3, 7, 3, 'bypass@example.com')",
		"INSERT INTO mailaddr (id, priority, email) VALUES (1, 5, '@sender.example.org')",
		"INSERT INTO wblist (rid, sid, wb) VALUES (1, 1, 'W')",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	h := hop(t, smtptest.Options{KeepData: 1 << 16})
	scanner := fmt.Sprintf("[[av_scanners]]\nname = \"clamd\"\ntype = \"clamd\"\nsockets = [%q]\n", clamd.Socket)
	dsn := fmt.Sprintf("[[%q, %q, \"\"]]", srv.DSN(name), srv.User())
	td := startDaemon(t, h.Addr, "storage_sql_dsn = "+dsn+"\nlookup_sql_dsn = "+dsn+"\nsql_allow_8bit_address = true\n"+scanner)
	got := sendMessage(t, td, true, "bob@sender.example.org", []string{"lover@example.com", "other@example.com", "bypass@example.com"}, eicarMessages(t)["plain"])
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") || !strings.HasPrefix(got[1], "250 2.7.0 Ok, discarded, id=PID-NN - INFECTED") ||
		!strings.HasPrefix(got[2], "250 2.0.0 from MTA(") {
		t.Errorf("replies %q", got)
	}
	// the lover's copy carries the alert; the recipient who bypasses virus checks gets the
	// message as it came, in a transaction of its own
	var copies []string
	for _, m := range h.Msgs() {
		copies = append(copies, fmt.Sprint(m.Rcpts, bytes.Contains(m.Data, []byte("X-Amavis-Alert: INFECTED"))))
	}
	if fmt.Sprint(copies) != "[[lover@example.com] true [bypass@example.com] false]" {
		t.Errorf("delivered copies (recipients, alert): %v", copies)
	}
	testenv.WaitRows(t, db, 3, 10*time.Second, "SELECT count(*) FROM msgrcpt")
	rows, err := db.Query("SELECT ds, wl, bl FROM msgrcpt ORDER BY rseqnum")
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	for rows.Next() {
		var ds, wl, bl string
		rows.Scan(&ds, &wl, &bl)
		flags = append(flags, ds+wl+bl)
	}
	if fmt.Sprint(flags) != "[PYN DNN PNN]" {
		t.Errorf("msgrcpt ds, wl, bl: %v, want [PYN DNN PNN]", flags)
	}

	dead := fmt.Sprintf("[[%q, \"postgres\", \"\"]]", "DBI:Pg:database=x;host="+t.TempDir()+";port=5432")
	h2 := hop(t, smtptest.Options{})
	td2 := startDaemon(t, h2.Addr, "lookup_sql_dsn = "+dead+"\nsql_timeout = 2\n")
	got = sendMessage(t, td2, false, "bob@sender.example.org", []string{"lover@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "451 4.5.0 Error in processing, id=PID-NN, lookup_sql FAILED: ") {
		t.Errorf("lookup database down: %q, want a 451", got[0])
	}
	if n := len(h2.Msgs()); n != 0 {
		t.Errorf("the next hop got %d messages", n)
	}
	waitFor(t, "the start-up warning", func() bool {
		return strings.Contains(td2.log.String(), "WARN: lookup_sql_dsn: no database answers: DBI:Pg:database=x;")
	})
}

// TestSQLTwoNodesRelease: two daemons (myhostname a and b) log to one database. Node a
// quarantines viruses to sql: and banned mail to its own QUARANTINEDIR (local:); Debian's
// amavisd-release against node b's AM.PDP socket releases both: the first from the
// database, the second passed on to node a, found through msgs.host. Each is delivered once.
func TestSQLTwoNodesRelease(t *testing.T) {
	clamd := testenv.StartClamd(t)
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	srv, name, db := sqlDB(t, "Pg")
	h := hop(t, smtptest.Options{KeepData: 1 << 20})
	sockA := filepath.Join(t.TempDir(), "a.sock")
	sockB := filepath.Join(t.TempDir(), "b.sock")
	common := fmt.Sprintf(`storage_sql_dsn = [[%q, %q, ""]]
sql_allow_8bit_address = true
virus_quarantine_method = "sql:"
banned_files_quarantine_method = "local:banned-%%m"
`, srv.DSN(name), srv.User())
	node := func(host, sock, extra string) *testDaemon {
		return startDaemon(t, h.Addr, fmt.Sprintf(`myhostname = %q
QUARANTINEDIR = %q
unix_socketname = %q
interface_policy = { %q = "PDP" }
%s
%s
%s
[[av_scanners]]
name = "clamd"
type = "clamd"
sockets = [%q]

[policy_bank.PDP]
protocol = "AM.PDP"
auth_required_release = false
`, host, t.TempDir(), sock, sock, common, extra, rules, clamd.Socket))
	}
	a := node("a.example.com", sockA, "")
	b := node("b.example.com", sockB, fmt.Sprintf("sql_release_peers = { \"a.example.com\" = \"unix:%s\" }", sockA))
	eicar := eicarMessages(t)["plain"]
	banned := mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
		"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		wrap76(base64.StdEncoding.EncodeToString(pe))+"--b1--\r\n")
	for _, msg := range []string{eicar, banned} {
		if got := sendMessage(t, a, false, "bob@sender.example.org", []string{"x@example.com"}, msg)[0]; !strings.HasPrefix(got, "250 2.7.0 Ok, discarded") {
			t.Fatalf("node a: %q", got)
		}
	}
	testenv.WaitRows(t, db, 2, 10*time.Second, "SELECT count(*) FROM msgs WHERE content IS NOT NULL")
	rows, err := db.Query("SELECT mail_id, quar_type, host FROM msgs ORDER BY content DESC")
	if err != nil {
		t.Fatal(err)
	}
	var ids, kinds []string
	for rows.Next() {
		var id []byte
		var qt, host string
		rows.Scan(&id, &qt, &host)
		ids = append(ids, string(id))
		kinds = append(kinds, qt+"@"+host)
	}
	if fmt.Sprint(kinds) != "[Q@a.example.com F@a.example.com]" {
		t.Fatalf("quar_type@host of the virus and the banned message: %v", kinds)
	}
	script := releaseScript(t, sockB)
	// the virus by its mail_id alone; the banned file by the name the log shows
	for i, arg := range []string{ids[0], "banned-" + ids[1]} {
		before := len(h.Msgs())
		out, err := exec.Command(script, arg).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "250 2.0.0") {
			t.Fatalf("amavisd-release %s at node b: %v\n%s", arg, err, out)
		}
		if n := len(h.Msgs()) - before; n != 1 {
			t.Errorf("release %d delivered %d copies, want 1", i, n)
		}
	}
	if !strings.Contains(a.log.String(), "Quarantined message release (miscategorized): "+ids[1]) {
		t.Errorf("node a did not release %s:\n%s", ids[1], a.log.String())
	}
	if !strings.Contains(b.log.String(), "release of "+ids[1]+" passed on to a.example.com") {
		t.Errorf("node b's log does not say it passed the release on:\n%s", b.log.String())
	}
}

// BenchmarkEndToEnd2KSQL is BenchmarkEndToEnd2K with the SQL log on (PostgreSQL 15 on this
// machine, amavis's schema): the preliminary and the final rows of every message. cpu-µs/msg is
// the test process (client, daemon, next hop), db-cpu-µs/msg PostgreSQL's processes.
func BenchmarkEndToEnd2KSQL(b *testing.B) {
	s, name, _ := sqlDB(b, "Pg")
	h := smtptest.Start(b, smtptest.Options{KeepData: 1})
	td := startDaemon(b, h.Addr, fmt.Sprintf("log_level = -1\nstorage_sql_dsn = [[%q, %q, \"\"]]\nsql_allow_8bit_address = true\n", s.DSN(name), s.User()))
	c, r := dial(b, td.addr)
	c.SetDeadline(time.Time{})
	expectPrefix(b, r, "220 ")
	send(b, c, "HELO mta.example.com")
	expectPrefix(b, r, "250 ")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg2k)))
	cpu0, db0 := cpuTime(), s.CPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(c, "MAIL FROM:<alice@sender.example.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n")
		for range 3 {
			if _, err := r.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
		}
		io.WriteString(c, msg2k+".\r\n")
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "250 2.0.0 from MTA") {
			b.Fatalf("%q %v", l, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	b.ReportMetric(float64((s.CPU()-db0).Microseconds())/float64(b.N), "db-cpu-µs/msg")
}

// TestSQLFinalGivesUp: a final statement the database refuses (a site's broken upd_msg)
// never holds the mail: the reply is the next hop's, the attempts go on in the background, five
// in all, then amavis's error line; a shutdown waits for them.
func TestSQLFinalGivesUp(t *testing.T) {
	srv, name, db := sqlDB(t, "Pg")
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, fmt.Sprintf("storage_sql_dsn = [[%q, %q, \"\"]]\nsql_allow_8bit_address = true\n"+
		"sql_clause = { upd_msg = \"UPDATE no_such_table SET content=?\" }\n", srv.DSN(name), srv.User()))
	got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, smallBody)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") || len(h.Msgs()) != 1 {
		t.Fatalf("reply %q, %d delivered", got[0], len(h.Msgs()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	td.Shutdown(ctx)
	log := td.log.String()
	if n := strings.Count(log, "WARN save_info_final: "); n != 5 || !strings.Contains(log, "ERROR sql_storage: too many retries on storing final, info not saved") {
		t.Errorf("%d failed attempts logged, want 5 and the final error:\n%s", n, log)
	}
	var n int
	db.QueryRow("SELECT count(*) FROM msgrcpt").Scan(&n)
	if n != 0 {
		t.Errorf("%d msgrcpt rows: the failed transactions left rows", n)
	}
}
