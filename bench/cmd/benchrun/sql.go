package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The "ours-sql" filter is our daemon with amavis's SQL log on (storage_sql_dsn), writing to a
// private PostgreSQL 15 on this machine with amavis's schema (README.sql-pg): its cost is the
// difference to "ours" at the same point, plus PostgreSQL's own CPU.

const pgBin = "/usr/lib/postgresql/15/bin"

// postgres is the private server of the ours-sql points.
type postgres struct {
	*process
	dir  string // also the socket directory
	port int
}

// startPostgres runs initdb and postgres as the postgres user (setpriv, no shell), with
// trust authentication, no TCP and a socket in dir, and loads amavis's schema into a database
// maillog with psql.
func startPostgres(dir string) (*postgres, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("user postgres (package postgresql-15): %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o755); err != nil { // the way to pgdir, for the postgres user
		return nil, err
	}
	pgdir := filepath.Join(dir, "pg")
	if err := os.MkdirAll(pgdir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(pgdir, uid, gid); err != nil {
		return nil, err
	}
	as := func(argv ...string) []string {
		return append([]string{"setpriv", "--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups"}, argv...)
	}
	data := filepath.Join(pgdir, "data")
	initdb := as(filepath.Join(pgBin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
	if out, err := exec.Command(initdb[0], initdb[1:]...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort() // names the socket file only: listen_addresses is empty
	if err != nil {
		return nil, err
	}
	p, err := start("postgres", filepath.Join(dir, "postgres.log"), as(filepath.Join(pgBin, "postgres"), "-D", data, "-k", pgdir,
		"-p", strconv.Itoa(port), "-c", "listen_addresses=", "-c", "max_connections=200")...)
	if err != nil {
		return nil, err
	}
	pg := &postgres{process: p, dir: pgdir, port: port}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("unix", filepath.Join(pgdir, fmt.Sprintf(".s.PGSQL.%d", port)))
		if err == nil {
			c.Close()
			if pg.psql("postgres", "SELECT 1", "") == nil {
				break
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("postgres exited: %s", p.tail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop(10 * time.Second)
			return nil, fmt.Errorf("postgres not ready after 60 s: %s", p.tail())
		}
	}
	schema, err := amavisSchemaPg()
	if err == nil {
		err = pg.psql("postgres", "CREATE ROLE amavis", "")
	}
	if err == nil {
		err = pg.psql("postgres", "CREATE DATABASE maillog", "")
	}
	if err == nil {
		err = pg.psql("maillog", "", schema)
	}
	if err != nil {
		p.stop(10 * time.Second)
		return nil, err
	}
	return pg, nil
}

// psql runs a command (-c) or a script (on stdin) against database db.
func (pg *postgres) psql(db, command, script string) error {
	args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.dir, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-d", db}
	if command != "" {
		args = append(args, "-c", command)
	}
	cmd := exec.Command(filepath.Join(pgBin, "psql"), args...)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql %s: %v: %s", command, err, bytes.TrimSpace(out))
	}
	return nil
}

// dsn is the database in amavis's form.
func (pg *postgres) dsn() string {
	return fmt.Sprintf("DBI:Pg:database=maillog;host=%s;port=%d", pg.dir, pg.port)
}

// amavisSchemaPg is amavis's PostgreSQL schema as the amavisd-new package documents it, from
// the first CREATE TABLE to the example queries.
func amavisSchemaPg() (string, error) {
	const path = "/usr/share/doc/amavisd-new/README.sql-pg.gz"
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("amavis's schema (package amavisd-new): %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return "", err
	}
	text := string(b)
	i, j := strings.Index(text, "\nCREATE TABLE"), strings.Index(text, "Some examples of a query:")
	if i < 0 || j < i {
		return "", fmt.Errorf("%s: no schema found", path)
	}
	return text[i:j], nil
}

// oursSQLDaemon is oursDaemon logging every message to pg.
type oursSQLDaemon struct {
	oursDaemon
	pg *postgres
}

func (d oursSQLDaemon) start(dir string, servers int, next, clamdSocket string, sp spamSetup) (*filterRun, error) {
	return startFilter(dir, "amavisd (ours, SQL log)", d.bin, "amavisd.toml", func(home string, port int) string {
		// first: the configuration ends in tables, which would take these keys
		keys, tables := sp.ours()
		return fmt.Sprintf("# amavis's SQL log (the ours-sql filter)\nstorage_sql_dsn = [[%q, \"postgres\", \"\"]]\nsql_allow_8bit_address = true\n", d.pg.dsn()) +
			keys + oursConfig(home, port, servers, next, clamdSocket, d.omit) + tables
	}, 30*time.Second, 10*time.Second)
}
