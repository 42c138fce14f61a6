package hdr

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func fieldsOf(h string) []string {
	var out []string
	for f := range Fields([]byte(h)) {
		out = append(out, string(f))
	}
	return out
}

func TestFields(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"A: 1", []string{"A: 1"}},
		{"A: 1\r\nB: 2\r\n", []string{"A: 1\r\n", "B: 2\r\n"}},
		{"Subject: a\r\n b\r\n\tc\r\nTo: x\n", []string{"Subject: a\r\n b\r\n\tc\r\n", "To: x\n"}},
		// a leading continuation line is a field of its own, as is a line without a colon
		{" lost\n\tlost\nA: 1\nno colon\n more\n", []string{" lost\n\tlost\n", "A: 1\n", "no colon\n more\n"}},
		// a line end at the very end leaves no empty field behind
		{"A: 1\n \n", []string{"A: 1\n \n"}},
		{"A: 1\n\nB: 2", []string{"A: 1\n", "\n", "B: 2"}},
	} {
		if got := fieldsOf(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Fields(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFieldsStops(t *testing.T) {
	n := 0
	for range Fields([]byte("A: 1\nB: 2\nC: 3\n")) {
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("%d fields seen after break at the second", n)
	}
}

func TestCut(t *testing.T) {
	for _, c := range []struct {
		in, name, body string
		ok             bool
	}{
		{"Subject: hi\r\n", "Subject", " hi\r\n", true},
		{"Subject \t: hi\n", "Subject", " hi\n", true},
		{"Subject:\n x: y\n", "Subject", "\n x: y\n", true},
		{":x", "", "x", true},
		{"no colon\n x: y\n", "", "", false},
		{"", "", "", false},
	} {
		name, body, ok := Cut([]byte(c.in))
		if string(name) != c.name || string(body) != c.body || ok != c.ok {
			t.Errorf("Cut(%q) = %q, %q, %v; want %q, %q, %v", c.in, name, body, ok, c.name, c.body, c.ok)
		}
	}
}

func TestUnfoldAndJoinLines(t *testing.T) {
	for _, c := range []struct{ in, unfolded, joined string }{
		{"", "", ""},
		{" plain ", " plain ", "plain"},
		{" a\r\n b\r\n", " a b", "a b"},
		{" from x\r\n\tby y\r\n", " from x\tby y", "from x by y"},
		{"\r\n  only\r\n", "  only", " only"},
		{" a\r\r\n  \n b", " a   b", "a  b"},
		{" tail\n \n", " tail ", "tail "},
	} {
		if got := Unfold([]byte(c.in)); got != c.unfolded {
			t.Errorf("Unfold(%q) = %q, want %q", c.in, got, c.unfolded)
		}
		if got := JoinLines([]byte(c.in)); got != c.joined {
			t.Errorf("JoinLines(%q) = %q, want %q", c.in, got, c.joined)
		}
	}
}

func TestGetAndCount(t *testing.T) {
	h := []byte("Received: one\r\nmessage-id:\r\n <id@x>\r\nSubject: a\r\n  b\r\nRECEIVED : two\r\nbroken\r\n Received: not a field\r\n")
	for _, c := range []struct {
		name, want string
		ok         bool
	}{
		{"Message-ID", "<id@x>", true},
		{"subject", "a b", true},
		{"received", "one", true},
		{"To", "", false},
	} {
		if got, ok := Get(h, c.name); got != c.want || ok != c.ok {
			t.Errorf("Get(%s) = %q, %v; want %q, %v", c.name, got, ok, c.want, c.ok)
		}
	}
	if n := Count(h, "Received"); n != 2 {
		t.Errorf("Count(Received) = %d, want 2", n)
	}
}

func TestFold(t *testing.T) {
	long := strings.Repeat("x", 80)
	for _, c := range []struct {
		head   string
		chunks []string
		style  Style
		want   string
	}{
		{"Received:", []string{" from a", " by b"}, Style{Width: 78, EOL: "\r\n"}, "Received: from a by b"},
		// the first chunk stays on the name's line unless it may move
		{"Received:", []string{" " + long, " by b"}, Style{Width: 78, EOL: "\r\n"}, "Received: " + long + "\r\n by b"},
		{"X-Long-Name:", []string{" " + long, " b"}, Style{Width: 78, EOL: "\n", FirstMoves: true}, "X-Long-Name:\n " + long + "\n b"},
		// a chunk longer than the width gets a line of its own, not split
		{"A:", []string{" b", " " + long + long, " c"}, Style{Width: 78, EOL: "\n"}, "A: b\n " + long + long + "\n c"},
		// exactly width columns fit
		{"A:", []string{" " + long[:75]}, Style{Width: 78, EOL: "\n", FirstMoves: true}, "A: " + long[:75]},
		{"A:", []string{" " + long[:76]}, Style{Width: 78, EOL: "\n", FirstMoves: true}, "A:\n " + long[:76]},
		{"A:", nil, Style{Width: 78, EOL: "\n"}, "A:"},
	} {
		if got := string(Fold(nil, c.head, c.chunks, c.style)); got != c.want {
			t.Errorf("Fold(%q, %q, %+v) =\n%q, want\n%q", c.head, c.chunks, c.style, got, c.want)
		}
	}
	if got := string(Fold([]byte("Keep\r\n"), "A:", []string{" b"}, Style{Width: 78, EOL: "\r\n"})); got != "Keep\r\nA: b" {
		t.Errorf("Fold does not append to b: %q", got)
	}
}

// FuzzFields: Fields cuts the whole header, each field a first line with its continuation lines;
// Cut, Unfold and JoinLines keep within the field; and what Fold writes reads back as one field
// whose unfolded body is the chunks.
func FuzzFields(f *testing.F) {
	f.Add([]byte("Subject: a\r\n b\r\nTo: x\n"), "X-Spam-Status", "Yes, score=1 tests=[A,\tB]", 30, true)
	f.Add([]byte(" lead\nno colon\n\tmore\n\nA:"), "Received", "from a (b [1.2.3.4]) by c with ESMTP id x; Mon", 78, false)
	f.Add([]byte("\r\n"), "", "", 0, false)
	f.Fuzz(func(t *testing.T, h []byte, name, value string, width int, firstMoves bool) {
		var joined []byte
		for fl := range Fields(h) {
			if len(fl) == 0 {
				t.Fatal("empty field")
			}
			if len(joined) > 0 && (fl[0] == ' ' || fl[0] == '\t') {
				t.Fatalf("field %q starts with a blank after another field", fl)
			}
			for i := 0; i+1 < len(fl); i++ {
				if fl[i] == '\n' && fl[i+1] != ' ' && fl[i+1] != '\t' {
					t.Fatalf("field %q holds a line that starts a field", fl)
				}
			}
			joined = append(joined, fl...)
			if n, body, ok := Cut(fl); ok {
				first, _, _ := bytes.Cut(fl, []byte("\n"))
				if !bytes.HasPrefix(first, n) || bytes.ContainsAny(n, "\n:") || !bytes.HasSuffix(fl, body) {
					t.Fatalf("Cut(%q) = %q, %q", fl, n, body)
				}
			}
			if u := Unfold(fl); strings.Contains(u, "\n") || len(u) > len(fl) {
				t.Fatalf("Unfold(%q) = %q", fl, u)
			}
			if j := JoinLines(fl); strings.Contains(j, "\n") || len(j) > len(fl) {
				t.Fatalf("JoinLines(%q) = %q", fl, j)
			}
		}
		if !bytes.Equal(joined, h) {
			t.Fatalf("fields of %q join to %q", h, joined)
		}

		// Fold: chunks of a value without line breaks, each with its leading blank.
		if strings.ContainsAny(name, ": \t\r\n") || name == "" || strings.ContainsAny(value, "\r\n") {
			return
		}
		var chunks []string
		for _, w := range strings.Fields(value) {
			chunks = append(chunks, " "+w)
		}
		for _, eol := range []string{"\r\n", "\n"} {
			s := Style{Width: width, EOL: eol, FirstMoves: firstMoves}
			out := Fold(nil, name+":", chunks, s)
			fl, rest := Next(out)
			if len(rest) != 0 {
				t.Fatalf("Fold wrote more than one field: %q", out)
			}
			n, body, ok := Cut(fl)
			if !ok || string(n) != name || Unfold(body) != strings.Join(chunks, "") {
				t.Fatalf("Fold(%q, %q) = %q: reads back as %q, %q", name, chunks, out, n, Unfold(body))
			}
			if strings.TrimSpace(JoinLines(body)) != strings.Join(strings.Fields(value), " ") {
				t.Fatalf("Fold(%q, %q) = %q: lines join to %q", name, chunks, out, JoinLines(body))
			}
			// a line goes past the width only when it holds a single chunk (on the head's
			// line only when the first chunk stays there)
			for i, line := range strings.Split(string(out), eol) {
				n := strings.Count(line, " ") // chunks on the line
				if len(line) > width && (n > 1 || n == 1 && i == 0 && firstMoves) {
					t.Fatalf("Fold(%q, %q, %d) = %q: line %q is too long", name, chunks, width, out, line)
				}
			}
		}
	})
}
