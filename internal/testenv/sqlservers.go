package testenv

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver for database/sql
)

// sqlStartTimeout bounds the wait for a database server to accept connections.
const sqlStartTimeout = 60 * time.Second

// SQLServer is a private PostgreSQL or MariaDB server started by a test package, listening
// only on a Unix socket in its own directory.
type SQLServer struct {
	Kind   string // "Pg" or "mysql"
	Dir    string
	Socket string // PostgreSQL: the socket directory; MariaDB: the socket file
	Port   int    // PostgreSQL's port, which names its socket file

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartPostgres starts PostgreSQL 15 from Debian (initdb, then postgres in the foreground) as
// the postgres user, with trust authentication, a socket in its directory and no TCP.
func StartPostgres() (*SQLServer, error) {
	bin := "/usr/lib/postgresql/15/bin"
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		return nil, fmt.Errorf("testenv: PostgreSQL 15 is not installed (Debian package postgresql-15): %w", err)
	}
	cred, err := credentialOf("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pg")
	if err != nil {
		return nil, err
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return nil, err
	}
	// a daemon under test that dropped its privileges (nobody) reaches the socket
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testenv: initdb: %v\n%s", err, out)
	}
	s := &SQLServer{Kind: "Pg", Dir: dir, Socket: dir, Port: 5432}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=200")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	return s, s.start(filepath.Join(dir, "postgres.log"))
}

// StartMariaDB starts Debian's MariaDB server (mariadb-install-db, then mariadbd) as the mysql
// user, with networking off and a socket in its directory; root connects without a password.
func StartMariaDB() (*SQLServer, error) {
	if _, err := exec.LookPath("mariadbd"); err != nil {
		if _, err := os.Stat("/usr/sbin/mariadbd"); err != nil {
			return nil, fmt.Errorf("testenv: mariadbd is not installed (Debian package mariadb-server)")
		}
	}
	cred, err := credentialOf("mysql")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "my")
	if err != nil {
		return nil, err
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=mysql",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	install.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("testenv: mariadb-install-db: %v\n%s", err, out)
	}
	// other users' clients (Debian's Perl amavisd runs as amavis) reach the socket
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &SQLServer{Kind: "mysql", Dir: dir, Socket: filepath.Join(dir, "sock")}
	s.cmd = exec.Command("/usr/sbin/mariadbd", "--no-defaults", "--datadir="+data, "--socket="+s.Socket,
		"--skip-networking", "--pid-file="+filepath.Join(dir, "pid"), "--innodb-flush-log-at-trx-commit=0",
		"--innodb-buffer-pool-size=32M", "--log-error="+filepath.Join(dir, "error.log"))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	return s, s.start(filepath.Join(dir, "stdout.log"))
}

func credentialOf(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("testenv: user %s: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// start runs the server and waits until it accepts a connection.
func (s *SQLServer) start(logName string) error {
	logf, err := os.Create(logName)
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
	return s.waitReady(logName)
}

func (s *SQLServer) waitReady(logName string) error {
	deadline := time.Now().Add(sqlStartTimeout)
	for {
		db, err := s.Open(s.adminDB())
		if err == nil {
			err = db.Ping()
			db.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.exited:
			out, _ := os.ReadFile(logName)
			return fmt.Errorf("testenv: %s server exited: %s", s.Kind, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("testenv: %s server not ready after %v: %v", s.Kind, sqlStartTimeout, err)
		}
	}
}

func (s *SQLServer) adminDB() string {
	if s.Kind == "Pg" {
		return "postgres"
	}
	return "mysql"
}

// Stop ends the server (a fast shutdown) and removes its directory.
func (s *SQLServer) Stop() {
	s.Kill()
	os.RemoveAll(s.Dir)
}

// Kill stops the server and waits until it is gone; its data stays, Restart starts it again.
func (s *SQLServer) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGINT) // PostgreSQL's fast shutdown; MariaDB shuts down on it too
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// Restart starts a killed server again over the same data.
func (s *SQLServer) Restart() error {
	args := s.cmd.Args
	attr := s.cmd.SysProcAttr
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.SysProcAttr = attr
	return s.start(filepath.Join(s.Dir, "restart.log"))
}

// DSN is the server's database db in amavis's form, for storage_sql_dsn and lookup_sql_dsn.
func (s *SQLServer) DSN(db string) string {
	if s.Kind == "Pg" {
		return fmt.Sprintf("DBI:Pg:database=%s;host=%s;port=%d", db, s.Socket, s.Port)
	}
	return fmt.Sprintf("DBI:mysql:database=%s;mysql_socket=%s", db, s.Socket)
}

// User is the database user the DSN connects as.
func (s *SQLServer) User() string {
	if s.Kind == "Pg" {
		return "postgres"
	}
	return "root"
}

// Open connects to database db as the administrator.
func (s *SQLServer) Open(db string) (*sql.DB, error) {
	if s.Kind == "Pg" {
		return sql.Open("pgx", fmt.Sprintf("host=%s port=%d dbname=%s user=postgres", s.Socket, s.Port, db))
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "unix", s.Socket, db
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// CreateDB makes a new database with amavis's schema loaded verbatim from the amavisd-new
// documentation (README.sql-pg or README.sql-mysql), and returns it opened.
func (s *SQLServer) CreateDB(t testing.TB, name string) *sql.DB {
	t.Helper()
	admin, err := s.Open(s.adminDB())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	if s.Kind == "Pg" {
		// the schema grants rights to a role amavis
		admin.Exec("CREATE ROLE amavis")
	}
	db, err := s.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range AmavisSchema(t, s.Kind) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("schema statement %q: %v", stmt, err)
		}
	}
	return db
}

// AmavisSchema returns the statements of amavis's schema for kind "Pg" or "mysql", read from
// the amavisd-new package's documentation: from the first CREATE TABLE to the examples.
func AmavisSchema(t testing.TB, kind string) []string {
	t.Helper()
	name, end := "README.sql-pg", "Some examples of a query:"
	if kind != "Pg" {
		name, end = "README.sql-mysql", "-- Example data follows:"
	}
	path := "/usr/share/doc/amavisd-new/" + name
	raw, err := os.ReadFile(path)
	if err != nil {
		raw, err = os.ReadFile(path + ".gz")
		if err == nil {
			var zr *gzip.Reader
			if zr, err = gzip.NewReader(bytes.NewReader(raw)); err == nil {
				raw, err = io.ReadAll(zr)
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testenv: amavis's schema: %v", err)
		}
		t.Skipf("testenv: amavis's schema (package amavisd-new): %v", err)
	}
	text := string(raw)
	start := strings.Index(text, "\nCREATE TABLE")
	stop := strings.Index(text, end)
	if start < 0 || stop < start {
		t.Fatalf("testenv: %s: schema not found", path)
	}
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(text[start:stop], "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		cur.WriteString(line + "\n")
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	return stmts
}

// WaitRows polls query until it returns want as its single count, or fails after timeout; for
// rows written in the background (the log's retries).
func WaitRows(t testing.TB, db *sql.DB, want int, timeout time.Duration, query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var n int
	for {
		err := db.QueryRowContext(ctx, query, args...).Scan(&n)
		if err == nil && n == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d rows (%v), want %d after %v", query, n, err, want, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CPU is the user and system time of the server and its processes (PostgreSQL's backends),
// read from /proc, for benchmarks that count the database's share of the work.
func (s *SQLServer) CPU() time.Duration {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	root := s.cmd.Process.Pid
	tick := time.Second / 100 // USER_HZ on Linux
	var total time.Duration
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// the fields after the command name, which is in parentheses and may hold blanks
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != root && ppid != root {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * tick
	}
	return total
}

// RequirePostgres is StartPostgres for one test, stopped when it ends; a server that does not
// start fails the test in CI and skips it elsewhere.
func RequirePostgres(t testing.TB) *SQLServer {
	t.Helper()
	s, err := StartPostgres()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(s.Stop)
	return s
}
