package delivery_test

import (
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/smtp"
)

func TestWrap(t *testing.T) {
	m := conf.Method{Proto: "smtp", Host: "::1", Port: "10025"}
	for _, c := range []struct {
		in   smtp.Reply
		want string
	}{
		{smtp.Reply{Code: 250, Enh: "2.0.0", Text: "Ok: queued as X"}, "250 2.0.0 from MTA(smtp:[::1]:10025): 250 2.0.0 Ok: queued as X"},
		{smtp.Reply{Code: 451, Text: "try later"}, "451 4.0.0 from MTA(smtp:[::1]:10025): 451 try later"},
		// a multi-line reply as smtp.Client reads it
		{smtp.Reply{Code: 550, Enh: "5.1.1", Text: "a\nb"}, "550 5.1.1 from MTA(smtp:[::1]:10025): 550 5.1.1 a b"},
	} {
		if got := delivery.Wrap(m, c.in).String(); got != c.want {
			t.Errorf("Wrap(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestBracket: addresses are quoted as smtp.Quote does, except that a local part quoted
// already stays as it is and an empty one is written "".
func TestBracket(t *testing.T) {
	for in, want := range map[string]string{
		"":           "<>",
		"a@b":        "<a@b>",
		"a b@x":      `<"a b"@x>`,
		`a"b@x`:      `<"a\"b"@x>`,
		`"a b"@x`:    `<"a b"@x>`,
		"@x":         `<""@x>`,
		"postmaster": "<postmaster>",
		"é.ü@x":      "<é.ü@x>",
	} {
		if got := delivery.Bracket(in); got != want {
			t.Errorf("Bracket(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestToCRLF(t *testing.T) {
	var b strings.Builder
	w := delivery.ToCRLF(&b)
	for _, chunk := range []string{"a\nb\r", "\nc\n", "\r\n", "d"} {
		w.Write([]byte(chunk))
	}
	if b.String() != "a\r\nb\r\nc\r\n\r\nd" {
		t.Errorf("%q", b.String())
	}
}
