package spam

import (
	"strings"
	"testing"
)

func FuzzParseSpamdReply(f *testing.F) {
	f.Add([]byte("SPAMD/1.1 0 EX_OK\r\nContent-length: 55\r\nSpam: True ; 1000.0 / 5.0\r\n\r\nGTUBE,MSGID_SHORT,NO_RECEIVED,NO_RELAYS,TVD_SPACE_RATIO"))
	f.Add([]byte("SPAMD/1.1 76 Bad header line: x\r\n\r\n"))
	f.Add([]byte("SPAMD/1.1 0 EX_OK\r\nSpam: False ; -0.1 / 5.0\r\n\r\n"))
	f.Add([]byte("SPAMD/1.1 0 EX_OK\r\nContent-length: 99\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n pts rule name              description\n---- ---------------------- ------\n-0.0 NO_RECEIVED            Informational: message has\n                            no Received headers\n1000 GTUBE                  BODY: Generic Test\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		score, raw, tests, err := ParseSpamdReply(b, len(b)%2 == 0) // SYMBOLS or REPORT
		if err != nil {
			return
		}
		if score != score || score > 1e12 || score < -1e12 {
			t.Fatalf("score %v accepted", score)
		}
		if strings.ContainsAny(tests+raw, "\r\n") {
			t.Fatalf("tests %q hold a line break", tests)
		}
	})
}

func FuzzParseRspamdReply(f *testing.F) {
	f.Add([]byte(`{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"}}`))
	f.Add([]byte(`{"score":-0.1,"required_score":15,"action":"no action","symbols":{"A=B,C":{"name":"A=B,C","score":-0.1}}}`))
	f.Add([]byte(`{"action":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRspamdReply(b)
		if err != nil {
			return
		}
		for _, test := range strings.Split(r.Tests(), ",") {
			if test == "" {
				continue
			}
			if strings.Count(test, "=") < 1 || strings.ContainsAny(test, "\r\n") {
				t.Fatalf("test %q of %q", test, r.Tests())
			}
		}
	})
}
