package sqldb

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
)

func TestParseDSN(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"DBI:Pg:database=mail_log;host=127.0.0.1;port=5432", "0 map[database:mail_log host:127.0.0.1 port:5432]"},
		{"dbi:mysql:dbname=mail_prefs;mysql_socket=/run/mysqld/mysqld.sock", "1 map[database:mail_prefs mysql_socket:/run/mysqld/mysqld.sock]"},
		{"DBI:MariaDB:db=x;hostname=db1", "1 map[database:x host:db1]"},
		{"DBI:Oracle:sid=x", `driver "Oracle" is not supported`},
		{"DBI:Pg:host=x", "no database="},
		{"Pg:database=x", "want DBI:Pg:database=NAME"},
	} {
		d, err := ParseDSN(conf.SQLDSN{DSN: c.dsn})
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = fmt.Sprint(int(d.Kind), " ", d.attrs) // fmt prints a map's keys sorted
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: %s, want %s", c.dsn, got, c.want)
		}
	}
}

func TestRebind(t *testing.T) {
	got := Postgres.rebind(`SELECT a FROM t WHERE x=? AND y='?' AND z IN (?,?)`)
	if want := `SELECT a FROM t WHERE x=$1 AND y='?' AND z IN ($2,$3)`; got != want {
		t.Errorf("rebind: %s, want %s", got, want)
	}
	if got := MySQL.rebind("x=?"); got != "x=?" {
		t.Errorf("MySQL rebind changed the statement: %s", got)
	}
}

// TestFailOver: the first database of the list is down (its socket directory has no server),
// the second answers; a pool that knows no working database reports both failures.
func TestFailOver(t *testing.T) {
	s := server(t, "Pg")
	s.CreateDB(t, "failover")
	dead := conf.SQLDSN{DSN: "DBI:Pg:database=failover;host=" + t.TempDir() + ";port=5432", User: "postgres"}
	live := conf.SQLDSN{DSN: s.DSN("failover"), User: s.User()}
	p, err := Open([]conf.SQLDSN{dead, live}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var one int
	err = p.Do(context.Background(), func(ctx context.Context, c Conn) error {
		return c.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	})
	if err != nil || one != 1 {
		t.Fatalf("fail-over to the second DSN: %v", err)
	}
	if name, err := p.Ping(context.Background()); err != nil || name != live.DSN {
		t.Errorf("Ping: %s %v, want the second DSN", name, err)
	}
	p2, _ := Open([]conf.SQLDSN{dead}, 2*time.Second)
	if _, err := p2.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), dead.DSN) {
		t.Errorf("Ping of a dead list: %v, want an error naming the DSN", err)
	}
}
