package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestSQLLookupDownPostfixKeepsMail: with the policy database (lookup_sql_dsn) stopped, our
// 451 leaves the message in Postfix's queue; once PostgreSQL is back, a flush delivers it
// exactly once and the message log (the same database) has its row.
func TestSQLLookupDownPostfixKeepsMail(t *testing.T) {
	srv := testenv.RequirePostgres(t)
	db := srv.CreateDB(t, "mail")
	dsn := fmt.Sprintf("[[%q, %q, \"\"]]", srv.DSN("mail"), srv.User())
	p := startPipeline(t, "smtp", 2, nil, "lookup_sql_dsn = "+dsn, "storage_sql_dsn = "+dsn,
		"sql_allow_8bit_address = true", "sql_timeout = 2")
	srv.Kill()
	restarted := false
	defer func() {
		if !restarted {
			srv.Restart()
		}
	}()
	qid, err := p.pf.Submit(sender, rcpt, message("<sqldown@e2e>", "sql down", "wait for the database\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.pf.WaitQueued(t, qid, "deferred", 30*time.Second)
	reason := regexp.MustCompile(`said: 451 4\.5\.0 Error in processing, id=\d+-\d+, lookup_sql FAILED: `)
	if len(m.Recipients) != 1 || !reason.MatchString(m.Recipients[0].DelayReason) {
		t.Errorf("deferred %+v, want a delay reason matching %s", m, reason)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	flushUntil(t, p.pf, 1, 30*time.Second)
	assertDeliveredOnce(t, p.pf, []string{"<sqldown@e2e>"})
	testenv.WaitRows(t, db, 1, 10*time.Second, "SELECT count(*) FROM msgs WHERE content = 'C' AND message_id = '<sqldown@e2e>'")
}
