package amavis

import (
	"fmt"
	"strings"
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
%s`, srv.DSN(name), srv.User(), rspamdScanner(rs.Addr)))
	gtube := gtubeMessage("sqlspam@sender.example.org")
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

// Per-user spam policy from SQL: a recipient whose policy row raises tag2 and kill levels keeps
// GTUBE (X-Spam-Flag: NO), one whose wblist whitelists the sender's domain gets it untagged,
// and a third with the defaults has it discarded as spam; msgrcpt shows the W.
func TestSQLPolicySpam(t *testing.T) {
	rs := testenv.StartRspamd(t)
	srv, name, db := sqlDB(t, "Pg")
	for _, s := range []string{
		"INSERT INTO policy (id, policy_name, spam_tag2_level, spam_kill_level) VALUES (1, 'default', NULL, NULL), (2, 'tolerant', 999, 999)",
		"INSERT INTO users (id, priority, policy_id, email) VALUES (1, 7, 2, 'tolerant@example.com'), (2, 0, 1, '@.'), (3, 7, 1, 'listed@example.com')",
		"INSERT INTO mailaddr (id, priority, email) VALUES (1, 5, '@sender.example.org')",
		"INSERT INTO wblist (rid, sid, wb) VALUES (3, 1, 'W')",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	h := hop(t, smtptest.Options{KeepData: 1 << 16})
	dsn := fmt.Sprintf("[[%q, %q, \"\"]]", srv.DSN(name), srv.User())
	td := startDaemon(t, h.Addr, fmt.Sprintf(`storage_sql_dsn = %s
lookup_sql_dsn = %s
sql_allow_8bit_address = true
sa_tag_level_deflt = 2.0
sa_tag2_level_deflt = 6.31
sa_kill_level_deflt = 6.31
final_spam_destiny = "D_DISCARD"
%s`, dsn, dsn, rspamdScanner(rs.Addr)))
	gtube := gtubeMessage("sqlpolicy@sender.example.org")
	got := sendMessage(t, td, true, "spammer@sender.example.org", []string{"tolerant@example.com", "other@example.com", "listed@example.com"}, gtube)
	if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") || !strings.HasPrefix(got[1], "250 2.7.0 Ok, discarded, id=PID-NN - spam") ||
		!strings.HasPrefix(got[2], "250 2.0.0 from MTA(") {
		t.Errorf("replies %q", got)
	}
	copies := spamFlags(h)
	// the whitelisted copy is below the tag level (whitelisting counts as -10 against it, as in
	// amavis's decide_mail_destiny): no X-Spam-* fields
	if copies != "[[tolerant@example.com] NO [listed@example.com] ]" {
		t.Errorf("delivered copies (recipients, X-Spam-Flag): %v", copies)
	}
	testenv.WaitRows(t, db, 3, 10*time.Second, "SELECT count(*) FROM msgrcpt")
	rows, err := db.Query("SELECT content, ds, wl, bl FROM msgrcpt ORDER BY rseqnum")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var flags []string
	for rows.Next() {
		var content, ds, wl, bl string
		rows.Scan(&content, &ds, &wl, &bl)
		flags = append(flags, content+ds+wl+bl)
	}
	// content C for the tolerant recipient too: tagged at tag level 2, CC_CLEAN,1
	if fmt.Sprint(flags) != "[CPNN SDNN CPYN]" {
		t.Errorf("msgrcpt content, ds, wl, bl: %v, want [CPNN SDNN CPYN]", flags)
	}
}
