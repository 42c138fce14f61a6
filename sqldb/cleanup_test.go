package sqldb

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
)

// TestCleanup: of 25 messages, the 20 older than 30 days go with their recipients, chunks
// and the addresses only they used, in batches of 7; a message still in progress after an
// hour goes too; recent messages and their addresses stay.
func TestCleanup(t *testing.T) {
	for _, kind := range []string{"Pg", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			l, db := newLogDB(t, kind, nil)
			q := NewQuarantine(l.Pool(), conf.Default())
			ctx := context.Background()
			now := time.Now()
			store := func(i int, age time.Duration, final bool) {
				m := &Message{MailID: fmt.Sprintf("mailid%06d", i), LogID: "1-1", RxTime: now.Add(-age), Sender: fmt.Sprintf("s%d@old.example", i),
					Recips: []Recip{{Addr: "keep@example.com", Destiny: conf.D_PASS}}}
				if age < time.Hour {
					m.Sender = "recent@example.org"
				}
				if err := l.Preliminary(ctx, m); err != nil {
					t.Fatal(err)
				}
				if _, err := q.Store(ctx, m.MailID, newSeeker("stored text")); err != nil {
					t.Fatal(err)
				}
				if final {
					m.Content = 'C'
					if err := l.Final(ctx, m); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i := range 20 {
				store(i, 40*24*time.Hour, true)
			}
			store(20, 2*time.Hour, false) // lost in progress
			for i := 21; i < 25; i++ {
				store(i, time.Minute, true)
			}
			got, err := Cleanup(ctx, l.Pool(), 30*24*time.Hour, 7, now)
			if err != nil {
				t.Fatal(err)
			}
			if want := (Cleaned{Msgs: 21, Msgrcpt: 20, Quarantine: 21, Maddr: 21}); got != want {
				t.Errorf("cleaned %+v, want %+v", got, want)
			}
			var n [4]int
			for i, table := range []string{"msgs", "msgrcpt", "quarantine", "maddr"} {
				db.QueryRow("SELECT count(*) FROM " + table).Scan(&n[i])
			}
			if n != [4]int{4, 4, 4, 2} {
				t.Errorf("rows left in msgs, msgrcpt, quarantine, maddr: %v, want [4 4 4 2]", n)
			}
		})
	}
}

func newSeeker(s string) *strings.Reader { return strings.NewReader(s) }
