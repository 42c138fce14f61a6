package verdict

import (
	"fmt"
	"strings"
	"testing"
)

// A message with 50 attachments and a zip of 50 members under the Debian rule set, to two
// recipients: the cost of Decide per message beyond decoding and scanning.
func BenchmarkDecideDebianRules(b *testing.B) {
	cfg := debianConf(b, localDomains)
	var parts strings.Builder
	parts.WriteString(plainHeader + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&parts, "--BB\nContent-Type: application/pdf; name=\"doc%d.pdf\"\n\n%%PDF-1.4\n", i)
	}
	msg := parts.String() + "--BB--\n"
	res := decode(b, msg)
	in := input(cfg, msg)
	in.Unpacked = res
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decide(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckHeader(b *testing.B) {
	h := []byte(strings.Repeat("Received: from a.example (a.example [192.0.2.1]) by b.example with ESMTP id X; Sun, 22 Nov 2026 09:45:23 +0000\r\n", 10) + dateFrom + "Subject: hi\r\nTo: b@example.com\r\nMessage-ID: <m@x>\r\n")
	b.SetBytes(int64(len(h)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		CheckHeader(h, defaultTests, false)
	}
}

// BenchmarkCheckHeaderFolded: a Subject folded over 100 kB to 4 MB (as much as CheckHeader
// reads); the time per byte stays flat.
func BenchmarkCheckHeaderFolded(b *testing.B) {
	for _, size := range []int{100 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("%dkB", size>>10), func(b *testing.B) {
			h := []byte(dateFrom + "Subject: x" + strings.Repeat("\r\n y", size/4) + "\r\n")
			b.SetBytes(int64(len(h)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				CheckHeader(h, defaultTests, false)
			}
		})
	}
}
