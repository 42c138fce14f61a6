package amavis

import (
	"fmt"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/smtp/smtptest"
)

// GTUBE through Debian's rspamd with the SQL log on PostgreSQL: the rows carry the spam check
// as Amavis::Out::SQL::Log writes it: content S, msgs.spam_level and msgrcpt.bspam_level the
// recipient's level, and wl Y for a whitelisted sender (whose message is clean, level 0).
func TestSQLLogSpam(t *testing.T) {
	rs := testenv.StartRspamd(t)
	srv, name, db := sqlDB(t, "Pg")
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, fmt.Sprintf(`
storage_sql_dsn = [[%q, %q, ""]]
sql_allow_8bit_address = true
sa_tag_level_deflt = 2.0
sa_tag2_level_deflt = 6.31
sa_kill_level_deflt = 6.31
[[whitelist_sender_maps]]
acl = ["friend@sender.example.org"]
[[spam_scanners]]
name = "Local Rspamd"
type = "rspamd"
url = "http://%s/checkv2"
score_factor = 0.42066666666666666
`, srv.DSN(name), srv.User(), rs.Addr))
	gtube := "From: spammer@sender.example.org\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\nMessage-ID: <sqlspam@sender.example.org>\r\nSubject: offer\r\n\r\n" + testenv.GTUBE + "\r\n"
	sendMessage(t, td, false, "spammer@sender.example.org", []string{"x@example.com"}, gtube)
	sendMessage(t, td, false, "friend@sender.example.org", []string{"x@example.com"}, gtube)
	testenv.WaitRows(t, db, 2, 10*time.Second, "SELECT count(*) FROM msgrcpt")
	rows, err := db.Query(`SELECT sa.email, m.content, m.spam_level, r.content, r.bspam_level, r.wl, r.bl, r.ds
		FROM msgs m JOIN msgrcpt r ON r.mail_id = m.mail_id JOIN maddr sa ON sa.id = m.sid ORDER BY m.time_num, m.am_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var sender []byte
		var content, rcontent, wl, bl, ds string
		var level, blevel float64
		if err := rows.Scan(&sender, &content, &level, &rcontent, &blevel, &wl, &bl, &ds); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %.2f %s %.2f wl=%s bl=%s ds=%s", sender, content, level, rcontent, blevel, wl, bl, ds))
	}
	want := []string{
		"spammer@sender.example.org S 6.31 S 6.31 wl=N bl=N ds=P",
		// whitelisted: no engine asked and no level (SpamControl's white_black_list adds no
		// points for a W), which the log writes as 0
		"friend@sender.example.org C 0.00 C 0.00 wl=Y bl=N ds=P",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows\n got %q\nwant %q", got, want)
	}
}
