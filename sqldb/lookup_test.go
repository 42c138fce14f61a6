package sqldb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/lookup"
)

func TestQueryKeys(t *testing.T) {
	o := lookup.Options{RecipientDelimiter: "+"}
	for _, c := range []struct {
		addr  string
		local bool
		want  string
	}{
		{"User+Foo@Sub.Example.COM.", true, "[user+foo@sub.example.com user@sub.example.com user+foo user @sub.example.com @.sub.example.com @.example.com @.com @.]"},
		{"User+Foo@Sub.Example.COM", false, "[user+foo@sub.example.com user@sub.example.com @sub.example.com @.sub.example.com @.example.com @.com @.]"},
		{"postmaster@[192.0.2.1]", false, "[postmaster@[192.0.2.1] @[192.0.2.1] @.]"},
	} {
		if got := fmt.Sprint(QueryKeys(c.addr, o, c.local)); got != c.want {
			t.Errorf("%s (local %v):\n got %s\nwant %s", c.addr, c.local, got, c.want)
		}
	}
}

// TestExpand: %k becomes one placeholder per key, %a %l %u %e %d one each, and only the first
// ? gets the users.id, as amavis's lookup_sql.
func TestExpand(t *testing.T) {
	q, args := expand("SELECT wb FROM w WHERE rid=? AND email IN (%k) AND x=? AND d=%d AND u=%u%e AND l=%l",
		"Bob+x@Example.org", lookup.Options{RecipientDelimiter: "+"}, false, int64(7))
	if want := "SELECT wb FROM w WHERE rid=? AND email IN (?,?,?,?,?,?) AND x=? AND d=? AND u=?? AND l=?"; q != want {
		t.Errorf("statement\n got %s\nwant %s", q, want)
	}
	var got []string
	for _, a := range args {
		if b, ok := a.([]byte); ok {
			a = string(b)
		}
		got = append(got, fmt.Sprintf("%v", a))
	}
	want := "[7 bob+x@example.org bob@example.org @example.org @.example.org @.org @.  example.org bob +x Bob+x]"
	if fmt.Sprint(got) != want {
		t.Errorf("arguments\n got %v\nwant %s", got, want)
	}
}

// TestLookupRecords: README.sql's users, policy and wblist rows on both servers: the most
// specific user row comes first, a catch-all after it, and the wblist entry for the sender
// is the record's last row.
func TestLookupRecords(t *testing.T) {
	for _, kind := range []string{"Pg", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			s := server(t, kind)
			dbSeq++
			name := fmt.Sprintf("lk%d", dbSeq)
			db := s.CreateDB(t, name)
			for _, st := range []string{
				"INSERT INTO policy (id, policy_name, virus_lover, spam_tag2_level) VALUES (1, 'a', 'Y', 5.5), (2, 'b', NULL, NULL)",
				"INSERT INTO users (id, priority, policy_id, email) VALUES (1, 9, 1, 'u1@example.com'), (2, 0, 2, '@.')",
				"INSERT INTO mailaddr (id, priority, email) VALUES (1, 5, '@sender.example.org'), (2, 9, 'bob@sender.example.org')",
				"INSERT INTO wblist (rid, sid, wb) VALUES (1, 1, 'B'), (1, 2, '-3.5')",
			} {
				if _, err := db.Exec(st); err != nil {
					t.Fatal(err)
				}
			}
			c := conf.Default()
			p, err := Open([]conf.SQLDSN{{DSN: s.DSN(name), User: s.User()}}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			f := NewLookups(p, c).ForMessage("Bob@sender.example.org", lookup.Options{}, func(string) bool { return true })
			rec, err := f.Fetch(context.Background(), "U1@Example.COM")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rec {
				got = append(got, fmt.Sprint(r["id"], " ", r["virus_lover"], " ", r["spam_tag2_level"], " ", r["wb"]))
			}
			if want := "[1 Y 5.5 <nil> 2 <nil> <nil> <nil> <nil> <nil> <nil> -3.5]"; fmt.Sprint(got) != want {
				t.Errorf("record\n got %v\nwant %s", got, want)
			}
			// a site's own statements: the legacy sql_select_policy, and sel_wblist disabled
			c.SQLSelectPolicy = "SELECT *, users.id FROM users LEFT JOIN policy ON users.policy_id=policy.id" +
				" WHERE users.email IN (%k) AND users.priority > 5"
			c.SQLClause = map[string]string{"sel_wblist": ""}
			f = NewLookups(p, c).ForMessage("Bob@sender.example.org", lookup.Options{}, func(string) bool { return true })
			if rec, err = f.Fetch(context.Background(), "U1@Example.COM"); err != nil {
				t.Fatal(err)
			}
			if len(rec) != 1 || rec[0]["virus_lover"] != "Y" || rec[0]["wb"] != nil {
				t.Errorf("with the site's statements: %v, want the one user row", rec)
			}
		})
	}
}
