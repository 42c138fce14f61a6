package scanners

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"amavisgo/internal/panics"
	"amavisgo/perlre"
)

const (
	// maxOutput bounds what we keep of a command's output (amavis: 200 KiB).
	maxOutput = 200 << 10
	// maxArgBytes is the argument list size amavis keeps under when a
	// command takes file names ("{}/*", "*"): POSIX's minimum.
	maxArgBytes = 4000
	// streamParallel bounds concurrent INSTREAM connections per message.
	streamParallel = 4
)

// engine is one enabled entry, ready to scan.
type engine struct {
	name    string
	backup  bool
	timeout time.Duration

	clean, infected, names    *perlre.Regexp
	cleanCodes, infectedCodes []int

	clamd *Clamd   // type clamd
	mode  scanMode // type clamd
	path  string   // type command: the program found
	args  []string // type command
}

// outcome is one engine's result on one message.
type outcome struct {
	infected bool
	names    []string
	output   string
}

func newEngine(e Entry, backup bool, path string) (*engine, error) {
	en := &engine{name: e.Name, backup: backup, timeout: e.Timeout,
		cleanCodes: e.CleanCodes, infectedCodes: e.InfectedCodes, path: path, args: e.Args}
	if en.timeout == 0 {
		en.timeout = DefaultTimeout
	}
	cleanRE, infectedRE, namesRE := e.CleanPattern, e.InfectedPattern, e.NamesPattern
	if e.kind() == TypeClamd {
		if cleanRE == "" && infectedRE == "" && namesRE == "" {
			cleanRE, infectedRE, namesRE = clamdCleanPattern, clamdInfectedPattern, clamdNamesPattern
		}
		var err error
		if en.clamd, err = NewClamd(e.Sockets); err != nil {
			return nil, err
		}
		if en.mode, err = parseQuery(e.Query); err != nil {
			return nil, err
		}
	}
	for _, p := range []struct {
		src string
		dst **perlre.Regexp
	}{{cleanRE, &en.clean}, {infectedRE, &en.infected}, {namesRE, &en.names}} {
		if p.src == "" {
			continue
		}
		re, err := perlre.Compile(p.src, "m")
		if err != nil {
			return nil, err
		}
		*p.dst = re
	}
	return en, nil
}

// scan runs the engine on one message; files lists the files under dir to
// scan (email.txt first, then parts/) for the engines that take a list.
func (en *engine) scan(ctx context.Context, dir string, files *fileList) (_ outcome, err error) {
	defer panics.Catch(&err) // a fault in reading one engine's output fails that engine only
	ctx, cancel := context.WithTimeout(ctx, en.timeout)
	defer cancel()
	if en.clamd != nil {
		return en.scanClamd(ctx, dir, files)
	}
	return en.scanCommand(ctx, dir, files)
}

// judge applies amavis's rules to one output: infected first, then clean,
// anything else is a failure. code is the exit status, -1 for clamd.
func (en *engine) judge(output string, code int) (outcome, error) {
	o := outcome{output: output}
	infected := code >= 0 && slices.Contains(en.infectedCodes, code)
	if !infected && en.infected != nil {
		m, err := en.infected.MatchString(output)
		if err != nil {
			return o, err
		}
		infected = m
	}
	if infected {
		o.infected = true
		if en.names != nil {
			names, err := en.names.Captures(output)
			if err != nil {
				return o, err
			}
			o.names = names
		}
		if len(o.names) == 0 {
			o.names = []string{""} // amavis: an infection always has a name list
		}
		return o, nil
	}
	if en.clean == nil && len(en.cleanCodes) == 0 {
		return o, errors.New("clean, but inconclusive (no clean criterion)")
	}
	clean := code >= 0 && slices.Contains(en.cleanCodes, code)
	if !clean && en.clean != nil {
		m, err := en.clean.MatchString(output)
		if err != nil {
			return o, err
		}
		clean = m
	}
	if clean {
		return o, nil
	}
	if code >= 0 {
		return o, fmt.Errorf("unexpected exit %d, output=%q", code, trimOutput(output))
	}
	return o, fmt.Errorf("unexpected output=%q", trimOutput(output))
}

func (en *engine) scanClamd(ctx context.Context, dir string, files *fileList) (outcome, error) {
	// The list is made before asking clamd: failing to make it says nothing about clamd.
	var list []string
	if slices.ContainsFunc(en.clamd.addrs, func(sa socketAddr) bool { return en.modeFor(sa) == modeInstream }) {
		var err error
		if list, err = files.get(); err != nil {
			return outcome{}, fmt.Errorf("run_av error: %w", err)
		}
	}
	var lines []string
	err := en.clamd.ask(ctx, en.name, func(ctx context.Context, sa socketAddr) (err error) {
		if mode := en.modeFor(sa); mode == modeInstream {
			lines, err = streamFiles(ctx, sa, dir, list)
		} else {
			lines, err = command(ctx, sa, string(mode)+" "+dir)
		}
		return err
	})
	if err != nil {
		return outcome{}, fmt.Errorf("run_av error: %w", err)
	}
	return en.judge(joinLines(lines), -1)
}

// modeFor is how the engine asks clamd at sa: INSTREAM to a TCP clamd
// elsewhere, otherwise the entry's directory scan (MULTISCAN when automatic).
func (en *engine) modeFor(sa socketAddr) scanMode {
	switch {
	case sa.stream:
		return modeInstream
	case en.mode != modeAuto:
		return en.mode
	case sa.local():
		return modeMultiscan
	}
	return modeInstream
}

// streamFiles sends every file by INSTREAM and rewrites clamd's
// "stream: ..." replies to "<path>: ...", as amavis does, so that the
// entry's patterns read them like CONTSCAN output.
func streamFiles(ctx context.Context, sa socketAddr, dir string, files []string) ([]string, error) {
	lines := make([]string, len(files))
	errs := make([]error, len(files))
	sem := make(chan struct{}, streamParallel)
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			defer panics.Catch(&errs[i])
			fh, err := os.Open(f)
			if err != nil {
				errs[i] = err
				return
			}
			defer fh.Close()
			line, err := instream(ctx, sa, fh)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", relPath(dir, f), err)
				return
			}
			lines[i] = f + ": " + strings.TrimPrefix(line, "stream: ")
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Like amavis, keep the findings; one OK line stands for a clean result.
	var out []string
	for _, l := range lines {
		if !strings.HasSuffix(l, ": OK") {
			out = append(out, l)
		}
	}
	if len(out) == 0 && len(lines) > 0 {
		out = lines[:1]
	}
	return out, nil
}

func (en *engine) scanCommand(ctx context.Context, dir string, files *fileList) (outcome, error) {
	var all outcome
	var out strings.Builder
	var list []string
	if slices.ContainsFunc(en.args, isFilesArg) {
		var err error
		if list, err = files.get(); err != nil {
			return all, err
		}
	}
	for _, argv := range expandArgs(en.args, dir, list) {
		output, code, err := runProgram(ctx, en.path, argv, dir)
		if err != nil {
			return all, err
		}
		o, err := en.judge(output, code)
		if err != nil {
			return all, err
		}
		out.WriteString(output)
		if o.infected {
			all.infected = true
			all.names = append(all.names, o.names...)
		}
	}
	all.output = out.String()
	return all, nil
}

// isFilesArg tells an argument that stands for the files to scan.
func isFilesArg(a string) bool { return a == "{}/*" || a == "*" }

// expandArgs turns the argument template into one or more argument lists.
// "{}/*" and "*" collect file names (absolute, or relative to dir), as many
// per run as fit in maxArgBytes; "{}" is replaced by dir wherever it occurs.
func expandArgs(tmpl []string, dir string, files []string) [][]string {
	multi := slices.ContainsFunc(tmpl, isFilesArg)
	subst := func(a string) string { return strings.ReplaceAll(a, "{}", dir) }
	if !multi {
		argv := make([]string, len(tmpl))
		for i, a := range tmpl {
			argv[i] = subst(a)
		}
		return [][]string{argv}
	}
	fixed := 0
	for _, a := range tmpl {
		if a != "{}/*" && a != "*" {
			fixed += len(subst(a)) + 1
		}
	}
	var runs [][]string
	for k := 0; k < len(files); {
		size := fixed
		var batch []string
		for ; k < len(files); k++ {
			add := 0
			for _, a := range tmpl {
				if a == "{}/*" {
					add += len(files[k]) + 1
				} else if a == "*" {
					add += len(relPath(dir, files[k])) + 1
				}
			}
			if len(batch) > 0 && size+add > maxArgBytes {
				break
			}
			size += add
			batch = append(batch, files[k])
		}
		var argv []string
		for _, a := range tmpl {
			switch a {
			case "{}/*":
				argv = append(argv, batch...)
			case "*":
				for _, f := range batch {
					argv = append(argv, relPath(dir, f))
				}
			default:
				argv = append(argv, subst(a))
			}
		}
		runs = append(runs, argv)
	}
	return runs
}

// runProgram runs a scanner directly (no shell) in its own process group,
// so that a time-out kills the scanner and whatever it started.
func runProgram(ctx context.Context, path string, argv []string, dir string) (output string, code int, err error) {
	cmd := exec.CommandContext(ctx, path, argv...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	buf := &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = buf, buf
	err = cmd.Run()
	output = buf.String()
	if ctx.Err() != nil {
		return output, -1, fmt.Errorf("%s: %w", filepath.Base(path), ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return output, -1, fmt.Errorf("%s: killed by signal %d, output=%q", filepath.Base(path), ws.Signal(), trimOutput(output))
		}
		return output, ee.ExitCode(), nil
	}
	if err != nil {
		return output, -1, err
	}
	return output, 0, nil
}

// limitedBuffer keeps the first max bytes written and discards the rest,
// so a chatty scanner cannot exhaust memory.
type limitedBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// trimOutput shortens output for a log line, keeping its end (amavis keeps
// the last 800 characters).
func trimOutput(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return s
}

func relPath(dir, f string) string {
	if r, err := filepath.Rel(dir, f); err == nil {
		return r
	}
	return f
}
