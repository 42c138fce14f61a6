package lookup

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

func TestQueryKeys(t *testing.T) {
	plus := Options{RecipientDelimiter: "+"}
	for _, tc := range []struct {
		addr string
		o    Options
		keys string
		rhs  [5]string
	}{
		{"User+Foo@Sub.Example.COM", plus,
			"User+Foo@Sub.Example.COM user+foo@sub.example.com user@sub.example.com user+foo@ user@ sub.example.com .sub.example.com .example.com .com .",
			[5]string{"User+Foo@Sub.Example.COM", "User+Foo", "user", "+foo", "sub.example.com"}},
		{"user+foo@example.com", Options{}, // no delimiter: no extension
			"user+foo@example.com user+foo@ example.com .example.com .com .",
			[5]string{"user+foo@example.com", "user+foo", "user+foo", "", "example.com"}},
		{"", plus, " @ .", [5]string{}}, // the null sender is looked up as "@"
		{"postmaster+x@example.com", plus, "postmaster+x@example.com postmaster@example.com postmaster+x@ postmaster@ example.com .example.com .com .",
			[5]string{"postmaster+x@example.com", "postmaster+x", "postmaster", "+x", "example.com"}},
		{"Postmaster@example.com", plus, "Postmaster@example.com postmaster@example.com postmaster@ example.com .example.com .com .",
			[5]string{"Postmaster@example.com", "Postmaster", "postmaster", "", "example.com"}},
		{"owner-list@example.com", Options{RecipientDelimiter: "-"}, "owner-list@example.com owner-list@ example.com .example.com .com .",
			[5]string{"owner-list@example.com", "owner-list", "owner-list", "", "example.com"}},
		{"a-b@x", Options{RecipientDelimiter: "+-"}, "a-b@x a@x a-b@ a@ x .x .", [5]string{"a-b@x", "a-b", "a", "-b", "x"}},
		{"+x@x", plus, "+x@x +x@ x .x .", [5]string{"+x@x", "+x", "+x", "", "x"}},
		{"u@[192.0.2.1]", plus, "u@[192.0.2.1] u@ [192.0.2.1] .", [5]string{"u@[192.0.2.1]", "u", "u", "", "[192.0.2.1]"}},
		{"u@example.com.", plus, "u@example.com. u@example.com u@ example.com .example.com .com .",
			[5]string{"u@example.com.", "u", "u", "", "example.com"}},
		{"u@bücher.example", plus, "u@bücher.example u@xn--bcher-kva.example u@ xn--bcher-kva.example .xn--bcher-kva.example .example .",
			[5]string{"u@bücher.example", "u", "u", "", "xn--bcher-kva.example"}},
		{`"a@b"@example.com`, plus, `"a@b"@example.com "a@b"@ example.com .example.com .com .`,
			[5]string{`"a@b"@example.com`, `"a@b"`, `"a@b"`, "", "example.com"}},
		{"nodomain", plus, "nodomain nodomain@  .", // the empty domain is a key too
			[5]string{"nodomain", "nodomain", "nodomain", "", ""}},
		{"Mixed@Example.com", Options{LocalpartCaseSensitive: true}, "Mixed@Example.com Mixed@example.com Mixed@ example.com .example.com .com .",
			[5]string{"Mixed@Example.com", "Mixed", "Mixed", "", "example.com"}},
	} {
		keys, rhs := QueryKeys(tc.addr, tc.o)
		got := strings.Join(keys, " ")
		if got != tc.keys {
			t.Errorf("QueryKeys(%q) keys\n got %q\nwant %q", tc.addr, got, tc.keys)
		}
		if rhs != tc.rhs {
			t.Errorf("QueryKeys(%q) rhs = %q, want %q", tc.addr, rhs, tc.rhs)
		}
	}
}

func TestQueryKeysLimitsParentDomains(t *testing.T) {
	long := "u@" + strings.Repeat("a.", 40) + "example"
	keys, _ := QueryKeys(long, Options{})
	dots := 0
	for _, k := range keys {
		if strings.HasPrefix(k, ".") {
			dots++
		}
	}
	if dots != maxDomainKeys || keys[len(keys)-1] != "." {
		t.Errorf("%d parent-domain keys, last %q; want %d ending in \".\"", dots, keys[len(keys)-1], maxDomainKeys)
	}
}

func mustDecode(t *testing.T, text string) Maps {
	t.Helper()
	var c struct {
		M Maps `toml:"m"`
	}
	if _, err := toml.Decode(text, &c); err != nil {
		t.Fatalf("decode %q: %v", text, err)
	}
	return c.M
}

func TestLookupKinds(t *testing.T) {
	o := Options{RecipientDelimiter: "+"}
	maps := mustDecode(t, `m = [
  { hash = { "boss@example.com" = false, "Alias@example.com" = "$3$4@elsewhere.example", "info+spam@" = "spam-folder", ".example.net" = true, "example.org" = 7 } },
  { acl = ["!virus-lover@example.org", ".example.org", "me.ac.uk", "!.ac.uk", ".uk"] },
  { regexp = ['(?i)^postmaster@', ['^(.*)\+spam@example\.com$', "$1"], ["@nope\\.example$", false]] },
  "fallback",
]`)
	for _, tc := range []struct {
		addr  string
		want  Value
		found bool
	}{
		{"boss@example.com", false, true}, // a defined false stops the search
		{"BOSS@EXAMPLE.COM", false, true}, // local part and domain are case-folded
		{"alias+x@example.com", "alias+x@elsewhere.example", true},
		{"info+spam@anywhere.example", "spam-folder", true}, // user+ext@ matches any domain
		{"info@anywhere.example", "fallback", true},
		{"someone@deep.sub.example.net", true, true}, // .parent
		{"someone@example.org", int64(7), true},      // exact domain
		{"virus-lover@example.org", int64(7), true},  // the hash answered first
		{"x@sub.example.org", true, true},            // acl .domain covers subdomains
		{"me@me.ac.uk", true, true},
		{"you@you.ac.uk", false, true},
		{"them@them.co.uk", true, true},
		{"POSTMASTER@foo.example", int64(1), true}, // regexp without value: 1
		{"joe+spam@example.com", "joe", true},      // $1
		{"a@nope.example", false, true},
		{"someone@some.com", "fallback", true}, // the constant answers everything
	} {
		v, key, found := maps.Lookup(tc.addr, o)
		if found != tc.found || !reflect.DeepEqual(v, tc.want) {
			t.Errorf("Lookup(%q) = %#v (key %q), %v; want %#v, %v", tc.addr, v, key, found, tc.want, tc.found)
		}
	}
}

func TestACLNoMatchIsNoAnswer(t *testing.T) {
	acl := ACL{"me.ac.uk", "!.ac.uk", ".uk"}
	if _, _, found := acl.Lookup("x@some.com", Options{}); found {
		t.Error("an ACL without a matching entry must not answer")
	}
	acl = append(acl, "!.")
	if v, _, found := acl.Lookup("x@some.com", Options{}); !found || v != false {
		t.Errorf("\"!.\" must answer false, got %v %v", v, found)
	}
	if v, _, _ := (ACL{"!!.example.com"}).Lookup("a@b.example.com", Options{}); v != true {
		t.Error("an even number of ! must not negate")
	}
	if _, _, found := (ACL{"sub.example.com"}).Lookup("a@x.sub.example.com", Options{}); found {
		t.Error("a domain entry without a dot must not match subdomains")
	}
	if v, _, _ := (ACL{"!The.Boss@dept1.example.com", ".dept1.example.com"}).Lookup("the.boss@Dept1.Example.com", Options{}); v != false {
		t.Error("a full address entry must match case-insensitively")
	}
}

func TestBareValuesAndTruth(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{`m = true`, true},
		{`m = false`, false},
		{`m = 0`, false},
		{`m = "0"`, false},
		{`m = ""`, false},
		{`m = "DEFAULT"`, true},
		{`m = 0.5`, true},
		{`m = []`, false}, // no table: no answer, false
		{`m = [{ constant = 1 }]`, true},
		{`m = [{ hash = {} }, true]`, true}, // an empty hash never answers
	} {
		if got := mustDecode(t, tc.text).Bool("a@b.example", Options{}); got != tc.want {
			t.Errorf("%s: Bool = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestLookupAll(t *testing.T) {
	m := mustDecode(t, `m = [{ hash = { ".example.com" = "A" } }, { acl = ["x@y"] }, "B, C"]`)
	got := m.LookupAll("u@example.com", Options{})
	if !reflect.DeepEqual(got, []Value{"A", "B, C"}) {
		t.Errorf("LookupAll = %#v", got)
	}
}

func TestTableFiles(t *testing.T) {
	dir := t.TempDir()
	hash := filepath.Join(dir, "local_domains")
	os.WriteFile(hash, []byte("# local domains\nExample.com\n.example.net   # and subdomains\nspecial.example  0\n"), 0o644)
	acl := filepath.Join(dir, "acl")
	os.WriteFile(acl, []byte("!bad@example.org  .example.org\n# comment\n.example.info\n"), 0o644)
	m := mustDecode(t, `m = [{ hash_file = "`+hash+`" }, { acl_file = "`+acl+`" }]`)
	for addr, want := range map[string]bool{
		"a@example.com": true, "a@x.example.net": true, "a@special.example": false,
		"bad@example.org": false, "good@example.org": true, "a@b.example.info": true, "a@other.example": false,
	} {
		if got := m.Bool(addr, Options{}); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
	var c struct{ M Maps }
	if _, err := toml.Decode(`M = [{ hash_file = "`+filepath.Join(dir, "missing")+`" }]`, &c); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing file must fail the load, got %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{`m = [{ hashh = {} }]`, `unknown lookup table kind "hashh"`},
		{`m = [{ hash = {}, acl = [] }]`, "exactly one of"},
		{`m = [{ acl = [1] }]`, "acl: want an array of strings"},
		{`m = [{ regexp = ["(unclosed"] }]`, "regexp"},
		{`m = [{ regexp = [["a", "b", "c"]] }]`, `want ["pattern", value]`},
		{`m = [{ hash = { a = [1] } }]`, `hash: key "a"`},
		{`m = [[1]]`, `in array form is ["kind", body]`},
		{`m = [["hash", [["a"]]]]`, `hash: want [["address", value], ...]`},
		{`m = [["acl", "x"]]`, "acl: want an array of strings"},
	} {
		var c struct {
			M Maps `toml:"m"`
		}
		_, err := toml.Decode(tc.text, &c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.text, err, tc.want)
		}
	}
}

func TestMatchListFirstRuleDecides(t *testing.T) {
	rt, err := NewRegexpTable(Rule{Pattern: `^\.(zip|rar)$`, Value: false}, Rule{Pattern: `(?i)\.exe$`}, Rule{Pattern: `qr'^\.(exe-ms)$'`})
	if err != nil {
		t.Fatal(err)
	}
	// the allow rule comes first and matches an element of the path: allowed
	v, key, found, err := rt.MatchList([]string{"application/zip", ".zip", "files.zip", "run.exe"})
	if err != nil || !found || v != false || key != `^\.(zip|rar)$` {
		t.Errorf("MatchList = %v %q %v %v", v, key, found, err)
	}
	v, key, found, _ = rt.MatchList([]string{".exe", ".exe-ms", "run.EXE"})
	if !found || v != int64(1) || key != `(?i)\.exe$` {
		t.Errorf("MatchList = %v %q %v", v, key, found)
	}
	memo := Memo{}
	for i := 0; i < 2; i++ { // the second round answers from the memo
		v, key, found, _ = rt.MatchListMemo([]string{".exe", ".exe-ms", "run.EXE"}, memo)
		if !found || v != int64(1) || key != `(?i)\.exe$` || len(memo) != 4 {
			t.Errorf("MatchListMemo = %v %q %v, memo %d", v, key, found, len(memo))
		}
	}
	// Perl's $ also matches before a final newline
	if _, _, found, _ := rt.MatchList([]string{"evil.exe\n"}); !found {
		t.Error(`"evil.exe\n" must match \.exe$`)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	text := `m = [{ hash = { "a@b" = true, ".c" = "x" } }, { acl = ["!d", "."] }, { regexp = [["^x", 1]] }, { constant = false }]`
	m := mustDecode(t, text)
	pairs := mustDecode(t, `m = [["hash", [["a@b", true], [".c", "x"]]], ["acl", ["!d", "."]], ["regexp", [["^x", 1]]], ["constant", false]]`)
	if a, b := string(must(m.MarshalTOML())), string(must(pairs.MarshalTOML())); a != b {
		t.Errorf("the array form differs:\n%s\n%s", a, b)
	}
	out, err := m.MarshalTOML()
	if err != nil {
		t.Fatal(err)
	}
	m2 := mustDecode(t, "m = "+string(out))
	for _, a := range []string{"a@b", "q@c", "z@d", "x@y", "y@y"} {
		v1, _, f1 := m.Lookup(a, Options{})
		v2, _, f2 := m2.Lookup(a, Options{})
		if f1 != f2 || !reflect.DeepEqual(v1, v2) {
			t.Errorf("%s: %v %v before, %v %v after %s", a, v1, f1, v2, f2, out)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzQueryKeys(f *testing.F) {
	for _, s := range []string{"User+Foo@Sub.Example.COM", "", "@", "a@[1.2.3.4]", `"x@y"@z`, "a@b@c", "@@@", "a+@b", "u@.."} {
		f.Add(s, "+")
	}
	f.Fuzz(func(t *testing.T, addr, delim string) {
		keys, rhs := QueryKeys(addr, Options{RecipientDelimiter: delim})
		if len(keys) == 0 || keys[0] != addr || rhs[0] != addr {
			t.Fatalf("keys %q: the address itself must come first", keys)
		}
		if keys[len(keys)-1] != "." && !strings.HasPrefix(rhs[4], "[") && addr != "." {
			t.Fatalf("keys %q must end with the catch-all \".\"", keys)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Fatalf("duplicate key %q in %q", k, keys)
			}
			seen[k] = true
		}
		ACL{"!" + addr, ".", addr}.Lookup(addr, Options{RecipientDelimiter: delim})
	})
}

func FuzzMapsTOML(f *testing.F) {
	for _, s := range []string{
		`m = [{ hash = { "a@b" = true } }, { acl = ["!x", "."] }, { regexp = ['^(.*)@', ["x", "$1"]] }, 1]`,
		`m = "DEFAULT"`, `m = [{ regexp = ["(?<=a)b", "\\Qx\\E"] }]`, `m = [{ constant = 1.5 }]`,
	} {
		f.Add(s, "user@example.com")
	}
	f.Fuzz(func(t *testing.T, text, addr string) {
		var c struct {
			M Maps `toml:"m"`
		}
		if _, err := toml.Decode(text, &c); err != nil {
			return
		}
		c.M.Lookup(addr, Options{RecipientDelimiter: "+"})
		c.M.LookupAll(addr, Options{})
		if _, err := c.M.MarshalTOML(); err != nil {
			t.Fatal(err)
		}
	})
}

// The example of the Maps documentation, as a postmaster would copy it.
func TestDocExample(t *testing.T) {
	var c struct {
		M Maps `toml:"bypass_virus_checks_maps"`
	}
	_, err := toml.Decode(`
[[bypass_virus_checks_maps]]
hash = { "boss@example.com" = false, "user@" = true, ".example.net" = true }
[[bypass_virus_checks_maps]]
acl = ["!virus-lover@example.org", ".example.org"]
[[bypass_virus_checks_maps]]
regexp = ['(?i)^postmaster@', ['^(.*)\+spam@example\.com$', "$1"]]
[[bypass_virus_checks_maps]]
constant = false
`, &c)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]Value{
		"boss@example.com": false, "user@anywhere.example": true, "x@a.example.net": true,
		"virus-lover@example.org": false, "x@example.org": true, "PostMaster@x.example": int64(1),
		"joe+spam@example.com": "joe", "x@elsewhere.example": false,
	} {
		if v, _, _ := c.M.Lookup(addr, Options{}); !reflect.DeepEqual(v, want) {
			t.Errorf("%s: %#v, want %#v", addr, v, want)
		}
	}
}

func FuzzTableFiles(f *testing.F) {
	f.Add("# c\nExample.com\n.example.net 0 # x\nk\tv w\n  \n")
	f.Fuzz(func(t *testing.T, text string) {
		h := HashTable{}
		if err := parseHash(strings.NewReader(text), h); err != nil {
			return
		}
		for k := range h {
			if k == "" || k != strings.ToLower(k) || strings.ContainsAny(k, "#\n") {
				t.Fatalf("bad key %q", k)
			}
		}
		var a ACL
		scanLines(strings.NewReader(text), func(l string) { a = append(a, strings.Fields(l)...) })
		a.Lookup("u@example.com", Options{})
	})
}

func BenchmarkHashLookup(b *testing.B) {
	m := NewMaps(HashTable{"boss@example.com": false, ".example.net": true}, ACL{".example.org"}, Const(false))
	o := Options{RecipientDelimiter: "+"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.Lookup("User+ext@mail.sub.example.com", o)
	}
}

// splitRE is amavis's split_address pattern, the reference for SplitAddress.
var splitRE = regexp.MustCompile(`(?s)^(.*?)(@(?:\[(?:\\.|[^\]\\]){0,999}(?:\]|$)|[^\[@])*)$`)

func FuzzSplitAddress(f *testing.F) {
	for _, s := range []string{"a@b", "a@[1.2.3.4]", `"x@y"@z`, "a@b@c", "a@[x@y]", "a@[unterminated", `a@[\]]`, "@", "", "a[@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if !utf8.ValidString(addr) {
			return // Go's regexp reads runes, amavis octets
		}
		l, d := SplitAddress(addr)
		wl, wd := addr, ""
		if m := splitRE.FindStringSubmatch(addr); m != nil {
			wl, wd = m[1], m[2]
		}
		if l != wl || d != wd {
			t.Fatalf("SplitAddress(%q) = %q %q, want %q %q", addr, l, d, wl, wd)
		}
	})
}
