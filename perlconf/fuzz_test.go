package perlconf

import (
	"os"
	"testing"
)

// seeds are Debian's stock files and shapes from real configurations.
func seeds(f *testing.F) {
	for _, file := range []string{"/etc/amavis/conf.d/15-av_scanners", "/etc/amavis/conf.d/20-debian_defaults", "/etc/amavis/conf.d/25-amavis_helpers"} {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("use strict;\n$x{CC_BADH.\",3\"} = 1; @a = qw( .$mydomain ); $s = <<'EOD';\nline $x\nEOD\n1;\n")
	f.Add("$policy_bank{'MYNETS'} = { originating => 1, bypass_spam_checks_maps => [1], };\n")
	f.Add("@av_scanners = (['c', \\&ask_daemon, [\"CONTSCAN {}\\n\", '/s'], qr/\\bOK$/m, qr'x'i, [1..7]]);")
	f.Add("chomp($mydomain = `head -n 1 /etc/mailname`); $virus_admin = \"postmaster\\@$mydomain\";")
	f.Add("for (qw(a b)) { $bypass_virus_checks{$_} = 1 } %h = map { $_ => 1 } qw(x y);")
}

// FuzzLexer: any input lexes to tokens or an error, never a panic or a loop.
func FuzzLexer(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, src string) {
		l := newLexer("f", src)
		for i := 0; i <= len(src)+1; i++ {
			tok, err := l.next()
			if err != nil || tok.kind == tEOF {
				return
			}
		}
		t.Fatalf("the lexer did not reach the end of %d bytes", len(src))
	})
}

// FuzzParser: any input parses or fails with a positioned error; evaluating it (sealed: no
// commands, no files) and converting the variables to conf's keys does not panic either.
func FuzzParser(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, src string) {
		stmts, err := parse("f", src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		in := NewInterp()
		in.sealed = true
		for _, s := range stmts {
			if err := in.exec(s); err != nil {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("evaluation error without a position: %v", err)
				}
				return
			}
		}
		// and what was evaluated converts to conf's keys or fails with a position
		if _, _, err := in.toTOML(Options{}, []string{"f"}); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("conversion error without a position: %v", err)
			}
		}
	})
}
