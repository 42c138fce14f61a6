package sqldb

import (
	"context"
	"time"
)

// Cleaned counts what Cleanup deleted.
type Cleaned struct {
	Msgs, Msgrcpt, Quarantine, Maddr int64
}

// Cleanup is the housekeeping amavis's README.sql-pg and README.sql-mysql give as SQL: the
// messages older than olderThan (and rows of messages still in progress after an hour, left
// by a crash) with their msgrcpt and quarantine rows, then the maddr rows no message refers
// to. It works in transactions of batch messages or addresses, so that the tables stay
// usable by the nodes and by web front ends while it runs.
func Cleanup(ctx context.Context, p *Pool, olderThan time.Duration, batch int, now time.Time) (Cleaned, error) {
	var out Cleaned
	cutoff, stale := now.Add(-olderThan).Unix(), now.Add(-time.Hour).Unix()
	for {
		n, err := cleanBatch(ctx, p, cutoff, stale, batch, &out)
		if err != nil || n < batch {
			if err != nil {
				return out, err
			}
			break
		}
	}
	for {
		var ids []int64
		err := p.Do(ctx, func(ctx context.Context, c Conn) error {
			ids = ids[:0]
			rows, err := c.Query(ctx, "SELECT id FROM maddr WHERE NOT EXISTS (SELECT 1 FROM msgs WHERE msgs.sid = maddr.id)"+
				" AND NOT EXISTS (SELECT 1 FROM msgrcpt WHERE msgrcpt.rid = maddr.id) LIMIT ?", batch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id); err != nil {
					return err
				}
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			return c.InTx(ctx, func(tx Tx) error {
				for _, id := range ids {
					if _, err := tx.Exec(ctx, "DELETE FROM maddr WHERE id = ?", id); err != nil {
						return err
					}
				}
				return nil
			})
		})
		if err != nil {
			return out, err
		}
		out.Maddr += int64(len(ids))
		if len(ids) < batch {
			return out, nil
		}
	}
}

// cleanBatch deletes up to batch expired messages and their rows in one transaction.
func cleanBatch(ctx context.Context, p *Pool, cutoff, stale int64, batch int, out *Cleaned) (int, error) {
	type key struct {
		tag any
		id  []byte
	}
	var keys []key
	var done Cleaned
	err := p.Do(ctx, func(ctx context.Context, c Conn) error {
		keys, done = keys[:0], Cleaned{}
		rows, err := c.Query(ctx, "SELECT partition_tag, mail_id FROM msgs WHERE time_num < ? OR (content IS NULL AND time_num < ?) LIMIT ?",
			cutoff, stale, batch)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.tag, &k.id); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return c.InTx(ctx, func(tx Tx) error {
			for _, k := range keys {
				for _, d := range []struct {
					table string
					n     *int64
				}{{"msgrcpt", &done.Msgrcpt}, {"quarantine", &done.Quarantine}, {"msgs", &done.Msgs}} {
					res, err := tx.Exec(ctx, "DELETE FROM "+d.table+" WHERE partition_tag = ? AND mail_id = ?", k.tag, k.id)
					if err != nil {
						return err
					}
					n, _ := res.RowsAffected()
					*d.n += n
				}
			}
			return nil
		})
	})
	out.Msgs += done.Msgs
	out.Msgrcpt += done.Msgrcpt
	out.Quarantine += done.Quarantine
	return len(keys), err
}
