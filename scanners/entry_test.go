package scanners

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

type avConfig struct {
	AvScanners       []Entry `toml:"av_scanners"`
	AvScannersBackup []Entry `toml:"av_scanners_backup"`
}

func decode(t testing.TB, doc string) avConfig {
	t.Helper()
	var c avConfig
	md, err := toml.Decode(doc, &c)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys %v", u)
	}
	return c
}

// testdata/debian.toml is Debian's 15-av_scanners ClamAV entries, plus
// others of its entries whose patterns use Perl-only syntax, as a site
// would write them for us.
func TestDebianEntries(t *testing.T) {
	doc, err := os.ReadFile("testdata/debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	c := decode(t, string(doc))
	if err := ValidateList("av_scanners", c.AvScanners); err != nil {
		t.Fatal(err)
	}
	if err := ValidateList("av_scanners_backup", c.AvScannersBackup); err != nil {
		t.Fatal(err)
	}
	want := Entry{
		Name: "ClamAV-clamd", Type: "clamd", Sockets: []string{"/var/run/clamav/clamd.ctl"}, Query: "CONTSCAN {}\n",
		CleanPattern: `\bOK$`, InfectedPattern: `\bFOUND$`, NamesPattern: `^.*?: (?!Infected Archive)(.*) FOUND$`,
	}
	if !reflect.DeepEqual(c.AvScanners[0], want) {
		t.Errorf("clamd entry = %+v", c.AvScanners[0])
	}
	cs := c.AvScannersBackup[0]
	if cs.Name != "ClamAV-clamscan" || !reflect.DeepEqual(cs.Args, Args{"--stdout", "--no-summary", "-r", "{}"}) ||
		!reflect.DeepEqual(cs.CleanCodes, []int{0}) || cs.Timeout != 90*time.Second {
		t.Errorf("clamscan entry = %+v", cs)
	}
	// The entries work: the names pattern of each reads a sample output.
	samples := map[string]struct {
		out  string
		code int
	}{
		"ClamAV-clamd":    {"/t/parts/p001: Eicar FOUND\n/t/parts/p002: Infected Archive FOUND\n", 1},
		"ClamAV-clamscan": {"/t/p001: Eicar FOUND\n", 1},
		"ESET Software ESETS Command Line Interface": {"/t/p001: action=\"cleaned\"\n/t/p001: virus=\"Eicar\"\n", 2},
		"Avira AntiVir":                       {"ALERT: [Eicar] /t/p001 <<< Contains code of the Eicar virus\n", 1},
		"NAI McAfee AntiVirus (uvscan)":       {"/t/p001 ... Found the Eicar virus !!!\n", 13},
		"drweb - DrWeb Antivirus":             {"/t/p001 infected with Eicar\n", 1},
		"Panda CommandLineSecure 9 for Linux": {"Found virus : Eicar\nNumber of files infected..: 1\n", 1},
		"F-PROT Antivirus for UNIX":           {"[Found virus] <Eicar> \t/t/p001\n", 1},
	}
	set, err := NewSet(c.AvScanners, c.AvScannersBackup, Options{Path: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	// Command entries are disabled (programs missing); build their engines directly.
	for _, e := range append(c.AvScanners, c.AvScannersBackup...) {
		sample, ok := samples[e.Name]
		if !ok {
			continue
		}
		en, err := newEngine(e, false, "/bin/true")
		if err != nil {
			t.Fatal(err)
		}
		o, err := en.judge(sample.out, sample.code)
		if err != nil || !o.infected || !reflect.DeepEqual(o.names, []string{"Eicar"}) {
			t.Errorf("%s: judge = %+v, %v", e.Name, o, err)
		}
	}
	// Panda's clean pattern: a count of 0, not 0 followed by digits.
	panda, _ := newEngine(c.AvScanners[2], false, "/bin/true")
	if o, err := panda.judge("Number of files infected..: 0\n", 0); err != nil || o.infected {
		t.Errorf("Panda clean: %+v, %v", o, err)
	}
	if o, err := panda.judge("Number of files infected..: 007\n", 0); err != nil || !o.infected {
		t.Errorf("Panda 007 infected: %+v, %v", o, err)
	}
	if len(set.primary) != 1 || len(set.backup) != 0 || len(set.disabled) != len(c.AvScanners)+len(c.AvScannersBackup)-1 {
		t.Errorf("enabled %d/%d, disabled %d", len(set.primary), len(set.backup), len(set.disabled))
	}
}

func TestArgsForms(t *testing.T) {
	c := decode(t, `
[[av_scanners]]
name = "a"
command = ["x"]
args = ["-p", "/var/run/x sock", "{}/*"]
infected_codes = [1]
`)
	if got := c.AvScanners[0].Args; !reflect.DeepEqual(got, Args{"-p", "/var/run/x sock", "{}/*"}) {
		t.Errorf("args list = %q", got)
	}
	var e avConfig
	if _, err := toml.Decode("[[av_scanners]]\nargs = 5\n", &e); err == nil {
		t.Error("args = 5 accepted")
	}
}

func TestValidate(t *testing.T) {
	ok := Entry{Name: "c", Sockets: []string{"127.0.0.1:3310"}}
	cmd := Entry{Name: "x", Command: []string{"x"}, InfectedCodes: []int{1}, CleanCodes: []int{0}}
	tests := []struct {
		name string
		e    Entry
		err  string // "" = valid
	}{
		{"clamd tcp", ok, ""},
		{"clamd v6", Entry{Name: "c", Sockets: []string{"[::1]:3310", "clamd:/run/c.sock", "simple:/run/d"}}, ""},
		{"command", cmd, ""},
		{"no name", Entry{Sockets: []string{"/s"}}, "name: missing"},
		{"no kind", Entry{Name: "n"}, "type: missing, and neither sockets nor command is set"},
		{"bad type", Entry{Name: "n", Type: "sophie", Sockets: []string{"/s"}}, `type: "sophie" is not one of "clamd", "command"`},
		{"bad socket", Entry{Name: "n", Sockets: []string{"localhost"}}, `sockets: "localhost" is neither /path nor host:port`},
		{"bad query", Entry{Name: "n", Sockets: []string{"/s"}, Query: "SCAN {}\n"}, `query: "SCAN {}\n": want "CONTSCAN {}", "MULTISCAN {}" or "INSTREAM"`},
		{"clamd codes", Entry{Name: "n", Sockets: []string{"/s"}, CleanCodes: []int{0}}, "clean_codes, infected_codes: type \"clamd\" has no exit codes; use clean_pattern, infected_pattern"},
		{"bad regexp", Entry{Name: "n", Sockets: []string{"/s"}, NamesPattern: `(`}, "names_pattern: regexp"},
		{"both clean", Entry{Name: "x", Command: []string{"x"}, CleanCodes: []int{0}, CleanPattern: "OK", InfectedCodes: []int{1}}, "clean_codes, clean_pattern: give one of them"},
		{"no infected", Entry{Name: "x", Command: []string{"x"}, CleanCodes: []int{0}}, "infected_codes or infected_pattern: missing"},
		{"sockets on command", Entry{Name: "x", Type: "command", Command: []string{"x"}, Sockets: []string{"/s"}, InfectedCodes: []int{1}}, `sockets, query: not used by type "command"`},
		{"negative timeout", Entry{Name: "x", Sockets: []string{"/s"}, Timeout: -1}, "timeout: -1ns is negative"},
	}
	for _, tt := range tests {
		err := tt.e.Validate()
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)) {
			t.Errorf("%s: Validate() = %v; want %q", tt.name, err, tt.err)
		}
	}
	err := ValidateList("av_scanners_backup", []Entry{ok, {Name: "broken", Sockets: []string{"nohost"}}})
	if want := `av_scanners_backup[1] "broken": sockets: "nohost" is neither /path nor host:port`; err == nil || err.Error() != want {
		t.Errorf("ValidateList = %v; want %q", err, want)
	}
	if _, err := NewSet([]Entry{ok, {Name: "x"}}, nil, Options{}); err == nil || !strings.HasPrefix(err.Error(), "av_scanners[1] ") {
		t.Errorf("NewSet = %v", err)
	}
}

// FuzzEntry feeds arbitrary TOML through decoding, validation and set
// construction: nothing may panic, and a validated entry must build.
func FuzzEntry(f *testing.F) {
	doc, _ := os.ReadFile("testdata/debian.toml")
	f.Add(string(doc))
	f.Add("[[av_scanners]]\nname='a'\nsockets=['[::1]:1','clamd:/x']\nquery='*'\n")
	f.Add("[[av_scanners]]\nname='a'\ncommand='x'\nargs='{}/* * {}'\ninfected_pattern='qr/x/i'\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var c avConfig
		if _, err := toml.Decode(doc, &c); err != nil {
			return
		}
		for _, e := range append(c.AvScanners, c.AvScannersBackup...) {
			if e.Validate() != nil {
				continue
			}
			if _, err := newEngine(e, false, "/bin/true"); err != nil {
				t.Errorf("valid entry %+v does not build: %v", e, err)
			}
		}
	})
}
