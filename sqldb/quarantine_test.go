package sqldb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"testing"
	"time"

	"amavisgo/conf"
)

// TestQuarantineRoundTrip: 100,000 bytes of every value go into chunks of
// sql_quarantine_chunksize_max (16384: six full chunks and a short one) and come back equal;
// an unknown mail_id is fs.ErrNotExist.
func TestQuarantineRoundTrip(t *testing.T) {
	for _, kind := range []string{"Pg", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			l, db := newLogDB(t, kind, nil)
			c := conf.Default()
			q := NewQuarantine(l.Pool(), c)
			ctx := context.Background()
			msg := make([]byte, 100000)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range msg {
				msg[i] = byte(rng.UintN(256))
			}
			m := &Message{MailID: "roundtrip001", LogID: "1-1", RxTime: time.Now(), Sender: "a@example.org"}
			if err := l.Preliminary(ctx, m); err != nil {
				t.Fatal(err)
			}
			loc, err := q.Store(ctx, m.MailID, bytes.NewReader(msg))
			if err != nil || loc != m.MailID {
				t.Fatalf("Store: %q, %v", loc, err)
			}
			var chunks int
			db.QueryRow("SELECT count(*) FROM quarantine").Scan(&chunks)
			if chunks != 7 {
				t.Errorf("%d chunks, want 7", chunks)
			}
			r, err := q.Open(ctx, m.MailID)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, msg) {
				t.Errorf("read back %d bytes, not the %d stored", len(got), len(msg))
			}
			if _, err := q.Open(ctx, "nosuchmailid"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("unknown mail_id: %v, want fs.ErrNotExist", err)
			}
		})
	}
}
