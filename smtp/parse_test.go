package smtp

import (
	"strings"
	"testing"
)

func TestReplyWire(t *testing.T) {
	long := strings.Repeat("x", 600)
	for _, c := range []struct {
		r    Reply
		want string
	}{
		{Reply{250, "2.0.0", "Ok NOOP"}, "250 2.0.0 Ok NOOP\r\n"},
		{Reply{354, "", "End data with <CR><LF>.<CR><LF>"}, "354 End data with <CR><LF>.<CR><LF>\r\n"},
		{Reply{250, "", "[127.0.0.1]\nVRFY\nDSN"}, "250-[127.0.0.1]\r\n250-VRFY\r\n250 DSN\r\n"},
		{Reply{214, "2.0.0", "See:\nhttp://x/"}, "214-2.0.0 See:\r\n214 2.0.0 http://x/\r\n"},
		// 512 octets per line including the code and CRLF: 510 - "550 5.1.1 " = 500 text bytes.
		{Reply{550, "5.1.1", long}, "550-5.1.1 " + long[:500] + "\r\n550 5.1.1 " + long[500:] + "\r\n"},
	} {
		if got := string(c.r.AppendWire(nil)); got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.r, got, c.want)
		}
	}
}

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Reply
	}{
		{"250 2.0.0 Ok: queued as X", Reply{250, "2.0.0", "Ok: queued as X"}},
		{"250 Ok", Reply{250, "", "Ok"}},
		{"550 5.1.1", Reply{550, "5.1.1", ""}},
		{"451 4.3.0x text", Reply{451, "", "4.3.0x text"}},
		{"junk", Reply{0, "", "junk"}},
	} {
		if got := ParseReply(c.in); got != c.want {
			t.Errorf("%q: got %+v want %+v", c.in, got, c.want)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for _, c := range []struct {
		in, verb, args string
		ok             bool
	}{
		{"EHLO mta.example.com", "EHLO", "mta.example.com", true},
		{"  noop  ", "NOOP", "", true},
		{"mail FROM:<a@b>  SIZE=1 \t", "MAIL", "FROM:<a@b>  SIZE=1", true},
		{"MAIL:<a@b>", "", "", false},
		{"123", "", "", false},
		{"", "", "", false},
		{"X1\tY", "X1", "Y", true},
	} {
		verb, args, ok := ParseCommand(c.in)
		if verb != c.verb || args != c.args || ok != c.ok {
			t.Errorf("%q: got %q %q %v", c.in, verb, args, ok)
		}
	}
}

func TestParsePath(t *testing.T) {
	for _, c := range []struct {
		in, path, params string
		ok               bool
	}{
		{"FROM:<a@b.example>", "<a@b.example>", "", true},
		{"from: <> BODY=8BITMIME", "<>", "BODY=8BITMIME", true},
		{`FROM:<"a b"@x>`, `<"a b"@x>`, "", true},
		{"FROM:<a@[127.0.0.1]> SIZE=10", "<a@[127.0.0.1]>", "SIZE=10", true},
		{"FROM:a@b", "", "", false},
		{"FROM:<a b@c>", "", "", false},
		// taken without the pattern, and with it
		{"FROM:<a@b> \t SIZE=1  BODY=7BIT ", "<a@b>", "SIZE=1  BODY=7BIT ", true},
		{"from:<>", "<>", "", true},
		{"FROM:<a@b>   ", "<a@b>", " ", true},
		{"FROM:<a>b@c>", "<a>b@c>", "", true},
		{"FROM:<a@b>x", "", "", false},
		{"FROM:<a@b@c>", "<a@b@c>", "", true},
	} {
		path, params, ok := parsePath(mailArgs, c.in)
		if path != c.path || params != c.params || ok != c.ok {
			t.Errorf("%q: got %q %q %v", c.in, path, params, ok)
		}
	}
}

func TestQuoting(t *testing.T) {
	for _, c := range []struct{ path, addr, quoted string }{
		{"<a@b>", "a@b", "<a@b>"},
		{"<>", "", "<>"},
		{`<"a b"@x>`, "a b@x", `<"a b"@x>`},
		{`<"ab"@x>`, "ab@x", "<ab@x>"},
		{`<"a\"b"@x>`, `a"b@x`, `<"a\"b"@x>`},
	} {
		if got := Unquote(c.path); got != c.addr {
			t.Errorf("Unquote(%q) = %q, want %q", c.path, got, c.addr)
		}
		if got := Quote(c.addr); got != c.quoted {
			t.Errorf("Quote(%q) = %q, want %q", c.addr, got, c.quoted)
		}
	}
}

func TestXtext(t *testing.T) {
	for _, s := range []string{"", "plain", "a+b=c d", "\x01\xff"} {
		if got := XtextDecode(XtextEncode(s)); got != s {
			t.Errorf("round trip %q: %q", s, got)
		}
	}
	if got := XtextEncode("a+b=c"); got != "a+2Bb+3Dc" {
		t.Errorf("encode: %q", got)
	}
	if got := XtextDecode("x+4"); got != "x+4" {
		t.Errorf("a short escape stays: %q", got)
	}
}

func TestXForwardLine(t *testing.T) {
	xf := &XForward{Name: "mail.example.org", Addr: "2001:db8::1", Port: "4567", Proto: "ESMTP",
		Helo: "h<e>lo", Source: "REMOTE", Ident: "Q1"}
	got := xforwardLine(xf, "NAME ADDR PORT PROTO HELO IDENT SOURCE")
	want := "XFORWARD ADDR=IPv6:2001:db8::1 NAME=mail.example.org PORT=4567 PROTO=ESMTP HELO=h?e?lo SOURCE=REMOTE IDENT=Q1"
	if got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	if got := xforwardLine(xf, "ADDR NAME"); got != "XFORWARD ADDR=IPv6:2001:db8::1 NAME=mail.example.org" {
		t.Errorf("only announced attributes: %q", got)
	}
	if got := xforwardLine(&XForward{}, "ADDR NAME"); got != "" {
		t.Errorf("nothing known: %q", got)
	}
}

// FuzzParseCommand checks the command parsers for panics and their invariants.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"EHLO x", "MAIL FROM:<a@b> SIZE=1 BODY=8BITMIME", `RCPT TO:<"a\"b"@[1.2.3.4]> NOTIFY=NEVER`,
		"XFORWARD ADDR=1.2.3.4 NAME=[UNAVAILABLE]", "", "\x00\xff", "MAIL FROM:<" + strings.Repeat("\"", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		verb, args, ok := ParseCommand(line)
		if ok && (verb == "" || strings.ToUpper(verb) != verb || strings.TrimSpace(args) != strings.Trim(args, " \t\r\n\v\f\u0085\u00a0")) {
			t.Fatalf("%q -> %q %q", line, verb, args)
		}
		for _, re := range [...]bool{true, false} {
			rx := mailArgs
			if !re {
				rx = rcptArgs
			}
			path, params, ok := parsePath(rx, args)
			if m := rx.re.FindStringSubmatch(args); (m != nil) != ok || m != nil && (m[1] != path || m[2] != params) {
				t.Fatalf("%q: parsePath gives %q %q %v, the pattern %q", args, path, params, ok, m)
			}
			if ok {
				if !strings.HasPrefix(path, "<") || !strings.HasSuffix(path, ">") {
					t.Fatalf("path %q", path)
				}
				ps, _ := parseParams(params)
				for _, p := range ps {
					if p.Name == "" || strings.ContainsAny(p.Name, "= ") {
						t.Fatalf("param %+v", p)
					}
				}
				_ = Quote(Unquote(path))
			}
		}
		_ = XtextDecode(args)
	})
}
