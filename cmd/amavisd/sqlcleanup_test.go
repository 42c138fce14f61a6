package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// TestSQLCleanupVerb: "amavisd sql-cleanup --older-than 10" deletes the messages of a
// PostgreSQL log older than ten days with their rows, keeps the newer, and says what it did.
func TestSQLCleanupVerb(t *testing.T) {
	srv := testenv.RequirePostgres(t)
	db := srv.CreateDB(t, "maillog")
	now := time.Now().Unix()
	for i, age := range []int64{20, 15, 11, 1} {
		for _, s := range []string{
			fmt.Sprintf("INSERT INTO maddr (id, email, domain) VALUES (%d, 'a%d@example.com', 'com.example')", i+1, i),
			fmt.Sprintf("INSERT INTO msgs (mail_id, am_id, time_num, time_iso, sid, size, host, content) VALUES ('id%d', '1-1', %d, now(), %d, 10, 'mx', 'C')",
				i, now-age*86400, i+1),
			fmt.Sprintf("INSERT INTO msgrcpt (mail_id, rseqnum, rid, ds, rs) VALUES ('id%d', 1, %d, 'P', ' ')", i, i+1),
		} {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := filepath.Join(t.TempDir(), "amavisd.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, "storage_sql_dsn = [[%q, %q, \"\"]]\n", srv.DSN("maillog"), srv.User()), 0o644)
	out, err := exec.Command(amavisdBin, "-c", cfg, "sql-cleanup", "--older-than", "10", "--batch", "2").CombinedOutput()
	if want := "sql-cleanup: deleted 3 msgs, 3 msgrcpt, 0 quarantine, 3 maddr rows\n"; err != nil || string(out) != want {
		t.Errorf("sql-cleanup: %v %q, want %q", err, out, want)
	}
	var left int
	db.QueryRow("SELECT count(*) FROM msgs").Scan(&left)
	if left != 1 {
		t.Errorf("%d messages left, want 1", left)
	}
}
