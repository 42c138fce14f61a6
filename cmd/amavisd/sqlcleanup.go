package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"amavisgo/sqldb"
)

// verbSQLCleanup is "amavisd sql-cleanup [--older-than DAYS] [--batch N]": the housekeeping of
// the storage_sql_dsn database that amavis's README.sql-pg and README.sql-mysql leave to
// hand-run SQL, in batches (package sqldb's Cleanup).
func verbSQLCleanup(o *options, stdout io.Writer) error {
	fs := flag.NewFlagSet("sql-cleanup", flag.ContinueOnError)
	days := fs.Int("older-than", 30, "delete messages received more than DAYS days ago")
	batch := fs.Int("batch", 1000, "messages or addresses deleted per transaction")
	if err := fs.Parse(o.args); err != nil {
		return err
	}
	if *days < 0 || *batch < 1 {
		return errors.New("sql-cleanup: --older-than must not be negative and --batch must be at least 1")
	}
	c, err := o.loadConfig()
	if err != nil {
		return err
	}
	if len(c.StorageSQLDSN) == 0 {
		return errors.New("sql-cleanup: storage_sql_dsn is not set")
	}
	p, err := sqldb.Open(c.StorageSQLDSN, time.Duration(c.SQLTimeout)*time.Second)
	if err != nil {
		return err
	}
	n, err := sqldb.Cleanup(context.Background(), p, time.Duration(*days)*24*time.Hour, *batch, time.Now())
	fmt.Fprintf(stdout, "sql-cleanup: deleted %d msgs, %d msgrcpt, %d quarantine, %d maddr rows\n", n.Msgs, n.Msgrcpt, n.Quarantine, n.Maddr)
	return err
}
