package scanners

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// scriptEntry is a command-line entry for testdata/avscan.
func scriptEntry(t *testing.T, name string, args ...string) Entry {
	abs, err := filepath.Abs("testdata/avscan")
	if err != nil {
		t.Fatal(err)
	}
	if len(args) == 0 {
		args = []string{"{}"}
	}
	return Entry{
		Name:          name,
		Command:       []string{"avscan-not-installed", abs},
		Args:          args,
		CleanCodes:    []int{0},
		InfectedCodes: []int{1},
		NamesPattern:  `^.*?: (.*) FOUND$`,
		Timeout:       5 * time.Second,
	}
}

func TestCommandScanner(t *testing.T) {
	eicar := []byte(testenv.EICAR)
	tests := []struct {
		name      string
		args      []string
		files     map[string][]byte
		infected  bool
		output    string // %v
		errSubstr string // the engine failed with this
	}{
		{"clean", nil, map[string][]byte{"email.txt": []byte("hi\n"), "parts/p001": []byte("hi\n")}, false, ".: OK\n", ""},
		{"infected part", nil, map[string][]byte{"email.txt": []byte("hi\n"), "parts/p001": eicar}, true, "parts/p001: Test.EICAR FOUND\n", ""},
		{"infected raw message only", nil, map[string][]byte{"email.txt": eicar}, true, "email.txt: Test.EICAR FOUND\n", ""},
		{"error exit", nil, map[string][]byte{"email.txt": []byte("hi\n"), "parts/p001": []byte("SCANNER-ERROR")}, false, "", "unexpected exit 2"},
		{"file list {}/*", []string{"--", "{}/*"}, map[string][]byte{"email.txt": []byte("hi\n"), "parts/p002": eicar}, true, "parts/p002: Test.EICAR FOUND\n", ""},
		{"relative names *", []string{"*"}, map[string][]byte{"email.txt": eicar, "parts/p001": []byte("x")}, true, "email.txt: Test.EICAR FOUND\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := &logRecorder{}
			set, err := NewSet([]Entry{scriptEntry(t, "Test-Scanner", tt.args...)}, nil, Options{Logf: log.logf})
			if err != nil {
				t.Fatal(err)
			}
			rep := set.Scan(context.Background(), msgDir(t, tt.files))
			if tt.errSubstr != "" {
				if !rep.Failed || rep.FailReason != FailAllFailed || !strings.Contains(fmt.Sprint(rep.Engines[0].Err), tt.errSubstr) {
					t.Fatalf("got %+v; want a failure with %q", rep, tt.errSubstr)
				}
				if !strings.Contains(log.String(), "-1 Test-Scanner av-scanner FAILED: unexpected exit 2") {
					t.Errorf("log lacks the failure:\n%s", log)
				}
				return
			}
			if rep.Failed || rep.Infected != tt.infected || rep.Output != tt.output {
				t.Fatalf("got %+v; want infected=%v output %q", rep, tt.infected, tt.output)
			}
			if tt.infected && (!slices.Equal(rep.Viruses, []string{"Test.EICAR"}) || !slices.Equal(rep.Detectors, []string{"Test-Scanner"})) {
				t.Errorf("Viruses %q Detectors %q", rep.Viruses, rep.Detectors)
			}
		})
	}
}

func TestCommandScannerTimeout(t *testing.T) {
	e := scriptEntry(t, "Test-Scanner")
	e.Timeout = 300 * time.Millisecond
	set, _ := NewSet([]Entry{e}, nil, Options{})
	start := time.Now()
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"email.txt": []byte("SCANNER-HANG")}))
	took := time.Since(start)
	if !rep.Failed || !errors.Is(rep.Engines[0].Err, context.DeadlineExceeded) {
		t.Fatalf("got %+v; want a time-out failure", rep)
	}
	// The script's own child (sleep 30) is killed with it: we do not wait for it.
	if took > 2*time.Second {
		t.Errorf("took %v; want about the 300ms time limit", took)
	}
}

func TestExpandArgsChunks(t *testing.T) {
	dir := "/t/amavis-x"
	var files []string
	for i := range 300 {
		files = append(files, fmt.Sprintf("%s/parts/p%03d", dir, i+1))
	}
	runs := expandArgs([]string{"-s", "{}/*"}, dir, files)
	if len(runs) < 2 {
		t.Fatalf("%d runs for 300 files; want the 4000-byte limit to split them", len(runs))
	}
	var all []string
	for _, argv := range runs {
		if argv[0] != "-s" {
			t.Errorf("run lacks the fixed argument: %q", argv)
		}
		if n := len(strings.Join(argv, " ")); n > maxArgBytes {
			t.Errorf("argument list of %d bytes", n)
		}
		all = append(all, argv[1:]...)
	}
	if !slices.Equal(all, files) {
		t.Errorf("files not passed exactly once, in order")
	}
	if got := expandArgs([]string{"--path={}", "{}/parts", "x"}, dir, files); !slices.Equal(got[0], []string{"--path=" + dir, dir + "/parts", "x"}) {
		t.Errorf("{} expansion: %q", got)
	}
}

func TestPrimaryFailsBackupDetects(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "clamd.ctl")
	log := &logRecorder{}
	set, err := NewSet([]Entry{debianClamd(dead)}, []Entry{scriptEntry(t, "Backup-Scanner")}, Options{Logf: log.logf})
	if err != nil {
		t.Fatal(err)
	}
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"parts/p001": []byte(testenv.EICAR)}))
	if rep.Failed || !rep.Infected || !slices.Equal(rep.Detectors, []string{"Backup-Scanner"}) || !slices.Equal(rep.Viruses, []string{"Test.EICAR"}) {
		t.Fatalf("got %+v", rep)
	}
	if len(rep.Engines) != 2 || rep.Engines[0].Err == nil || rep.Engines[1].Backup != true || rep.Engines[1].Duration <= 0 {
		t.Errorf("Engines = %+v", rep.Engines)
	}
	// The time per engine is logged at level 2.
	if !strings.Contains(log.String(), "\n2 Backup-Scanner av-scanner: INFECTED: Test.EICAR, ") {
		t.Errorf("log lacks the engine's time:\n%s", log)
	}
	for _, want := range []string{
		"-1 WARN: all primary virus scanners failed, considering backups",
		"0 Found secondary av scanner Backup-Scanner at " + set.backup[0].path,
		"0 Using primary internal av scanner code for ClamAV-clamd",
	} {
		if !log.has(want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestBackupNotRunWhenAPrimaryWorks(t *testing.T) {
	c := testenv.StartClamd(t)
	dead := filepath.Join(t.TempDir(), "clamd.ctl")
	set, _ := NewSet([]Entry{debianClamd(dead), debianClamd(c.Socket)}, []Entry{scriptEntry(t, "Backup-Scanner")}, Options{})
	// A trailing slash on the directory changes nothing (%v has no path).
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"parts/p001": []byte(testenv.EICAR)})+"/")
	if rep.Failed || !slices.Equal(rep.Viruses, []string{c.VirusName}) || len(rep.Engines) != 2 || rep.Output != "parts/p001: "+c.VirusName+" FOUND\n" {
		t.Fatalf("got %+v", rep)
	}
}

func TestAllScannersFail(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "clamd.ctl")
	log := &logRecorder{}
	set, _ := NewSet([]Entry{debianClamd(dead)}, []Entry{scriptEntry(t, "Backup-Scanner")}, Options{Logf: log.logf})
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"parts/p001": []byte("SCANNER-ERROR")}))
	if !rep.Failed || rep.FailReason != "AV: ALL VIRUS SCANNERS FAILED" || len(rep.Engines) != 2 {
		t.Fatalf("got %+v", rep)
	}
	if !log.has("-2 AV: ALL VIRUS SCANNERS FAILED") {
		t.Errorf("log:\n%s", log)
	}
}

func TestNoScannersAvailable(t *testing.T) {
	log := &logRecorder{}
	e := scriptEntry(t, "Missing-Scanner")
	e.Command = []string{"avscan-not-installed", "/nonexistent/avscan"}
	set, err := NewSet([]Entry{e}, nil, Options{Path: []string{t.TempDir()}, Logf: log.logf})
	if err != nil {
		t.Fatal(err)
	}
	if !log.has("3 No primary av scanner: Missing-Scanner") {
		t.Errorf("log:\n%s", log)
	}
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"email.txt": []byte("x")}))
	if !rep.Failed || rep.FailReason != "AV: NO VIRUS SCANNERS AVAILABLE" || !set.Configured() {
		t.Errorf("got %+v", rep)
	}
	if st := set.Diagnose(context.Background()); len(st) != 1 || st[0].Err == nil || !strings.Contains(st[0].Err.Error(), "program not found") {
		t.Errorf("Diagnose = %+v", st)
	}
	empty, _ := NewSet(nil, nil, Options{})
	if empty.Configured() {
		t.Error("an empty set claims to be configured")
	}
}

func TestSearchPath(t *testing.T) {
	bin := t.TempDir()
	abs, _ := filepath.Abs("testdata/avscan")
	if err := os.Symlink(abs, filepath.Join(bin, "avscan")); err != nil {
		t.Fatal(err)
	}
	e := scriptEntry(t, "Path-Scanner")
	e.Command = []string{"/nonexistent/avscan", "avscan"}
	set, err := NewSet([]Entry{e}, nil, Options{Path: []string{"/nonexistent", bin}})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.primary[0].path; got != filepath.Join(bin, "avscan") {
		t.Errorf("found %q", got)
	}
}

func TestFirstInfectedStopsScan(t *testing.T) {
	c := testenv.StartClamd(t)
	slow := scriptEntry(t, "Slow-Scanner")
	slow.Timeout = 3 * time.Second
	files := map[string][]byte{"parts/p001": []byte(testenv.EICAR), "parts/p002": []byte("SCANNER-HANG")}
	for _, stop := range []bool{true, false} {
		set, _ := NewSet([]Entry{slow, debianClamd(c.Socket)}, nil, Options{FirstInfectedStopsScan: stop})
		start := time.Now()
		rep := set.Scan(context.Background(), msgDir(t, files))
		took := time.Since(start)
		if !rep.Infected || !slices.Equal(rep.Detectors, []string{"ClamAV-clamd"}) {
			t.Errorf("stop=%v: got %+v", stop, rep)
		}
		if stop && (took > 2*time.Second || rep.Engines[0].Err == nil || rep.Engines[0].Err.Error() != errStoppedEarly) {
			t.Errorf("stop=true: took %v, slow engine %v; want it abandoned", took, rep.Engines[0].Err)
		}
		if !stop && took < 3*time.Second {
			t.Errorf("stop=false: took %v; want every engine waited for", took)
		}
	}
}

// Engines run concurrently: two slow engines take the time of one.
func TestEnginesConcurrent(t *testing.T) {
	a, b := scriptEntry(t, "A"), scriptEntry(t, "B")
	a.Timeout, b.Timeout = 2*time.Second, 2*time.Second
	set, _ := NewSet([]Entry{a, b}, nil, Options{})
	start := time.Now()
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"email.txt": []byte("SCANNER-HANG")}))
	if took := time.Since(start); took > 3500*time.Millisecond {
		t.Errorf("two 2s time-outs took %v; one after the other would take 4s", took)
	}
	if !rep.Failed || len(rep.Engines) != 2 {
		t.Errorf("got %+v", rep)
	}
}

func TestNoFilesToScan(t *testing.T) {
	set, _ := NewSet([]Entry{debianClamd("/nonexistent.sock")}, nil, Options{})
	rep := set.Scan(context.Background(), msgDir(t, nil))
	if rep.Failed || rep.Infected || len(rep.Engines) != 0 {
		t.Errorf("got %+v; want clean without calling scanners", rep)
	}
}

func TestVirusNamesFirstDetectorUnique(t *testing.T) {
	c := testenv.StartClamd(t)
	set, _ := NewSet([]Entry{scriptEntry(t, "Script"), debianClamd(c.Socket)}, nil, Options{})
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"email.txt": []byte(testenv.EICAR), "parts/p001": []byte(testenv.EICAR)}))
	// Both detect; %V comes from the first in configuration order, once.
	if !slices.Equal(rep.Viruses, []string{"Test.EICAR"}) || !slices.Equal(rep.Detectors, []string{"Script", "ClamAV-clamd"}) {
		t.Errorf("Viruses %q Detectors %q", rep.Viruses, rep.Detectors)
	}
	if !slices.Equal(rep.Engines[1].Viruses, []string{c.VirusName}) {
		t.Errorf("clamd engine names %q", rep.Engines[1].Viruses)
	}
}

func TestDiagnose(t *testing.T) {
	c := testenv.StartClamd(t)
	dead := deadAddr(t)
	set, _ := NewSet([]Entry{{Name: "pool", Sockets: []string{dead, c.TCPAddr}}}, []Entry{scriptEntry(t, "Script")}, Options{})
	st := set.Diagnose(context.Background())
	if len(st) != 2 {
		t.Fatalf("Diagnose = %+v", st)
	}
	p := st[0]
	if p.Err != nil || len(p.Addrs) != 2 || p.Addrs[0].Err == nil || p.Addrs[1].Err != nil || p.Addrs[1].Version != c.Version {
		t.Errorf("clamd status %+v", p)
	}
	if s := st[1]; s.Type != TypeCommand || !s.Backup || !strings.HasSuffix(s.Program, "testdata/avscan") || s.Err != nil {
		t.Errorf("command status %+v", s)
	}
	c.Stop()
	if st := set.Diagnose(context.Background()); st[0].Err == nil {
		t.Errorf("clamd stopped, Diagnose says %+v", st[0])
	}
}

// Debian's clamscan backup entry, run for real against our database.
func TestDebianClamscanEntry(t *testing.T) {
	c := testenv.StartClamd(t)
	testenv.RequireProgram(t, "clamscan")
	e := Entry{
		Name:            "ClamAV-clamscan",
		Command:         []string{"clamscan"},
		Args:            Args(strings.Fields("--stdout --no-summary -r --database=" + filepath.Join(c.Dir, "db") + " {}")),
		CleanCodes:      []int{0},
		InfectedPattern: `:.*\sFOUND$`,
		NamesPattern:    `^.*?: (?!Infected Archive)(.*) FOUND$`,
	}
	set, err := NewSet(nil, []Entry{e}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mc := range messageCases(t) {
		rep := set.Scan(context.Background(), msgDir(t, mc.files))
		if rep.Failed || rep.Infected != (mc.infected != nil) {
			t.Errorf("%s: %+v", mc.name, rep)
			continue
		}
		// clamscan lists clean files too ("parts/p001: OK"): compare the findings.
		var found []string
		for _, l := range strings.Split(sortedLines(rep.Output), "\n") {
			if strings.HasSuffix(l, " FOUND") {
				found = append(found, l)
			}
		}
		if mc.infected != nil && (!slices.Equal(rep.Viruses, []string{c.VirusName}) || strings.Join(found, "\n") != foundLines(mc.infected, c.VirusName)) {
			t.Errorf("%s: Viruses %q, Output:\n%s", mc.name, rep.Viruses, rep.Output)
		}
	}
}

// One Set serves every worker: concurrent scans share the engines.
func TestConcurrentScans(t *testing.T) {
	c := testenv.StartClamd(t)
	set, _ := NewSet([]Entry{
		debianClamd(c.Socket),
		{Name: "stream", Sockets: []string{c.TCPAddr}, Query: "INSTREAM"},
		scriptEntry(t, "Script"),
	}, nil, Options{})
	dirs := []string{
		msgDir(t, map[string][]byte{"email.txt": []byte("hello\n")}),
		msgDir(t, map[string][]byte{"email.txt": []byte("hello\n"), "parts/p001": []byte(testenv.EICAR)}),
	}
	errs := make(chan string, 16)
	for i := range 16 {
		go func() {
			rep := set.Scan(context.Background(), dirs[i%2])
			if rep.Failed || rep.Infected != (i%2 == 1) || (rep.Infected && len(rep.Detectors) != 3) {
				errs <- fmt.Sprintf("scan %d: %+v", i, rep)
				return
			}
			errs <- ""
		}()
	}
	for range 16 {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
