package ampdp

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"amavisgo/smtp"
)

func TestReadRequest(t *testing.T) {
	in := "request=release\r\nmail_id=n8rZJ2zBYamo\nrecipient=%3Ca%20b@x%3E\r\nrecipient: <c@x>\r\n" +
		"no separator\r\nmail%5ffile=n/virus-n8rZJ2zBYamo\r\n\r\nrequest=AM.PDP\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	req, bad, err := ReadRequest(br)
	if err != nil {
		t.Fatal(err)
	}
	if req.Get("request") != "release" || strings.Join(req.All("recipient"), "|") != "<a b@x>|<c@x>" ||
		req.Get("mail_file") != "n/virus-n8rZJ2zBYamo" || len(bad) != 1 || bad[0] != "no separator" || req.Has("sender") {
		t.Errorf("req %q bad %q", req, bad)
	}
	if req, _, err := ReadRequest(br); err != nil || req.Get("request") != "AM.PDP" {
		t.Errorf("second request: %q %v", req, err)
	}
	if _, _, err := ReadRequest(br); err != io.EOF {
		t.Errorf("clean end: %v, want io.EOF", err)
	}
	if _, _, err := ReadRequest(bufio.NewReader(strings.NewReader("request=release\r\n"))); err != io.ErrUnexpectedEOF {
		t.Errorf("cut request: %v", err)
	}
	if _, _, err := ReadRequest(bufio.NewReader(strings.NewReader(strings.Repeat("x", MaxLine+1) + "\n"))); err != ErrTooLong {
		t.Errorf("long line: %v", err)
	}
	if _, _, err := ReadRequest(bufio.NewReader(strings.NewReader(strings.Repeat("recipient="+strings.Repeat("x", 1000)+"\n", 2000)))); err != ErrTooLong {
		t.Errorf("2 MB request: %v", err)
	}
}

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string
		want   string
	}{
		{"setreply", []string{"250", "2.0.0", "Ok, id=rel-X, 100% done\r\n"}, "setreply=250 2.0.0 Ok,%20id=rel-X,%20100%25%20done%0d%0a"},
		{"insheader", []string{"0", "X-Virus-Scanned", "amavis at example.com"}, "insheader=0 X-Virus-Scanned amavis%20at%20example.com"},
		{"odd name=", []string{"\xff"}, "odd%20name%3d=%ff"},
	} {
		if got := Encode(tc.name, tc.fields...); got != tc.want {
			t.Errorf("Encode = %q, want %q", got, tc.want)
		}
	}
	if Decode("100%25 %zz %4") != "100% %zz %4" {
		t.Error("Decode leaves malformed escapes alone")
	}
}

func TestSetreply(t *testing.T) {
	for _, c := range []struct {
		in   smtp.Reply
		want string
	}{
		{smtp.Reply{Code: 250, Enh: "2.0.0", Text: "from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok"},
			"setreply=250 2.0.0 from%20MTA(smtp:[127.0.0.1]:10025):%20250%202.0.0%20Ok"},
		{smtp.Reply{Code: 550, Text: "user unknown"}, "setreply=550 5.0.0 user%20unknown"},
		{smtp.Reply{Code: 999, Enh: "9.0.0", Text: "garbage"}, "setreply=450 4.5.0 Unexpected:%20999%209.0.0%20garbage"},
	} {
		if got := setreply(c.in); got != c.want {
			t.Errorf("setreply(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzRequest: any input reads without panic within the limits, and every attribute read
// survives encoding and decoding unchanged.
func FuzzRequest(f *testing.F) {
	f.Add("request=release\r\nmail_id=abc\r\nrecipient=%3Ca@b%3E\r\n\r\n")
	f.Add("a:  b\n=\n%%%\n\n")
	f.Add("x=%0\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReader(strings.NewReader(in))
		for i := 0; i < 100; i++ {
			req, _, err := ReadRequest(br)
			for _, a := range req {
				line := Encode(a.Name, a.Value)
				back, ok := ParseLine(line)
				if !ok || back != a {
					t.Fatalf("%q -> %q -> %q", a, line, back)
				}
			}
			if err != nil {
				return
			}
		}
	})
}
