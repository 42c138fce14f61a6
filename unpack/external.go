package unpack

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// external describes a format decoded by a program. Stream programs turn stdin (or the file
// their arguments name) into stdout; the others extract into a scratch directory of ours, cwd
// included.
type external struct {
	format   string
	programs []string // tried in order, the first found is used
	stream   bool
	args     func(prog, file, dir string) []string
}

// sevenZipArgs: a dummy password makes 7z fail on encrypted members instead of prompting.
func sevenZipArgs(file, dir string) []string {
	return []string{"x", "-y", "-bd", "-bso0", "-bsp0", "-pamavisgo", "-o" + dir, "--", file}
}

var externals = []external{
	{"F", []string{"unfreeze", "melt"}, true, func(string, string, string) []string { return []string{"-c"} }},
	{"Z", []string{"uncompress", "gzip"}, true, func(prog, _, _ string) []string {
		if prog == "gzip" {
			return []string{"-dc"}
		}
		return []string{"-c"}
	}},
	// lrzcat is given the file, not stdin: reading a pipe it buffers it in memory sized from
	// the machine's RAM (gigabytes), over externalMemoryLimit.
	{"lrz", []string{"lrzcat"}, true, func(_, file, _ string) []string { return []string{"-q", file} }},
	{"lzo", []string{"lzop"}, true, func(string, string, string) []string { return []string{"-dc"} }},
	{"arj", []string{"arj", "7z"}, false, func(prog, file, dir string) []string {
		if prog == "7z" {
			return sevenZipArgs(file, dir)
		}
		return []string{"x", "-y", "-i", file + "."} // "." stops arj from appending ".arj"
	}},
	{"arc", []string{"nomarch", "arc"}, false, func(prog, file, _ string) []string {
		if prog == "arc" {
			return []string{"x", file}
		}
		return []string{file}
	}},
	{"zoo", []string{"zoo", "unzoo"}, false, func(prog, file, _ string) []string {
		if prog == "unzoo" {
			return []string{"-x", file}
		}
		return []string{"xq", file}
	}},
	{"doc", []string{"ripole", "7z"}, false, func(prog, file, dir string) []string {
		if prog == "7z" {
			return sevenZipArgs(file, dir) // 7z reads OLE compound files too
		}
		return []string{"-i", file, "-d", dir}
	}},
	{"cab", []string{"cabextract"}, false, func(_, file, dir string) []string { return []string{"-q", "-d", dir, file} }},
	{"lha", []string{"7z", "lha"}, false, func(prog, file, dir string) []string {
		if prog == "lha" {
			return []string{"-xqw=" + dir, file}
		}
		return sevenZipArgs(file, dir)
	}},
	{"iso", []string{"7z"}, false, func(_, file, dir string) []string { return sevenZipArgs(file, dir) }},
}

// externalTimeout bounds one external program run (a variable for the tests).
var externalTimeout = 30 * time.Second

// command prepares a decoder program run in its own process group: at the time limit the
// whole group is killed, so that no child it started keeps our pipe open (or writes on).
func command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if prlimit != "" {
		// prlimit sets the limit on itself and then executes prog: no moment without it
		cmd = exec.CommandContext(ctx, prlimit, append([]string{"--data=" + strconv.Itoa(externalMemoryLimit), "--", prog}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, prog, args...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd
}

// externalMemoryLimit is the data (heap and anonymous mappings, RLIMIT_DATA) each external
// decoder may use: a hostile archive can ask a decompressor for gigabytes (dictionary sizes),
// and what it cannot get makes it fail on that member, not the machine. 512 MiB is far more
// than the dictionaries of mail-sized archives need (7-Zip's largest preset uses 64 MiB). The
// address space would be the wrong measure: glibc reserves 64 MiB of it per thread arena, so a
// limit on it would depend on the machine's core count.
const externalMemoryLimit = 512 << 20

// prlimit is util-linux's prlimit(1), which runs an external decoder under
// externalMemoryLimit; without it the limit is set on the started process (startLimited).
var prlimit, _ = exec.LookPath("prlimit")

// startLimited starts cmd; when prlimit(1) is missing it sets the memory limit on the process
// as soon as it runs.
func startLimited(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	if prlimit == "" {
		lim := unix.Rlimit{Cur: externalMemoryLimit, Max: externalMemoryLimit}
		unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_DATA, &lim, nil)
	}
	return nil
}

func externalDecoder(format string) decodeFunc {
	for _, e := range externals {
		if e.format == format {
			return func(j *job, p *Part) (bool, error) { return j.runExternal(e, p) }
		}
	}
	return nil
}

func (j *job) runExternal(e external, p *Part) (bool, error) {
	prog := j.u.progs[e.format]
	ctx, cancel := context.WithTimeout(j.ctx, externalTimeout)
	defer cancel()
	if e.stream {
		in, err := openPart(p)
		if err != nil {
			return true, err
		}
		defer in.Close()
		cmd := command(ctx, prog, e.args(filepath.Base(prog), p.Path, "")...)
		cmd.Stdin = in
		out, err := cmd.StdoutPipe()
		if err != nil {
			return true, internalError{err}
		}
		if err := startLimited(cmd); err != nil {
			return true, decodeError{err}
		}
		_, xerr := j.extract(p, "", out, filepath.Base(prog))
		if xerr != nil {
			cmd.Cancel()
		}
		werr := cmd.Wait()
		if xerr != nil {
			return true, xerr
		}
		if werr != nil {
			return true, decodeError{werr}
		}
		return false, nil
	}

	j.scratchN++
	dir := filepath.Join(j.dir, fmt.Sprintf(".x%d", j.scratchN))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return true, internalError{err}
	}
	defer os.RemoveAll(dir)
	cmd := command(ctx, prog, e.args(filepath.Base(prog), p.Path, dir)...)
	cmd.Dir = dir
	if err := startLimited(cmd); err != nil {
		return true, decodeError{err}
	}
	// the program's output is outside our writes: watch its size and stop it at the quota
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var werr error
	overQuota := false
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case <-tick.C:
			if dirSize(dir) > j.rem {
				overQuota = true
				cmd.Cancel()
			}
		}
	}
	if err := j.ctx.Err(); err != nil {
		return true, err
	}
	by := filepath.Base(prog)
	n, err := j.adopt(p, dir, by)
	if err != nil {
		return true, err
	}
	if overQuota {
		return true, holdError(fmt.Sprintf("Exceeded storage quota %d bytes by %s; last chunk %d bytes", j.avail, by, dirSize(dir)))
	}
	if werr != nil {
		return true, decodeError{werr}
	}
	return n == 0, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// adopt moves what a program extracted into parts under our names. WalkDir does not follow
// symbolic links; links and special files become metadata (L, S) and are deleted.
func (j *job) adopt(p *Part, dir, by string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return nil
		}
		t := d.Type()
		switch {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			n++
			return j.specialMember(p, d.Name(), "L", 0)
		case !t.IsRegular():
			n++
			return j.specialMember(p, d.Name(), "S", 0)
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			// a hard link may share its inode with a file outside: never adopt it
			n++
			return j.specialMember(p, d.Name(), "L", 0)
		}
		if err := j.charge(fi.Size(), by, false); err != nil {
			return err
		}
		m, err := j.newPart(p)
		if err != nil {
			return err
		}
		n++
		m.addName(memberName(d.Name()))
		m.Size = fi.Size()
		m.Path = filepath.Join(j.dir, m.Name)
		if err := os.Rename(path, m.Path); err != nil {
			m.Path = ""
			return internalError{err}
		}
		j.next = append(j.next, m)
		return nil
	})
	var h holdError
	var ie internalError
	if errors.As(err, &h) || errors.As(err, &ie) {
		return n, err
	}
	return n, nil
}
