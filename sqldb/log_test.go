package sqldb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"amavisgo/conf"
)

var dbSeq int

// newLogDB makes a database with amavis's schema on the server of kind and the Log writing
// to it.
func newLogDB(t *testing.T, kind string, edit func(*conf.Config)) (*Log, *sql.DB) {
	t.Helper()
	s := server(t, kind)
	dbSeq++
	name := fmt.Sprintf("log%d", dbSeq)
	db := s.CreateDB(t, name)
	c := conf.Default()
	c.Myhostname = "node-a.example.com"
	c.StorageSQLDSN = []conf.SQLDSN{{DSN: s.DSN(name), User: s.User()}}
	c.SQLAllow8bitAddress = true // the schema's emails are bytea/varbinary
	if edit != nil {
		edit(c)
	}
	p, err := Open(c.StorageSQLDSN, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return NewLog(p, c), db
}

func TestLogRows(t *testing.T) {
	for _, kind := range []string{"Pg", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			l, db := newLogDB(t, kind, nil)
			ctx := context.Background()
			rx := time.Date(2026, 12, 4, 5, 44, 0, 0, time.UTC)
			m := &Message{MailID: "n8rZJ2zBYamo", SecretID: "s3cr3t", LogID: "01234-01", RxTime: rx,
				Sender: "Sender@Mail.Example.ORG", PolicyBankPath: "MYNETS", ClientAddr: "192.0.2.1", Size: 1234,
				Recips: []Recip{
					{Addr: "User@Sub.Example.COM.", Local: true, Content: 'V', Destiny: conf.D_DISCARD, Done: true,
						Response: "250 2.7.0 Ok, discarded, id=01234-01 - INFECTED: Eicar-Test-Signature"},
					{Addr: "other@example.net", Content: 'C', Destiny: conf.D_PASS, Done: true,
						Response: "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4ABC"},
				}}
			if err := l.Preliminary(ctx, m); err != nil {
				t.Fatal(err)
			}
			var content sql.NullString
			if err := db.QueryRow("SELECT content FROM msgs").Scan(&content); err != nil || content.Valid {
				t.Fatalf("preliminary msgs.content = %v (%v), want NULL", content, err)
			}
			m.Content, m.QuarType, m.QuarLoc, m.DSNSent = 'V', 'Q', "n8rZJ2zBYamo", 'N'
			m.MessageID, m.From, m.Subject = "<abc@example.org>", "=?UTF-8?Q?J=C3=B6rg?= <sender@mail.example.org>", "=?ISO-8859-1?Q?caf=E9?= test"
			if err := l.Final(ctx, m); err != nil {
				t.Fatal(err)
			}
			var got [12]string
			err := db.QueryRow(rebindFor(kind, `SELECT m.content, m.quar_type, m.quar_loc, m.dsn_sent, m.message_id, m.from_addr, m.subject,
				m.host, m.policy, m.am_id, s.email, s.domain FROM msgs m JOIN maddr s ON m.sid = s.id WHERE m.mail_id = ?`),
				[]byte("n8rZJ2zBYamo")).Scan(&got[0], &got[1], &got[2], &got[3], &got[4], &got[5], &got[6], &got[7], &got[8], &got[9], &got[10], &got[11])
			if err != nil {
				t.Fatal(err)
			}
			want := [12]string{"V", "Q", "n8rZJ2zBYamo", "N", "<abc@example.org>", "Jörg <sender@mail.example.org>", "café test",
				"node-a.example.com", "MYNETS", "01234-01", "sender@mail.example.org", "org.example.mail"}
			if got != want {
				t.Errorf("msgs row\n got %q\nwant %q", got, want)
			}
			rows, err := db.Query(`SELECT r.rseqnum, r.is_local, r.content, r.ds, r.rs, r.bl, r.wl, r.smtp_resp, a.email, a.domain
				FROM msgrcpt r JOIN maddr a ON r.rid = a.id ORDER BY r.rseqnum`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var lines []string
			for rows.Next() {
				var seq int
				var f [9]string
				if err := rows.Scan(&seq, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8]); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, fmt.Sprintf("%d %q", seq, f))
			}
			rs := " "
			if kind == "mysql" {
				rs = "" // MySQL's CHAR drops trailing blanks when read
			}
			wantRows := []string{
				`1 ["Y" "V" "D" "` + rs + `" "N" "N" "250 2.7.0 Ok, discarded, id=01234-01 - INFECTED: Eicar-Test-Signature" "user@sub.example.com" "com.example.sub"]`,
				`2 ["N" "C" "P" "` + rs + `" "N" "N" "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4ABC" "other@example.net" "net.example"]`,
			}
			if fmt.Sprint(lines) != fmt.Sprint(wantRows) {
				t.Errorf("msgrcpt rows\n got %v\nwant %v", lines, wantRows)
			}
			// a second message from the same sender reuses its maddr row
			m2 := *m
			m2.MailID = "otherMailID1"
			if err := l.Preliminary(ctx, &m2); err != nil {
				t.Fatal(err)
			}
			var n int
			db.QueryRow("SELECT count(*) FROM maddr").Scan(&n)
			if n != 3 {
				t.Errorf("%d maddr rows, want 3", n)
			}
			// the same mail_id again is a duplicate: the caller draws a new one
			if err := l.Preliminary(ctx, m); !IsDuplicate(err) {
				t.Errorf("storing mail_id %s twice: %v, want a duplicate-key error", m.MailID, err)
			}
		})
	}
}

func rebindFor(kind, q string) string {
	if kind == "Pg" {
		return Postgres.rebind(q)
	}
	return q
}

// TestFinalRetriedAfterOutage: the database stops between the preliminary and the final rows;
// the first attempt fails and is logged, the retries go on in the background, and once the
// server is back the rows are there.
func TestFinalRetriedAfterOutage(t *testing.T) {
	srv := server(t, "Pg")
	l, db := newLogDB(t, "Pg", nil)
	l.Wait = func() time.Duration { return 500 * time.Millisecond }
	ctx := context.Background()
	m := &Message{MailID: "outage000001", LogID: "1-1", RxTime: time.Now(), Sender: "a@example.org",
		Recips: []Recip{{Addr: "b@example.com", Destiny: conf.D_PASS, Done: true, Response: "250 2.0.0 Ok"}}}
	if err := l.Preliminary(ctx, m); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	var mu sync.Mutex
	var logged []string
	logf := func(level int, format string, args ...any) {
		mu.Lock()
		logged = append(logged, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	m.Content = 'C'
	l.FinalRetrying(m, logf)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	l.Drain()
	var n int
	db.QueryRow("SELECT count(*) FROM msgrcpt").Scan(&n)
	var content string
	db.QueryRow("SELECT content FROM msgs").Scan(&content)
	if n != 1 || content != "C" {
		t.Errorf("after the outage: %d msgrcpt rows, msgs.content %q; log %q", n, content, logged)
	}
	if len(logged) == 0 || !strings.HasPrefix(logged[0], "WARN save_info_final: ") {
		t.Errorf("the failed attempt is not logged: %q", logged)
	}
}
