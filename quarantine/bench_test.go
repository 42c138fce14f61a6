package quarantine

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"amavisgo/conf"
)

// BenchmarkQuarantine writes one quarantine file per iteration (fsync included) for a
// 1 MiB message, plain and gzip.
func BenchmarkQuarantine(b *testing.B) {
	spool := filepath.Join(b.TempDir(), "email.txt")
	body := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\r\n"), 1<<20/66)
	os.WriteFile(spool, append([]byte("From: a@b\r\nSubject: x\r\n\r\n"), body...), 0o600)
	for _, kind := range []Kind{Virus, Spam} {
		b.Run(kind.Method(&conf.Default().Policy), func(b *testing.B) {
			s := &Store{Dir: b.TempDir(), SubdirLevels: 1}
			p := &conf.Default().Policy
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				m := &Message{MailID: fmt.Sprintf("A%011d", i), LogID: "1-1", Received: time.Now(), Sender: "a@b",
					Recipients: []string{"c@d"}, Blocked: []string{"c@d"}, Original: spool}
				if _, err := s.Quarantine(context.Background(), p, kind, m, m.Blocked); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
