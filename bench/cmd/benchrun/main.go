// Command benchrun measures our content filter beside Debian's Perl
// amavisd-new: bench/loadgen sends through the filter into Postfix's
// smtp-sink, with a private clamd holding an EICAR-only database. For each
// load (2 KB, 100 KB, a 2 KB mix with 10% EICAR, 10 MB) and each number of
// parallel sessions (max_servers set to match) it reports messages per
// second, the filter's CPU per message, its peak RSS and the messages'
// latencies, each over several repetitions, and loadgen straight into
// smtp-sink as the harness's own ceiling.
//
// Outputs in -out: results.md (table), results.csv, reps.csv (every
// repetition) and msgs_per_s.png. It must run as root (both daemons bind,
// then switch to the amavis user) on Debian; the postfix, clamav-daemon and
// amavisd-new packages are installed by scripts/install-deps when missing.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"amavisgo/bench/report"
)

type config struct {
	out, ours, perl  string
	filters, loads   []string
	sessions         []int
	reps, warmup     int
	minMsgs, maxMsgs int
	seconds          float64
	sampleEvery      time.Duration
	keep, requireAV  bool
	sqlLoads         []string // the loads and sessions ours-sql is measured at
	sqlSessions      []int
}

type environment struct {
	dir   string
	clamd *clamd
	sink  *sink
	// the spam engines, started when a load needs them
	spamd, rspamd *process
	rspamdURL     string
	// header describes the run for results.md.
	header string
	pg     *postgres // for ours-sql
	// notes are caveats found while measuring, listed in results.md.
	notes    []string
	noteKeys []string
}

// note records a caveat once per key.
func (env *environment) note(key, s string) {
	if slices.Contains(env.noteKeys, key) {
		return
	}
	logf("NOTE %s", s)
	env.noteKeys = append(env.noteKeys, key)
	env.notes = append(env.notes, s)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func main() {
	var cfg config
	var filters, loads, sessions, sqlLoads, sqlSessions string
	flag.StringVar(&cfg.out, "out", "out", "directory for results.md, results.csv, reps.csv, msgs_per_s.png and logs")
	flag.StringVar(&cfg.ours, "ours", "../bin/amavisd", "our daemon's binary")
	flag.StringVar(&cfg.perl, "perl", "/usr/sbin/amavisd", "the Perl amavisd-new")
	flag.StringVar(&filters, "filters", "ceiling,perl,ours,ours-sql,floor,floor-parts", "what to measure: ceiling, perl, ours, ours-sql (ours with the SQL log on PostgreSQL), floor and floor-parts (a filter that does only the I/O, without and with the decoded parts scanned: bench/cmd/floorfilter)")
	flag.StringVar(&sqlLoads, "sql-loads", "2KB", "the loads ours-sql is measured at")
	flag.StringVar(&sqlSessions, "sql-sessions", "8", "the session counts ours-sql is measured at")
	flag.StringVar(&loads, "loads", "2KB,100KB,mix,spamd,rspamd,10MB", "loads: 2KB, 100KB, mix (2 KB with 10% EICAR), spamd and rspamd (2 KB through that spam engine), 10MB (a 7 MiB base64 attachment, 32 sessions whatever -sessions says)")
	flag.StringVar(&sessions, "sessions", "1,4,8,16,32", "parallel sessions (max_servers is set to match); the issue's first target is at 8")
	flag.IntVar(&cfg.reps, "reps", 3, "measured repetitions per point")
	flag.Float64Var(&cfg.seconds, "seconds", 4, "target duration of one repetition; the message count is sized from the warm-up's rate")
	flag.IntVar(&cfg.warmup, "warmup", 20, "warm-up messages per point (at least 2 per session)")
	flag.IntVar(&cfg.minMsgs, "min", 60, "fewest messages per repetition (at least 4 per session)")
	flag.IntVar(&cfg.maxMsgs, "max", 20000, "most messages per repetition")
	flag.DurationVar(&cfg.sampleEvery, "sample", 100*time.Millisecond, "RSS sampling interval")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (configs, daemon logs)")
	flag.BoolVar(&cfg.requireAV, "require-av", true, "fail a filter's point when it does not discard an EICAR probe; false measures it anyway, with a note")
	flag.Parse()
	cfg.filters = strings.Split(filters, ",")
	cfg.loads = strings.Split(loads, ",")
	for _, s := range strings.Split(sessions, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fatalf("-sessions: %q is not a positive number", s)
		}
		cfg.sessions = append(cfg.sessions, n)
	}
	cfg.sqlLoads = strings.Split(sqlLoads, ",")
	for _, s := range strings.Split(sqlSessions, ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fatalf("-sql-sessions: %q is not a positive number", s)
		}
		cfg.sqlSessions = append(cfg.sqlSessions, n)
	}
	if cfg.reps < 1 {
		fatalf("-reps must be at least 1")
	}
	if err := run(&cfg); err != nil {
		fatalf("%v", err)
	}
}

// missingPrograms lists what the run needs from Debian's packages (postfix, clamav-daemon,
// amavisd-new) and cannot find.
func missingPrograms(cfg *config) []string {
	need := []string{"/usr/sbin/smtp-sink", "/usr/sbin/clamd"}
	if slices.Contains(cfg.loads, "spamd") {
		need = append(need, "/usr/sbin/spamd")
	}
	if slices.Contains(cfg.loads, "rspamd") {
		need = append(need, "/usr/bin/rspamd")
	}
	if slices.Contains(cfg.filters, report.Perl) {
		need = append(need, cfg.perl)
	}
	var missing []string
	for _, p := range need {
		if _, err := lookBin(p, filepath.Base(p)); err != nil {
			missing = append(missing, p)
		}
	}
	return missing
}

// ensurePackages installs the missing packages with the repository's scripts/install-deps,
// the same install make test uses (Debian's amavisd-new included); their daemons are not
// started, the bench runs private instances on other ports.
func ensurePackages(missing []string) error {
	if len(missing) == 0 {
		return nil
	}
	script, err := findUp(filepath.Join("scripts", "install-deps"))
	if err != nil {
		return fmt.Errorf("missing %s, and no scripts/install-deps to install them: %v", strings.Join(missing, ", "), err)
	}
	logf("missing %s: running %s", strings.Join(missing, ", "), script)
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v", script, err)
	}
	return nil
}

// findUp looks for rel in the working directory and each of its parents (make bench runs in
// bench/, the script is in the repository's top).
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found above the working directory", rel)
		}
		dir = parent
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchrun: "+format+"\n", args...)
	os.Exit(1)
}

func run(cfg *config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: both daemons bind and then switch to the %s user", daemonUser)
	}
	if err := ensurePackages(missingPrograms(cfg)); err != nil {
		return err
	}
	daemons := map[string]filterDaemon{report.Ceiling: nil}
	for _, f := range cfg.filters {
		switch f {
		case report.Ceiling:
		case report.Perl:
			bin, err := lookBin(cfg.perl, "amavisd")
			if err != nil {
				return fmt.Errorf("the Perl amavisd-new: %v", err)
			}
			daemons[f] = perlDaemon{bin: bin}
		case report.Floor, report.FloorParts: // built below, into the work directory
		case report.Ours, report.OursSQL:
			bin, err := filepath.Abs(cfg.ours)
			if err != nil {
				return err
			}
			if _, err := os.Stat(bin); err != nil {
				return fmt.Errorf("our daemon: %v (build it with go build -o bin/amavisd ./cmd/amavisd)", err)
			}
			daemons[f] = oursDaemon{bin: bin}
		default:
			return fmt.Errorf("-filters: unknown %q", f)
		}
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}

	// A short directory: the clamd socket path must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "amavisbench")
	if err != nil {
		return err
	}
	if !cfg.keep {
		defer os.RemoveAll(dir)
	} else {
		logf("work directory %s is kept", dir)
	}
	env := &environment{dir: dir}
	if slices.Contains(cfg.filters, report.Floor) || slices.Contains(cfg.filters, report.FloorParts) {
		bin, err := buildFloor(dir)
		if err != nil {
			return err
		}
		daemons[report.Floor], daemons[report.FloorParts] = floorDaemon{bin: bin}, floorDaemon{bin: bin, parts: true}
	}
	for _, f := range []string{report.Ours, report.OursSQL} {
		if d, ok := daemons[f].(oursDaemon); ok {
			if err := d.probe(dir); err != nil {
				return err
			}
			daemons[f] = d
		}
	}
	if env.clamd, err = startClamd(dir, maxSessions(cfg)); err != nil {
		return err
	}
	defer env.clamd.stop(10 * time.Second)
	if d, ok := daemons[report.OursSQL].(oursDaemon); ok {
		if env.pg, err = startPostgres(dir); err != nil {
			return fmt.Errorf("PostgreSQL for ours-sql: %v", err)
		}
		defer env.pg.stop(30 * time.Second)
		daemons[report.OursSQL] = oursSQLDaemon{oursDaemon: d, pg: env.pg}
	}
	if env.sink, err = startSink(dir); err != nil {
		return err
	}
	defer env.sink.stop(5 * time.Second)

	allLoads := map[string]load{
		"2KB":   {key: "2KB", name: report.Load2KB, clean: plainMessage(2048)},
		"100KB": {key: "100KB", name: report.Load100KB, clean: largeMessage(100 * 1024)},
		// The memory load: each of 32 sessions holds one large message at once.
		"10MB":   {key: "10MB", name: report.Load10MB, clean: attachedMessage(7 << 20), sessions: []int{32}, messages: 64},
		"mix":    {key: "mix", name: report.LoadMix, clean: plainMessage(2048), infected: eicarMessage(), eicarEvery: 10},
		"spamd":  {key: "spamd", name: report.LoadSpamd, clean: plainMessage(2048), engine: "spamd"},
		"rspamd": {key: "rspamd", name: report.LoadRspamd, clean: plainMessage(2048), engine: "rspamd"},
	}
	var loads []load
	for _, name := range cfg.loads {
		l, ok := allLoads[name]
		if !ok {
			return fmt.Errorf("-loads: unknown %q", name)
		}
		loads = append(loads, l)
		if err := env.startEngine(l.engine, dir, slices.Max(cfg.sessions)); err != nil {
			return err
		}
	}
	defer env.stopEngines()

	started := time.Now()
	env.describe(cfg, daemons)
	var points []report.Point
	var failures []string
	for _, l := range loads {
		for _, s := range l.sessionCounts(cfg) {
			for _, c := range measureGroup(cfg, env, daemons, l, s) {
				if c.err != nil {
					msg := fmt.Sprintf("%s %s sessions=%d: %v", c.pt.Filter, l.name, s, c.err)
					logf("FAILED %s", msg)
					failures = append(failures, msg)
				}
				if len(c.pt.Samples) > 0 {
					points = append(points, c.pt)
				}
			}
			// Written after every group, so that an interrupted run
			// still leaves its results.
			if err := writeOutputs(cfg, env, points, failures, time.Since(started)); err != nil {
				return err
			}
		}
	}
	logf("done in %v; results in %s", time.Since(started).Round(time.Second), filepath.Join(cfg.out, "results.md"))
	if len(failures) > 0 {
		return fmt.Errorf("%d point(s) failed:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	return nil
}

// describe logs what is being measured, for the head of results.md.
func (env *environment) describe(cfg *config, daemons map[string]filterDaemon) {
	var b strings.Builder
	// go run names the binary in a temporary directory: show its base name.
	fmt.Fprintf(&b, "- command: `%s`\n", strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " "))
	fmt.Fprintf(&b, "- machine: %s, %d CPUs, %s\n", cpuModel(), runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- clamd: %s, EICAR-only database, MaxThreads %d\n", env.clamd.version(), maxSessions(cfg))
	if d, ok := daemons[report.Perl].(perlDaemon); ok {
		fmt.Fprintf(&b, "- Perl: %s\n", firstLine(d.bin, "-V"))
	}
	if d, ok := daemons[report.Ours].(oursDaemon); ok {
		fmt.Fprintf(&b, "- ours: %s (%s), source %s\n", firstLine(d.bin, "-V"), d.bin, sourceVersion())
		if len(d.omit) > 0 {
			fmt.Fprintf(&b, "- **ours ran WITHOUT %s**: this build does not know these settings yet\n", strings.Join(d.omit, ", "))
		}
	}
	env.header = b.String()
	logf("benchmark:\n%s", env.header)
}

// sourceVersion names the commit of the working tree the daemon was built
// from, and says when files differed from it.
func sourceVersion() string {
	rev := firstLine("git", "rev-parse", "--short", "HEAD")
	if rev == "" || strings.Contains(rev, " ") {
		return "unknown (no git)"
	}
	if firstLine("git", "status", "--porcelain", "--untracked-files=no") != "" {
		rev += " with uncommitted changes"
	}
	return rev
}

func firstLine(argv ...string) string {
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return runtime.GOARCH
}

const legend = `Loads: "2 KB" = a 2 KiB text/plain message; "100 KB" = a multipart message with a 74 KiB
binary base64 attachment; "2 KB + 10% EICAR" = the 2 KB message with every 10th message a small
multipart message carrying EICAR as a text attachment, which must be answered "250 2.7.0 Ok,
discarded" (virus checks really on); "10 MB" = a multipart message with a 7 MiB binary base64
attachment, always at 32 sessions, 64 messages a repetition after 32 to warm up (the memory
load: its figure is the peak RSS). Every load is sent by bench/loadgen (as Postfix's smtp-source -d,
which sent the clean loads before latencies were reported: one connection per session, reused, no
pipelining); it times each message from MAIL FROM to the reply after the final dot, and p50 / p99
are the median and 99th percentile of those times (means over the repetitions). Every clean
message must reach smtp-sink, or the point fails.
Each cell is mean ±sample standard deviation over the repetitions; reps.csv has each one with
the machine's load average. CPU is the filter's utime+stime (its reaped children included) per
message; clamd's CPU is shown separately. Peak RSS is VmHWM for a single process, else the
largest sum of the processes' RSS sampled every 100 ms (the Perl master and its children).
"floor" and "floor-parts": see the floors' table and bench/cmd/floorfilter.
Both daemons: Debian's defaults (clamd entry, banned-file rules, D_DISCARD for viruses with
quarantine and a notice to virus_admin), log_level 0 to a file, spam checks off except in the
loads "2 KB via spamd" / "2 KB via rspamd", where both ask the same engine (Perl's SpamdClient /
RspamdClient, Debian's spam levels; spamd on 127.0.0.1:783, SpamdClient's only address) and the
engine's CPU is measured over its process tree. Perl:
$enable_db off; at max_servers 1 amavis runs as one plain Net::Server process, which exits
after $max_requests tasks, so there $max_requests = 0 (elsewhere the default 20).
`

func writeOutputs(cfg *config, env *environment, points []report.Point, failures []string, took time.Duration) error {
	var md bytes.Buffer
	md.WriteString("# amavisgo vs amavisd-new: loadgen → filter → smtp-sink\n\n")
	md.WriteString(env.header)
	fmt.Fprintf(&md, "- repetitions: %d per point, about %gs each; run time %v\n\n", cfg.reps, cfg.seconds, took.Round(time.Second))
	if err := report.WriteMarkdown(&md, points); err != nil {
		return err
	}
	if err := report.WriteSpamMarkdown(&md, points); err != nil {
		return err
	}
	for _, n := range env.notes {
		md.WriteString("\n- " + n)
	}
	if len(env.notes) > 0 {
		md.WriteString("\n")
	}
	if err := report.WriteSQLCost(&md, points); err != nil {
		return err
	}
	if err := report.WriteFloor(&md, points); err != nil {
		return err
	}
	md.WriteString("\nTargets of the benchmark issue, for our daemon:\n\n")
	if err := report.WriteTargets(&md, points); err != nil {
		return err
	}
	md.WriteString("\n" + legend)
	if len(failures) > 0 {
		md.WriteString("\nFailed points:\n\n")
		for _, f := range failures {
			fmt.Fprintf(&md, "- %s\n", strings.ReplaceAll(f, "\n", " "))
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.md"), md.Bytes(), 0o644); err != nil {
		return err
	}
	for name, write := range map[string]func(*bytes.Buffer) error{
		"results.csv": func(b *bytes.Buffer) error { return report.WriteCSV(b, points) },
		"reps.csv":    func(b *bytes.Buffer) error { return report.WriteRepsCSV(b, points) },
		"msgs_per_s.png": func(b *bytes.Buffer) error {
			if len(points) == 0 {
				return nil
			}
			return report.WritePNG(b, points)
		},
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			return fmt.Errorf("%s: %v", name, err)
		}
		if b.Len() > 0 {
			if err := os.WriteFile(filepath.Join(cfg.out, name), b.Bytes(), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
