package main

// The operator's verbs (amavis's are in Amavis.pm, after usage) and those that do not run the
// daemon in this process: showconfig, configtest, stop and reload, with amavis's messages.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"amavisgo/amavis"
	"amavisgo/conf"
	"amavisgo/internal/pidfile"
	"amavisgo/notify"
	"amavisgo/perlconf"
)

// options is the parsed command line.
type options struct {
	confFiles []string // -c, in order (directories are read as Debian's conf.d); none = built-in defaults
	// warnings of the last Perl configuration loaded: settings read but not used
	warnings []string
	// files are the configuration files the last load read, includes too
	files []string
	// text is the last configuration loaded as TOML (a Perl configuration as conf read it)
	text []byte
	// commands are the backticks a Perl configuration ran, with their positions
	commands []string
	level    int    // -d; amavis.NoOverride when not given
	profile  string // -P: the profiler's loopback address, "" for none (pprof.go)
	over     overrides
	verb     string
	args     []string // after the verb (sql-cleanup's options)
}

// loadConfig reads the configuration (or takes the defaults) and applies the command line.
func (o *options) loadConfig() (*conf.Config, error) {
	c, err := o.readConfig()
	if err != nil {
		return nil, err
	}
	if o.level != amavis.NoOverride {
		c.LogLevel = o.level
	}
	return c, o.over.apply(c)
}

// readConfig reads the -c files: one TOML file through conf, anything else (Perl files, conf.d
// directories, several files mixed) through perlconf, which tells Perl from TOML by content.
func (o *options) readConfig() (*conf.Config, error) {
	o.warnings, o.files, o.text, o.commands = nil, nil, nil, nil
	if len(o.confFiles) == 0 {
		return conf.Default(), nil
	}
	files, err := perlconf.Expand(o.confFiles)
	if err != nil {
		return nil, err
	}
	if len(files) == 1 {
		if text, err := os.ReadFile(files[0]); err == nil && !perlconf.IsPerl(text) {
			o.files, o.text = files, text
			return conf.Parse(files[0], text)
		}
	}
	r, err := perlconf.Load(files, perlconf.Options{})
	if err != nil {
		return nil, err
	}
	o.warnings, o.files, o.text, o.commands = r.Warnings, r.Files, r.TOML, r.Commands
	return r.Config, nil
}

// runVerb carries out the verb and returns the exit status.
func runVerb(o *options) int {
	switch o.verb {
	case "foreground", "debug":
		return runDaemon(o, nil)
	case "start":
		return verbStart(o)
	case "restart":
		// amavis: stop a running daemon (if any), start again. No pause: Go's listeners reuse
		// the address at once.
		c, err := o.loadConfig()
		if err != nil {
			fmt.Fprintln(os.Stderr, "amavisd:", err)
			return 1
		}
		if _, err := daemonPID(c.PidFile); err == nil {
			if err := verbStop(c.PidFile, time.Duration(c.ChildTimeout)*time.Second+10*time.Second, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "amavisd:", err)
				return 1
			}
		}
		return verbStart(o)
	case "selftest":
		return verbSelftest(o, os.Stdout)
	case "agent", "nanny":
		if err := verbMonitor(o, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "amavisd:", err)
			return 1
		}
		return 0
	case "sql-cleanup":
		if err := verbSQLCleanup(o, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "amavisd:", err)
			return 1
		}
		return 0
	case "configtest", "test-config":
		if err := verbConfigtest(o, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "amavisd:", err)
			return exConfig
		}
		return 0
	}
	if o.verb != "showconfig" && o.verb != "stop" && o.verb != "reload" {
		// Said before the configuration is read: a typo is not a configuration problem.
		fmt.Fprintf(os.Stderr, "amavisd: %s: Unknown command line parameter: %s\n", amavis.Version, o.verb)
		return 1
	}
	c, err := o.loadConfig()
	if err != nil && (o.verb == "stop" || o.verb == "reload") {
		// A broken file must not keep the operator from stopping the daemon, and a reload
		// is refused by the daemon itself, which logs why and keeps its configuration.
		fmt.Fprintln(os.Stderr, "amavisd: (!)", err)
		c, err = lenientConfig(o.confFiles)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	switch o.verb {
	case "showconfig":
		err = c.Show(os.Stdout)
	case "stop":
		err = verbStop(c.PidFile, time.Duration(c.ChildTimeout)*time.Second+10*time.Second, os.Stdout)
	case "reload":
		err = verbReload(c.PidFile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	return 0
}

// lenientConfig reads only what stop and reload need from a file that does not load: pid_file
// and MYHOME (of which pid_file's default is made), and child_timeout.
func lenientConfig(paths []string) (*conf.Config, error) {
	files, err := perlconf.Expand(paths)
	if err != nil {
		return nil, err
	}
	var v struct {
		MYHOME       string `toml:"MYHOME"`
		PidFile      string `toml:"pid_file"`
		ChildTimeout int    `toml:"child_timeout"`
	}
	if text, err := os.ReadFile(firstOf(files)); len(files) == 1 && err == nil && !perlconf.IsPerl(text) {
		if _, err := toml.Decode(string(text), &v); err != nil {
			return nil, fmt.Errorf("%s: cannot even find pid_file: %v", files[0], err)
		}
	} else {
		// Perl: the files are evaluated as far as they go; a broken one is left out, the
		// others still set pid_file (Debian's 10-debian_scripts does).
		in := perlconf.NewInterp()
		for _, f := range files {
			in.RunFile(f)
		}
		v.MYHOME, v.PidFile = in.Scalar("MYHOME").String(), in.Scalar("pid_file").String()
		v.ChildTimeout = int(in.Scalar("child_timeout").Number())
	}
	c := conf.Default()
	if v.ChildTimeout > 0 {
		c.ChildTimeout = v.ChildTimeout
	}
	c.PidFile = v.PidFile
	if c.PidFile == "" {
		home := c.MYHOME
		if v.MYHOME != "" {
			home = v.MYHOME
		}
		c.PidFile = strings.TrimSuffix(home, "/") + "/amavisd.pid"
	}
	return c, nil
}

func firstOf(files []string) string {
	if len(files) == 0 {
		return ""
	}
	return files[0]
}

// overrides are the command-line settings that beat the configuration file (-m, -p).
type overrides struct {
	maxServers int      // -m; 0 = not given
	ports      []string // -p, repeatable
}

// apply writes the overrides into a loaded configuration, so that showconfig and the daemon
// see the same values.
func (o overrides) apply(c *conf.Config) error {
	if o.maxServers != 0 {
		if o.maxServers < 1 {
			return fmt.Errorf("-m %d: max_servers must be at least 1", o.maxServers)
		}
		c.MaxServers = o.maxServers
	}
	if len(o.ports) > 0 {
		c.InetSocketPort = conf.Sockets(o.ports)
		c.UnixSocketname = "" // amavis: -p replaces every listen socket
	}
	return nil
}

// exConfig is sysexits' EX_CONFIG, configtest's exit status for a configuration that does not load.
const exConfig = 78

// verbConfigtest loads the configuration and checks what a start needs beyond its syntax
// (conf.CheckStartable). An error names the file, line and key.
func verbConfigtest(o *options, stdout io.Writer) error {
	c, err := o.loadConfig()
	if err != nil {
		return err
	}
	if err := c.CheckStartable(); err != nil {
		return err
	}
	// the notification templates, as the daemon reads them at start
	if err := notify.New(c, nil).Check(); err != nil {
		return err
	}
	for _, w := range o.warnings {
		fmt.Fprintln(os.Stderr, "amavisd: warning:", w)
	}
	name := c.File
	if name == "" {
		name = "(built-in defaults)"
	}
	fmt.Fprintf(stdout, "amavisd: configuration %s is OK\n", name)
	return nil
}

// daemonPID finds the running daemon: $MAINPID (systemd's ExecReload/ExecStop environment) or
// the pid file.
func daemonPID(pidFile string) (int, error) {
	if s := os.Getenv("MAINPID"); s != "" {
		if pid, err := strconv.Atoi(s); err == nil && pid > 0 {
			return pid, nil
		}
	}
	return pidfile.Running(pidFile)
}

// stopPoll is how often, at most, `stop` looks whether the daemon is gone; it starts at 5 ms
// because an idle daemon is gone at once.
const stopPoll = 100 * time.Millisecond

// verbStop sends SIGTERM to the daemon and waits for it to go: messages in flight finish
// first (within child_timeout), so the wait before SIGKILL is child_timeout plus a margin,
// not amavis's fixed 60 s, which could cut a long message short.
func verbStop(pidFile string, wait time.Duration, stdout io.Writer) error {
	pid, err := daemonPID(pidFile)
	if err != nil {
		var nr *pidfile.NotRunning
		if errors.As(err, &nr) {
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return fmt.Errorf("The amavisd daemon is apparently not running, cannot stop it (%s)", nr.Why)
		}
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("Can't SIGTERM amavisd[%d]: %v", pid, err)
	}
	start, lastSaid, poll := time.Now(), time.Now(), 5*time.Millisecond
	sig := "SIGTERM"
	for {
		time.Sleep(poll)
		poll = min(2*poll, stopPoll)
		if gone(pid) {
			break
		}
		if sig == "SIGTERM" && time.Since(start) > wait {
			fmt.Fprintf(os.Stderr, "Sending SIGKILL to amavisd[%d]\n", pid)
			syscall.Kill(pid, syscall.SIGKILL)
			sig = "SIGKILL"
		}
		if time.Since(lastSaid) >= 5*time.Second {
			fmt.Fprintf(stdout, "Waiting for the process [%d] to terminate\n", pid)
			lastSaid = time.Now()
		}
	}
	fmt.Fprintf(stdout, "Daemon [%d] terminated by %s\n", pid, sig)
	return nil
}

// gone reports whether a process has exited: it no longer exists, or it is a zombie that its
// new parent (we are not it: the daemon left us at start) has not reaped yet.
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	// "pid (comm) S ...": the state follows the last ')', as comm may contain one.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// verbReload sends SIGHUP: the daemon reads its configuration again.
func verbReload(pidFile string) error {
	pid, err := daemonPID(pidFile)
	if err != nil {
		var nr *pidfile.NotRunning
		if errors.As(err, &nr) {
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return fmt.Errorf("The amavisd daemon is apparently not running, cannot reload it (%s)", nr.Why)
		}
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil && !errors.Is(err, syscall.ESRCH) {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("Can't SIGHUP amavisd[%d]: %v", pid, err)
	}
	return nil
}
