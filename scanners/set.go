package scanners

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"amavisgo/smtp"
)

// amavis's failure texts; the daemon's 451 reply and log carry them.
const (
	FailAllFailed   = "AV: ALL VIRUS SCANNERS FAILED"
	FailNoScanners  = "AV: NO VIRUS SCANNERS AVAILABLE"
	tierPrimary     = "primary"
	tierSecondary   = "secondary"
	errStoppedEarly = "not waited for: first_infected_stops_scan"
)

// Options are the global settings the engines need.
type Options struct {
	FirstInfectedStopsScan bool     // $first_infected_stops_scan
	Path                   []string // $path: where command-line scanners are searched; nil: $PATH
	// Logf receives log lines with amavis's levels: -1 and below warnings
	// and errors, 0 notice, 1 info, 2 and up debug. Nil discards them.
	Logf func(level int, format string, args ...any)
}

// Set is the configured primary and backup engines. It is safe for
// concurrent use.
type Set struct {
	primary, backup []*engine
	disabled        []EngineStatus // entries whose program was not found
	configured      bool
	opt             Options
}

// NewSet validates the entries, compiles their patterns and looks up the
// programs of command-line entries: an entry whose program is missing is
// disabled with a log line, as amavis does at start-up.
func NewSet(primary, backup []Entry, opt Options) (*Set, error) {
	if err := ValidateList("av_scanners", primary); err != nil {
		return nil, err
	}
	if err := ValidateList("av_scanners_backup", backup); err != nil {
		return nil, err
	}
	s := &Set{opt: opt, configured: len(primary)+len(backup) > 0}
	searchPath := opt.Path
	if searchPath == nil {
		searchPath = filepath.SplitList(os.Getenv("PATH"))
	}
	for _, tier := range []struct {
		entries []Entry
		backup  bool
		list    *[]*engine
	}{{primary, false, &s.primary}, {backup, true, &s.backup}} {
		tierName := tierPrimary
		if tier.backup {
			tierName = tierSecondary
		}
		for _, e := range tier.entries {
			path := ""
			if e.kind() == TypeCommand {
				path = findProgram(e.Command, searchPath)
				if path == "" {
					s.logf(3, "No %s av scanner: %s", tierName, e.Name)
					s.disabled = append(s.disabled, EngineStatus{Name: e.Name, Backup: tier.backup, Type: TypeCommand,
						Err: fmt.Errorf("program not found: %s", strings.Join(e.Command, ", "))})
					continue
				}
				s.logf(0, "Found %s av scanner %-11s at %s", tierName, e.Name, path)
			} else {
				s.logf(0, "Using %s internal av scanner code for %s", tierName, e.Name)
			}
			en, err := newEngine(e, tier.backup, path)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.Name, err)
			}
			*tier.list = append(*tier.list, en)
		}
	}
	return s, nil
}

// Configured reports whether any entry was configured at all; amavis loads
// no anti-virus code, and does not scan, when none was.
func (s *Set) Configured() bool { return s.configured }

func (s *Set) logf(level int, format string, args ...any) {
	if s.opt.Logf != nil {
		s.opt.Logf(level, format, args...)
	}
}

type logKey struct{}

// WithLog gives the scans under ctx a log of their own (the message's, with its log id), in
// place of Options.Logf.
func WithLog(ctx context.Context, logf func(level int, format string, args ...any)) context.Context {
	return context.WithValue(ctx, logKey{}, logf)
}

// logTo is the log of the scans under ctx: WithLog's, else dflt, else none.
func logTo(ctx context.Context, dflt func(level int, format string, args ...any)) func(level int, format string, args ...any) {
	if l, ok := ctx.Value(logKey{}).(func(level int, format string, args ...any)); ok {
		return l
	}
	if dflt != nil {
		return dflt
	}
	return func(int, string, ...any) {}
}

// findProgram returns the first alternative found: a name with a slash is
// taken as a path, a bare name is searched in path.
func findProgram(alternatives, path []string) string {
	for _, a := range alternatives {
		if strings.Contains(a, "/") {
			if isExecutable(a) {
				return a
			}
			continue
		}
		for _, d := range path {
			if d == "" {
				continue
			}
			if p := filepath.Join(d, a); isExecutable(p) {
				return p
			}
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Report is the result of scanning one message.
type Report struct {
	Infected   bool
	Viruses    []string // %V: the names from the first detecting engine (in configuration order), unique
	Detectors  []string // %W: the names of all engines that detected
	Output     string   // %v: the output of the first detecting engine (else of the first that worked), temp path removed
	Failed     bool     // every engine (primary, then backup) failed, or none was available: CC_UNCHECKED
	FailReason string   // FailAllFailed or FailNoScanners when Failed
	Engines    []EngineReport
}

// EngineReport is one engine's part in a scan, for logs and metrics.
type EngineReport struct {
	Name     string
	Backup   bool
	Duration time.Duration
	Infected bool
	Viruses  []string // unique
	Err      error    // the engine failed (or was not waited for)
}

// TempfailReply is the reply to the MTA when virus_scanners_failure_is_fatal
// is set and the scan failed; amID is the log id (%n).
func (r Report) TempfailReply(amID string) smtp.Reply {
	return smtp.ProcessingFailed(amID, "virus_scan", r.FailReason)
}

// Scan scans the message directory dir (email.txt and parts/): the primary
// engines concurrently, then, only when every one of them failed, the backup
// engines. Failures are in the Report.
func (s *Set) Scan(ctx context.Context, dir string) Report {
	var rep Report
	logf := logTo(ctx, s.opt.Logf)
	dir = filepath.Clean(dir)
	if len(s.primary)+len(s.backup) == 0 {
		rep.Failed, rep.FailReason = true, FailNoScanners
		logf(-2, "%s", rep.FailReason)
		return rep
	}
	files := &fileList{dir: dir}
	// The spooled message alone says there is something to scan; the whole list is made only
	// for the engines that take one (clamd's directory scans do not: a walk of parts/ is six
	// system calls a message).
	if fi, err := os.Lstat(filepath.Join(dir, "email.txt")); err != nil || !fi.Mode().IsRegular() {
		list, err := files.get()
		if err != nil {
			logf(-1, "virus_scan: %v", err)
			rep.Failed, rep.FailReason = true, FailAllFailed
			logf(-2, "%s", rep.FailReason)
			return rep
		}
		if len(list) == 0 {
			logf(2, "Not calling virus scanners, no files to scan in %s", dir)
			return rep
		}
	}

	results, done := s.runTier(ctx, s.primary, dir, files)
	if !done && len(s.primary) > 0 {
		// Said even without backups, as Amavis::AV does.
		logf(-1, "WARN: all %s virus scanners failed, considering backups", tierPrimary)
	}
	if !done && len(s.backup) > 0 {
		var more []result
		more, done = s.runTier(ctx, s.backup, dir, files)
		results = append(results, more...)
	}

	outputSet := false
	for _, r := range results {
		er := EngineReport{Name: r.en.name, Backup: r.en.backup, Duration: r.took, Err: r.err}
		if r.err == nil && r.o.infected {
			er.Infected = true
			er.Viruses = unique(r.o.names)
			rep.Detectors = append(rep.Detectors, r.en.name)
			if !rep.Infected {
				rep.Infected, rep.Viruses, rep.Output = true, er.Viruses, hidePath(r.o.output, dir)
				outputSet = true
			}
		} else if r.err == nil && !outputSet {
			rep.Output, outputSet = hidePath(r.o.output, dir), true
		}
		rep.Engines = append(rep.Engines, er)
	}
	if rep.Infected {
		logf(2, "virus_scan: (%s), detected by %d scanners: %s",
			strings.Join(rep.Viruses, ", "), len(rep.Detectors), strings.Join(rep.Detectors, ", "))
	}
	if !done {
		rep.Failed, rep.FailReason = true, FailAllFailed
		logf(-2, "%s", rep.FailReason)
	}
	return rep
}

type result struct {
	en   *engine
	o    outcome
	err  error
	took time.Duration
}

// runTier runs engines concurrently (a single one in the caller's goroutine)
// and returns their results in configuration order; done is true when at
// least one engine worked.
func (s *Set) runTier(ctx context.Context, engines []*engine, dir string, files *fileList) ([]result, bool) {
	logf := logTo(ctx, s.opt.Logf)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	results := make([]result, len(engines))
	var wg sync.WaitGroup
	var mu sync.Mutex
	stopped := false
	for i, en := range engines {
		run := func() {
			start := time.Now()
			o, err := en.scan(ctx, dir, files)
			results[i] = result{en: en, o: o, err: err, took: time.Since(start)}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && stopped && ctx.Err() != nil {
				results[i].err = errors.New(errStoppedEarly)
				return
			}
			switch {
			case err != nil && connectFailure(en.name, err) != "":
				s.logf(-1, "%s", connectFailure(en.name, err))
			case err != nil:
				logf(-1, "%s av-scanner FAILED: %v", en.name, err)
			case o.infected:
				logf(2, "%s av-scanner: INFECTED: %s, %d ms", en.name, strings.Join(unique(o.names), ", "), results[i].took.Milliseconds())
				if s.opt.FirstInfectedStopsScan && !stopped {
					stopped = true
					stop()
				}
			default:
				logf(2, "%s av-scanner: CLEAN, %d ms", en.name, results[i].took.Milliseconds())
			}
		}
		if len(engines) == 1 {
			run()
			continue
		}
		wg.Go(run)
	}
	wg.Wait()
	done := slices.ContainsFunc(results, func(r result) bool { return r.err == nil })
	return results, done
}

// fileList is the list of files to scan of one message, made on first use
// (engines of a tier ask for it concurrently).
type fileList struct {
	dir   string
	once  sync.Once
	files []string
	err   error
}

func (l *fileList) get() ([]string, error) {
	l.once.Do(func() { l.files, l.err = filesToScan(l.dir) })
	return l.files, l.err
}

// filesToScan lists email.txt and every regular file under parts/: the raw
// message is scanned too, so that a decoding gap cannot hide a payload.
func filesToScan(dir string) ([]string, error) {
	var files []string
	if fi, err := os.Lstat(filepath.Join(dir, "email.txt")); err == nil && fi.Mode().IsRegular() {
		files = append(files, filepath.Join(dir, "email.txt"))
	} else if !errors.Is(err, fs.ErrNotExist) && err != nil {
		return nil, err
	}
	err := filepath.WalkDir(filepath.Join(dir, "parts"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == filepath.Join(dir, "parts") {
				return filepath.SkipDir
			}
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// hidePath removes the message directory from scanner output (%v), as
// amavis removes its temporary directory.
func hidePath(output, dir string) string {
	output = strings.ReplaceAll(output, dir+"/", "")
	return strings.ReplaceAll(output, dir, ".")
}

func unique(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// EngineStatus is an engine's state at start-up (Diagnose).
type EngineStatus struct {
	Name    string
	Backup  bool
	Type    string
	Program string       // command: the program found
	Addrs   []AddrStatus // clamd: every address of the pool
	Err     error        // nil when usable: the program exists, or at least one clamd answered
}

// AddrStatus is one clamd address: its VERSION reply or why it failed.
type AddrStatus struct {
	Addr    string
	Version string
	Err     error
}

// Diagnose checks every engine, for the start-up log: which programs were
// found, and for each clamd address PING and VERSION.
func (s *Set) Diagnose(ctx context.Context) []EngineStatus {
	var out []EngineStatus
	for _, en := range slices.Concat(s.primary, s.backup) {
		st := EngineStatus{Name: en.name, Backup: en.backup}
		if en.clamd == nil {
			st.Type, st.Program = TypeCommand, en.path
			out = append(out, st)
			continue
		}
		st.Type = TypeClamd
		st.Err = errors.New("no clamd address answered")
		for _, sa := range en.clamd.addrs {
			a := AddrStatus{Addr: sa.String()}
			one := &Clamd{addrs: []socketAddr{sa}, down: make([]time.Time, 1)}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if a.Err = one.Ping(cctx); a.Err == nil {
				a.Version, a.Err = one.Version(cctx)
			}
			cancel()
			if a.Err == nil {
				st.Err = nil
			}
			st.Addrs = append(st.Addrs, a)
		}
		out = append(out, st)
	}
	return append(out, s.disabled...)
}
