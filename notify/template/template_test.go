package template

import (
	"os"
	"strings"
	"testing"
)

var macros = Macros{
	"V":     []string{"Eicar-Test-Signature"},
	"R":     []string{"a@x", "b@x"},
	"C":     []string{},
	"s":     "<bob@x>",
	"q":     "",
	"n":     "12345-01",
	"i":     "n8rZJ2zBYamo",
	"h":     "mx.example.com",
	"z":     "  ",
	"greet": Func(func(a ...string) any { return "hi " + strings.Join(a[1:], "+") }),
}

// Examples of README.customize, and the traps of its evaluation order.
func TestExpand(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"%s %n %i %h", "<bob@x> 12345-01 n8rZJ2zBYamo mx.example.com"},
		{"%R / %#R / %#V / %#C / %#q / %#z / %#s / %#unknown", "a@x, b@x / 2 / 1 / 0 / 0 / 0 / 1 / 0nknown"},
		{"100%% \\% \\[x\\] a\\|b \\101\\tZ", "100% % [x] a|b A\tZ"},
		{"[? 2   | zero | one | two | three ]", " two "},
		{"[? foo | none | any | two | three ]", " any "},
		{"[? 24  | 0    | one | many ]", " many "},
		{"[? 2   |No recipients]", ""},
		{"[? %#R |No recipients|One recipient|%#R recipients]", "2 recipients"},
		{"[? %q  |No quarantine|Quarantined as %q]", "No quarantine"},
		{"[%V| ]", "Eicar-Test-Signature"},
		{"[%R|\\n]", "a@x\nb@x"},
		{"[ %R |%s --> <%R>|, ]", "<bob@x> --> <a@x>, <bob@x> --> <b@x>"},
		{"[%V|[%R|%R + %V|, ]|; ]", "a@x + Eicar-Test-Signature, b@x + Eicar-Test-Signature"},
		{"To: [%R|%R|, ]", "To: a@x, b@x"},
		{"To: [%R|, ]", "To: a@x, b@x"},
		{"[? %#C |#|Cc: [<%C>|, ]]\nnext", "next"},
		{"[? %#R |#|Cc: [<%R>|, ]]\nnext", "Cc: <a@x>, <b@x>\nnext"},
		{"[? %#C ||Cc: [<%C>|, ]\\n]#\nnext", "next"},
		{"# a comment line\nkept", "kept"},
		{"line one\\\n continued", "line one continued"},
		{"[~abc123|[\"^([a-z]+)([0-9]+)$\"]|[\"%2-%1 (%0)\"]|[\"no\"]]", "123-abc (abc123)"},
		{"[~abc123|^([a-z]+)|[\"yes\"]|[\"no\"]]", "no"}, // unquoted, [a-z] is an iterator
		{"[~xyz|^a|[\"A\"]|^x|[\"X\"]|[\"else\"]]", "X"},
		{"[~xyz|^a|[\"A\"]|[\"else\"]]", "else"},
		{"[~xyz|^a|[\"A\"]]", ""},
		{"[:greet|a|b]", "hi a+b"},
		{"[: greet ]", "hi "},
		{"[\"[? 1|a|b] %s\"]", "[? 1|a|b] %s"},
		{"[=twice|[\"%1%1\"]][:twice|ab]", "abab"},
		{"[=hello|[\"[? %1|none|some]\"]][@hello|x] [@hello|]", "some none"},
		{"_HOSTNAME_ _GREET(a,b)_ _NOPE_", "  "},
		{"stray ] and | here", "stray ] and | here"},
		// amavis's wrap_string puts the prefix before every line, the indent after it
		{"[:wrap|20|> |  |one two three four five six seven]", "> one two three four\n>   five six seven"},
		{"[:lc|ABC][:uc|def] [:substr|abcdef|2|3] [:len|abc] [:join|-|a|b|c]", "abcDEF cde 3 a-b-c"},
		{"[:limit|10|abcdefghijklmno] [:dquote|a\"b] [:uquote|a b\tc]", "abcde[...] \"a\"\"b\" a_b_c"},
		{"[:hexenc|AB] [:b64enc|ab] [:sprintf|[\"%05.1f/%s/%d%%\"]|7.25|x|3.9]", "4142 YWI 007.2/x/3%"},
		{"unterminated [? 1|a", "unterminated "},
		{"%", "%"},
		{"\\", "\\"},
	} {
		got, err := Expand(tc.in, macros)
		if err != nil || got != tc.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// The string macros of amavis's %builtins (Amavis.pm) that its own templates use; the
// wanted values are what Amavis::Util and Amavis::rfc2821_2822_Tools return for them.
func TestAmavisStringMacros(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[:mail_addr_decode|<Bob@EXAMPLE.Org>]", "<Bob@example.org>"},
		{"[:mail_addr_decode|<j\303\266rg@xn--bcher-kva.example>]", "<jörg@bücher.example>"},
		{"[:mail_addr_decode|<j\366rg@X.ORG>]", "<jörg@x.org>"},
		{"[:mail_addr_decode|%s]", "<bob@x>"},
		{"[:mail_addr_decode_octets|<j\366rg@X.ORG>]", "<j\xf6rg@x.org>"},
		{"[:mime_decode|=?UTF-8?Q?caf=C3=A9?= au lait]", "café au lait"},
		{"[:mime_decode|=?UTF-8?Q?caf=C3=A9?= au lait|3]", "caf"},
		{"[:mime_decode|=?UTF-8?Q?caf=C3=A9?=|0|1]", "café (raw: =?UTF-8?Q?caf=C3=A9?=)"},
		{"[:mime_decode|=?UTF-8?Q?caf=C3=A9?=|100|1]", "café (raw: =?UTF)"}, // the raw text cut to the decoded one's length in bytes
		{"[:mime_decode|caf\351]", "café"},
		{"[:mime2utf8|=?UTF-8?Q?caf=C3=A9?=|4]", "caf"},
		{"[:wrap|78|||aaa bbb\nccc\n ddd]", "aaa bbb ccc ddd"},
		{"[:wrap|78||  |First upstream:   \\[1.2.3.4\\], ]", "First upstream:   [1.2.3.4], "},
		{"[:wrap|12||  |aaa bbbbbbbbbbbbbbbbbbbbbbbbbbbb   cc  dd]", "aaa\n  bbbbbbbbbbbbbbbbbbbbbbbbbbbb\n    cc  dd"},
		{"[:wrap|12|||aaa bbbbbbbbbbbbbbbbbbbbbbbbbbbb   cc  dd]", "aaa\nbbbbbbbbbbbbbbbbbbbbbbbbbbbb\ncc  dd"},
		{"[:index|abcabc|c] [:index|abcabc|c|3] [:index|abc|z]", "2 5 -1"},
		{"[:incr|5] [:incr|5|2|3] [:decr|5] [:min|3| |1|2] [:max|3|7|2]", "6 10 4 1 7"},
		{"[:rot13|Hello] [:b64encode|ab|c]", "Uryyb YWI= Yw=="},
	} {
		src := strings.NewReplacer(`\303`, "\xc3", `\266`, "\xb6", `\366`, "\xf6", `\351`, "\xe9").Replace(tc.in)
		got, err := Expand(src, macros)
		want := strings.ReplaceAll(tc.want, `\xf6`, "\xf6")
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, want)
		}
	}
}

// A call of a macro amavis does not have is an error when the template is read, naming the
// file and the line, instead of expanding to nothing; macros the template defines, the
// arguments %1..%9 and names computed at expansion time are not errors.
func TestParseFileUnknownMacro(t *testing.T) {
	known := func(name string) bool { return name == "s" || name == "T" || name == "header_field" }
	for _, tc := range []struct{ src, want string }{
		{"Subject: %s\nFrom: [:header_field|From]\nTo: [%T|, ]\n[=mine|x%1][:mine|a] [:wrap|78|||%s] [:%s]\n", ""},
		{"line one\nline two %Z\n", `t.txt:2: unknown macro "Z" in %Z`},
		{"one\ntwo\nthree [:header_feild|From]\n", `t.txt:3: unknown macro "header_feild" in [:`},
		{"[? %#s |x|\n[@ nosuch |y]]", `t.txt:2: unknown macro "nosuch" in [@`},
		{"score _SCORE_\n", `t.txt:1: unknown macro "SCORE" in _SCORE_`},
	} {
		_, err := ParseFile("t.txt", tc.src, known)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("ParseFile(%q): %q, want %q", tc.src, got, tc.want)
		}
	}
}

func TestRunawayIsAnError(t *testing.T) {
	if _, err := Expand("[=loop|[\"[@loop]x\"]][@loop]", nil); err != ErrTooComplex {
		t.Errorf("a macro calling itself: %v, want ErrTooComplex", err)
	}
	// Big values multiplied inside a call's arguments, which never reach the output.
	big := Macros{"H": strings.Repeat("x", 1<<20), "R": []string{"a", "b", "c", "d", "e", "f", "g", "h"}}
	if _, err := Expand("[:len|[%R|[%R|%H]]]", big); err != ErrTooComplex {
		t.Errorf("64 MiB of arguments: %v, want ErrTooComplex", err)
	}
}

// A site's customised Debian templates are read as they are; the subject line of Debian's
// admin template comes out as amavis makes it.
func TestDebianAdminTemplate(t *testing.T) {
	src, err := os.ReadFile("/etc/amavis/en_US/template-virus-admin.txt")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip("Debian's amavisd-new templates are not installed")
	}
	m := Macros{
		"f": `"Content-filter at mx.example.com" <postmaster@mx.example.com>`, "d": "Sun, 22 Nov 2026 09:44:18 +0000 (UTC)",
		"T": []string{"<virusalert@example.com>"}, "C": []string{}, "V": []string{"Eicar-Test-Signature"}, "F": []string{},
		"X": []string{}, "W": []string{"ClamAV-clamd"}, "l": "", "a": "198.51.100.7", "s": "<bob@x>", "i": "n8rZJ2zBYamo",
		"h": "mx.example.com", "n": "12345-01", "q": "virus-n8rZJ2zBYamo", "m": "<m2@x>", "j": "test", "S": []string{},
		"D": []string{}, "N": []string{"<x@example.com>"}, "v": []string{"stream: Eicar-Test-Signature FOUND"},
		"client_addr_port": "[198.51.100.7]:4567",
		"ccat": Func(func(a ...string) any {
			switch pad(a, 2)[1] {
			case "major":
				return "9"
			case "name":
				return "Virus"
			}
			return ""
		}),
		"header_field": Func(func(a ...string) any { return "bob@x" }),
	}
	out, err := Expand(string(src), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Subject: VIRUS (Eicar-Test-Signature) in mail FROM [198.51.100.7]:4567 <bob@x>\n",
		"To: <virusalert@example.com>\nMessage-ID: <VAn8rZJ2zBYamo@mx.example.com>\n\nA virus was found: Eicar-Test-Signature\n\n",
		"Scanner detecting a virus: ClamAV-clamd\n",
		"Internal reference code for the message is 12345-01/n8rZJ2zBYamo\n",
		"The message has been quarantined as: virus-n8rZJ2zBYamo\n",
		"The message WAS NOT relayed to:\n<x@example.com>\n",
		"Virus scanner output:\n  stream: Eicar-Test-Signature FOUND\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("expansion lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Cc:") || strings.Contains(out, "#") {
		t.Errorf("empty Cc and comments must vanish:\n%s", out)
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"[? %#R |a|b]", "[%R|%R|, ]", "[~x|(y)|[\"%1\"]]", "[=a|[\"[@a]\"]][@a]", "_A(b)_ \\101 %%", "[\"[\"]\"]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		out, err := Expand(src, macros)
		if err == nil && len(out) > maxEmitted+4096 {
			t.Fatalf("output of %d bytes", len(out))
		}
	})
}

// Expand is Parse followed by Template.Expand.
func Expand(src string, m Macros) (string, error) { return Parse(src).Expand(m) }
