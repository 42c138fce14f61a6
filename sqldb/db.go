// Package sqldb is amavis's SQL side: the message log (msgs, msgrcpt, maddr), the sql:
// quarantine, per-user policy and white/black lists (users, policy, mailaddr, wblist), and
// their housekeeping, in PostgreSQL or MySQL/MariaDB with amavis's schema (README.sql-pg,
// README.sql-mysql) and its statements (%sql_clause), which sites may override.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"amavisgo/conf"
)

// Kind is the server's dialect.
type Kind int

// The dialects amavis's DSNs name.
const (
	Postgres Kind = iota
	MySQL
)

// DSN is one parsed element of a DSN list.
type DSN struct {
	Kind  Kind
	Name  string // the DSN as configured, for the log (no password in it)
	attrs map[string]string
	user  string
	pass  string
}

// ParseDSN parses amavis's (Perl DBI's) form: "DBI:Pg:database=mail_log;host=127.0.0.1;port=5432",
// "DBI:mysql:database=mail_log;host=/run/mysqld/mysqld.sock" or with mysql_socket=...;
// "dbi:MariaDB:..." is MySQL too. host may be a directory (PostgreSQL's socket directory).
func ParseDSN(d conf.SQLDSN) (DSN, error) {
	parts := strings.SplitN(d.DSN, ":", 3)
	if len(parts) != 3 || !strings.EqualFold(parts[0], "dbi") {
		return DSN{}, fmt.Errorf("DSN %q: want DBI:Pg:database=NAME;host=HOST or DBI:mysql:database=NAME", d.DSN)
	}
	out := DSN{Name: d.DSN, attrs: map[string]string{}, user: d.User, pass: d.Password}
	switch strings.ToLower(parts[1]) {
	case "pg":
		out.Kind = Postgres
	case "mysql", "mariadb":
		out.Kind = MySQL
	default:
		return DSN{}, fmt.Errorf("DSN %q: driver %q is not supported (Pg, mysql, MariaDB)", d.DSN, parts[1])
	}
	for _, kv := range strings.Split(parts[2], ";") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return DSN{}, fmt.Errorf("DSN %q: %q is not name=value", d.DSN, kv)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		switch k {
		case "db", "dbname":
			k = "database"
		case "hostname":
			k = "host"
		}
		out.attrs[k] = strings.TrimSpace(v)
	}
	if out.attrs["database"] == "" {
		return DSN{}, fmt.Errorf("DSN %q: no database=", d.DSN)
	}
	return out, nil
}

// open makes the database handle; it does not connect.
func (d DSN) open(timeout time.Duration) (*sql.DB, error) {
	if d.Kind == Postgres {
		var b strings.Builder
		add := func(k, v string) {
			if v != "" {
				fmt.Fprintf(&b, "%s='%s' ", k, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v))
			}
		}
		add("host", d.attrs["host"])
		add("port", d.attrs["port"])
		add("dbname", d.attrs["database"])
		add("user", d.user)
		add("password", d.pass)
		add("sslmode", d.attrs["sslmode"])
		add("connect_timeout", fmt.Sprint(int(timeout.Seconds())))
		cfg, err := pgx.ParseConfig(b.String())
		if err != nil {
			return nil, fmt.Errorf("DSN %q: %w", d.Name, err)
		}
		return stdlib.OpenDB(*cfg), nil
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = d.user, d.pass, d.attrs["database"]
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = timeout, timeout, timeout
	host, port := d.attrs["host"], d.attrs["port"]
	sock := d.attrs["mysql_socket"]
	if sock == "" {
		sock = d.attrs["mariadb_socket"] // DBD::MariaDB's name
	}
	switch {
	case sock != "":
		cfg.Net, cfg.Addr = "unix", sock
	case strings.HasPrefix(host, "/"):
		cfg.Net, cfg.Addr = "unix", host
	case host == "" || host == "localhost":
		// DBD::mysql talks to localhost through the server's socket
		cfg.Net, cfg.Addr = "unix", "/run/mysqld/mysqld.sock"
	default:
		if port == "" {
			port = "3306"
		}
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("DSN %q: %w", d.Name, err)
	}
	return sql.OpenDB(c), nil
}

// Pool is one DSN list: the databases tried in order, as amavis's fail-over. Each has its own
// connection pool; the one that last worked is tried first.
type Pool struct {
	members []*member
	timeout time.Duration
	cur     atomic.Int32
}

type member struct {
	DSN
	db *sql.DB
}

var (
	poolsMu sync.Mutex
	pools   = map[string]*Pool{}
)

// Open returns the pool of a DSN list, shared by every configuration that names the same list
// (a reload keeps its connections). Only malformed DSNs are errors: no connection is made.
func Open(dsns []conf.SQLDSN, timeout time.Duration) (*Pool, error) {
	if len(dsns) == 0 {
		return nil, errors.New("empty DSN list")
	}
	key := fmt.Sprint(dsns, timeout)
	poolsMu.Lock()
	defer poolsMu.Unlock()
	if p := pools[key]; p != nil {
		return p, nil
	}
	p := &Pool{timeout: timeout}
	for _, d := range dsns {
		pd, err := ParseDSN(d)
		if err != nil {
			return nil, err
		}
		db, err := pd.open(timeout)
		if err != nil {
			return nil, err
		}
		// a child process of amavis holds one connection; our sessions share the pool
		db.SetMaxIdleConns(8)
		db.SetConnMaxIdleTime(5 * time.Minute)
		p.members = append(p.members, &member{DSN: pd, db: db})
	}
	pools[key] = p
	return p, nil
}

// Ping connects to the databases in order until one answers; the error names each failure.
func (p *Pool) Ping(ctx context.Context) (string, error) {
	var errs []string
	for i, m := range p.members {
		c, cancel := context.WithTimeout(ctx, p.timeout)
		err := m.db.PingContext(c)
		cancel()
		if err == nil {
			p.cur.Store(int32(i))
			return m.Name, nil
		}
		errs = append(errs, m.Name+": "+err.Error())
	}
	return "", errors.New(strings.Join(errs, "; "))
}

// Conn is a database of the pool, with statements written with ? placeholders as in amavis.
type Conn struct {
	*member
}

// Do runs fn against the database that last worked. When fn fails and that database does not
// answer a ping, the next ones of the list are tried in turn, as amavis's fail-over.
func (p *Pool) Do(ctx context.Context, fn func(ctx context.Context, c Conn) error) error {
	return p.do(ctx, p.timeout, fn)
}

// do is Do with timeout for each attempt.
func (p *Pool) do(ctx context.Context, timeout time.Duration, fn func(ctx context.Context, c Conn) error) error {
	start := int(p.cur.Load())
	var err error
	for i := range p.members {
		n := (start + i) % len(p.members)
		m := p.members[n]
		c, cancel := context.WithTimeout(ctx, timeout)
		err = fn(c, Conn{m})
		if err == nil {
			cancel()
			p.cur.Store(int32(n))
			return nil
		}
		alive := m.db.PingContext(c) == nil
		cancel()
		if alive || ctx.Err() != nil {
			return err
		}
		if len(p.members) > 1 {
			err = fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	return err
}

// rebind rewrites ? placeholders as $1, $2... for PostgreSQL, outside quoted strings.
func (k Kind) rebind(q string) string {
	if k != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Exec runs a statement.
func (c Conn) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.db.ExecContext(ctx, c.Kind.rebind(q), args...)
}

// Query runs a query.
func (c Conn) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.db.QueryContext(ctx, c.Kind.rebind(q), args...)
}

// Tx is a transaction of a Conn.
type Tx struct {
	tx   *sql.Tx
	kind Kind
}

// Exec runs a statement in the transaction.
func (t Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.kind.rebind(q), args...)
}

// InTx runs fn in one transaction: committed when fn returns nil, rolled back otherwise.
func (c Conn) InTx(ctx context.Context, fn func(Tx) error) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(Tx{tx: tx, kind: c.Kind}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
