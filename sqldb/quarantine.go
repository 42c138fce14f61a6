package sqldb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"amavisgo/conf"
)

// Quarantine is amavis's sql: quarantine (Amavis::Out::SQL::Quarantine, Amavis::IO::SQL): the
// stored message in the quarantine table, in chunks of sql_quarantine_chunksize_max bytes
// numbered from 1, in the storage_sql_dsn database.
type Quarantine struct {
	pool *Pool
	g    *conf.SQLGlobal
	// TempDir holds a message read back for release ("" = the system's).
	TempDir string
}

// NewQuarantine makes the sql: quarantine of configuration c.
func NewQuarantine(p *Pool, c *conf.Config) *Quarantine {
	return &Quarantine{pool: p, g: &c.SQLGlobal, TempDir: c.TEMPBASE}
}

// Store writes r under mailID in one transaction and returns the location amavis logs:
// the mail_id, with "[partition_tag]" when the tag is not 0.
func (q *Quarantine) Store(ctx context.Context, mailID string, r io.ReadSeeker) (string, error) {
	ins := clause(q.g, "ins_quar")
	if ins == "" {
		return "", errors.New("ins_quar is disabled")
	}
	// sql_timeout for each started MiB: a large message is many statements
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	timeout := q.pool.timeout * time.Duration(1+size>>20)
	err = q.pool.do(ctx, timeout, func(ctx context.Context, c Conn) error {
		// a retry after fail-over reads the message again from the start
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return c.InTx(ctx, func(tx Tx) error {
			buf := make([]byte, q.g.SQLQuarantineChunksizeMax)
			br := bufio.NewReaderSize(r, 64<<10)
			for ind := 1; ; ind++ {
				n, err := io.ReadFull(br, buf)
				if n > 0 {
					if _, e := tx.Exec(ctx, ins, q.g.PartitionTag, []byte(mailID), ind, buf[:n]); e != nil {
						return e
					}
				}
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					return nil
				}
				if err != nil {
					return err
				}
			}
		})
	})
	if err != nil {
		return "", err
	}
	loc := mailID
	if t := fmt.Sprint(q.g.PartitionTag); t != "" && t != "0" {
		loc += "[" + t + "]"
	}
	return loc, nil
}

// ErrNotFound: the database has no message of that mail_id; it is an fs.ErrNotExist, as a
// missing quarantine file.
var ErrNotFound = fmt.Errorf("not found in the SQL database: %w", fs.ErrNotExist)

// Open reads the quarantined message of mailID back (sel_msg finds its partition_tag,
// sel_quar its chunks) into a temporary file, which Close removes.
func (q *Quarantine) Open(ctx context.Context, mailID string) (io.ReadCloser, error) {
	sel := clause(q.g, "sel_quar")
	var f *os.File
	err := q.pool.Do(ctx, func(ctx context.Context, c Conn) error {
		tag, err := q.partition(ctx, c, mailID)
		if err != nil {
			return err
		}
		rows, err := c.Query(ctx, sel, tag, []byte(mailID))
		if err != nil {
			return err
		}
		defer rows.Close()
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
		if f, err = os.CreateTemp(q.TempDir, "release-"); err != nil {
			return err
		}
		os.Remove(f.Name()) // gone when closed
		n := 0
		for rows.Next() {
			var chunk []byte
			if err := rows.Scan(&chunk); err != nil {
				return err
			}
			if _, err := f.Write(chunk); err != nil {
				return err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		_, err = f.Seek(0, io.SeekStart)
		return err
	})
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	return f, nil
}

// partition is the partition_tag of mailID's msgs row (sel_msg), the configured tag when the
// statement is disabled.
func (q *Quarantine) partition(ctx context.Context, c Conn, mailID string) (any, error) {
	sel := clause(q.g, "sel_msg")
	if sel == "" {
		return q.g.PartitionTag, nil
	}
	rows, err := c.Query(ctx, sel, []byte(mailID))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	var tag any
	if err := rows.Scan(&tag); err != nil {
		return nil, err
	}
	return tag, nil
}

// Host is the msgs.host of mailID: the node that took the message in.
func (q *Quarantine) Host(ctx context.Context, mailID string) (string, error) {
	var host string
	err := q.pool.Do(ctx, func(ctx context.Context, c Conn) error {
		rows, err := c.Query(ctx, "SELECT host FROM msgs WHERE mail_id=?", []byte(mailID))
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return ErrNotFound
		}
		return rows.Scan(&host)
	})
	return host, err
}
