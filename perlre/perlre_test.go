package perlre

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		expr, flags, s string
		want           bool
	}{
		// Debian's clamd entry, applied with /m to clamd's reply
		{`\bOK$`, "m", "/tmp/x: OK\n", true},
		{`\bFOUND$`, "m", "/tmp/x/a: Eicar FOUND\n/tmp/x/b: OK\n", true},
		{`\bFOUND$`, "m", "/tmp/x: OK\n", false},
		// Perl's $ matches before a final newline even without /m ...
		{`(?i)\.exe$`, "", "evil.exe\n", true},
		// ... but not before an inner one
		{`\.exe$`, "", "evil.exe\nx", false},
		{`\.exe\z`, "", "evil.exe\n", false},
		// the classic banned rule with negative lookahead
		{`^(?!cid:).*\.[^./]*[A-Za-z][^./]*\.\s*(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)[.\s]*$`, "i", "file.pdf.exe", true},
		{`^(?!cid:).*\.[^./]*[A-Za-z][^./]*\.\s*(exe|vbs|pif|scr|bat|cmd|com|cpl|dll)[.\s]*$`, "i", "cid:file.pdf.exe", false},
		{`qr'^\.(exe|com)$'i`, "", ".EXE", true},
		{`qr/a\/b/`, "", "a/b", true},
		{`qr{^ab$}m`, "", "x\nab\ny", true},
		{`qr{^ab$}`, "", "x\nab\ny", false},
		{`qrs`, "", "qrs", true}, // a bare pattern that starts with qr
		{`(?x) ^ 0+ ( : | [\000\r\n]* $)`, "m", "0: ok\n", true},
		{`a\Q.*\Eb`, "", "a.*b", true},
		{`a\Q.*\Eb`, "", "axxb", false},
		{`a\hb`, "", "a\tb", true},
		{`a[\h]b`, "", "a b", true},
		{`a\Hb`, "", "a b", false},
		{`a\Rb`, "", "a\r\nb", true},
		{`a\Nb`, "", "a\nb", false},
		{`(x)\g1\g{1}`, "", "xxx", true},
		{`^[[:alpha:]]+$`, "", "abcXYZ", true},
		{`^[[:alpha:]]+$`, "", "abc1", false},
		{`^[^[:digit:]]$`, "", "5", false},
		{`(?^i:ab)`, "", "AB", true},
		{`(?^:ab)`, "i", "AB", false},
		{`[]a]`, "", "]", true},
		{`[^]a]`, "", "]", false},
	}
	for _, tt := range tests {
		re, err := Compile(tt.expr, tt.flags)
		if err != nil {
			t.Errorf("Compile(%q, %q): %v", tt.expr, tt.flags, err)
			continue
		}
		got, err := re.MatchString(tt.s)
		if err != nil || got != tt.want {
			t.Errorf("%q /%s on %q = %v, %v; want %v", tt.expr, tt.flags, tt.s, got, err, tt.want)
		}
	}
}

func TestCaptures(t *testing.T) {
	tests := []struct {
		expr, s string
		want    []string
	}{
		{`^.*?: (?!Infected Archive)(.*) FOUND$`,
			"/t/parts/p001: Eicar-Test-Signature.UNOFFICIAL FOUND\n/t/parts/p002: Infected Archive FOUND\n/t/email.txt: Win.Test FOUND\n",
			[]string{"Eicar-Test-Signature.UNOFFICIAL", "Win.Test"}},
		// alternatives: only the groups that took part
		{`(?:Infection: (.+)|\s+contains\s+(.+)$)`, "a Infection: V1\nb contains V2\n", []string{"V1", "V2"}},
		{`\d+`, "a1b22", []string{"1", "22"}},
		{`x(y)?`, "x", nil},
	}
	for _, tt := range tests {
		got, err := MustCompile(tt.expr, "m").Captures(tt.s)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Captures(%q) = %q, %v; want %q", tt.expr, got, err, tt.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, expr := range []string{`a\Kb`, `a(`, `qr/a/q`, `qr/abc`, `[[:nope:]]`, `\N{U+41}`, `\gx`} {
		if _, err := Compile(expr, ""); err == nil {
			t.Errorf("Compile(%q) succeeded, want an error", expr)
		}
	}
}

func TestTimeout(t *testing.T) {
	re := MustCompile(`^(a+)+$`, "")
	re.SetTimeout(50 * time.Millisecond)
	start := time.Now()
	_, err := re.MatchString(strings.Repeat("a", 40) + "!")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`^.*?: (?!Infected Archive)(.*) FOUND$`, `qr/a\/b/i`, `\Qa\E[[:alpha:]\h]`, `(?^i:x)\g{1}`, `[`, `\`} {
		f.Add(s, "x: y FOUND\n")
	}
	f.Fuzz(func(t *testing.T, expr, s string) {
		re, err := Compile(expr, "m")
		if err != nil {
			return
		}
		re.SetTimeout(100 * time.Millisecond)
		re.MatchString(s)
		re.Captures(s)
	})
}

// MustCompile is Compile for the tests' own patterns.
func MustCompile(expr, defaultFlags string) *Regexp {
	re, err := Compile(expr, defaultFlags)
	if err != nil {
		panic(err)
	}
	return re
}
