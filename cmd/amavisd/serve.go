package main

// Running the daemon: foreground, debug, and start (the same, detached into the background).
// The order follows amavis: read the configuration, claim the pid file, bind the sockets as
// root, create TEMPBASE and QUARANTINEDIR, switch to daemon_user, then serve; SIGHUP reloads,
// SIGTERM/SIGINT/SIGQUIT drain and stop.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"amavisgo/amavis"
	"amavisgo/conf"
	"amavisgo/internal/pidfile"
	"amavisgo/internal/privdrop"
	"amavisgo/internal/sdnotify"
)

// backgroundEnv marks the re-executed child of `start`; its value is the file descriptor of
// the pipe on which the child tells its parent "ok" or why it could not start.
const backgroundEnv = "AMAVISGO_BACKGROUND_READY_FD"

// verbStart runs the daemon in the background: it re-executes this program in a new session
// with stdio on /dev/null and waits until the child says it accepts connections, so that the
// exit status of `amavisd start` tells whether the daemon runs.
func verbStart(o *options) int {
	if fd := os.Getenv(backgroundEnv); fd != "" {
		os.Unsetenv(backgroundEnv)
		return runDaemon(o, os.NewFile(3, "ready"))
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), backgroundEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	w.Close()
	devnull.Close()
	msg, _ := io.ReadAll(r) // until the child writes and closes, or dies
	cmd.Process.Release()
	if s := strings.TrimSpace(string(msg)); s != "ok" {
		if s == "" {
			s = "the daemon exited during start-up"
		}
		fmt.Fprintln(os.Stderr, "amavisd:", s)
		return 1
	}
	return 0
}

// daemonRun is one running daemon and what it needs to reload and stop.
type daemonRun struct {
	o      *options
	d      *amavis.Daemon
	notify *sdnotify.Notifier
	log    func(format string, args ...any)
}

// runDaemon runs the daemon until a stop signal and returns the exit status. ready, if not
// nil, is the pipe to the parent of `start`: it receives "ok" once the daemon serves, or the
// reason it could not start, the latter only after the pid file is gone again.
func runDaemon(o *options, ready *os.File) int {
	err := serve(o, ready != nil, func() {
		if ready != nil {
			fmt.Fprintln(ready, "ok")
			ready.Close()
			ready = nil
		}
	})
	if err != nil {
		if ready != nil {
			fmt.Fprintln(ready, err)
			ready.Close()
		}
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	return 0
}

// serve starts the daemon, calls serving once it accepts connections, and returns when it
// has stopped. In the background the pid file is what `stop` needs: not writing it is fatal.
func serve(o *options, background bool, serving func()) error {
	// amavis's umask: what we write is readable by the group (clamd), never by others.
	unix.Umask(0o027)
	// Signals from now on: a SIGHUP during start-up must not kill us (its default action);
	// what arrives before we serve is handled once we do.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sig)
	cfg, err := o.loadConfig()
	if err != nil {
		return err
	}
	var id *privdrop.Identity
	if os.Geteuid() == 0 && cfg.DaemonUser != "" {
		if id, err = privdrop.Lookup(cfg.DaemonUser, cfg.DaemonGroup); err != nil {
			return err
		}
	}
	// The pid file first: a second daemon must say "already running", not fail to bind.
	// In the foreground a pid file that cannot be written is no reason not to run.
	pid := os.Getpid()
	ownPidFile := false
	if cfg.PidFile != "" {
		makePidDir(cfg.PidFile, id)
		switch err := pidfile.Create(cfg.PidFile, pid); {
		case err == nil:
			ownPidFile = true
			if id != nil { // the daemon user reads and removes it when it stops
				os.Chown(cfg.PidFile, id.UID, id.GID)
			}
		case errors.Is(err, pidfile.ErrRunning) || background:
			return err
		default:
			fmt.Fprintln(os.Stderr, "amavisd: (!) pid file:", err)
		}
	}
	defer func() {
		if ownPidFile {
			if err := pidfile.Remove(cfg.PidFile, pid); err != nil {
				fmt.Fprintln(os.Stderr, "amavisd: (!) removing the pid file:", err)
			}
		}
	}()

	if err := privdrop.MakeDirs(id, privdrop.Dir{Setting: "TEMPBASE", Path: cfg.TEMPBASE},
		privdrop.Dir{Setting: "QUARANTINEDIR", Path: cfg.QUARANTINEDIR}); err != nil {
		return err
	}

	log, err := amavis.NewLog(&cfg.Global, o.level, o.verb == "debug")
	if err != nil {
		return fmt.Errorf("log: %v", err)
	}
	defer log.Close()
	// the signing keys are read with the privileges we start with, as amavis reads them
	if _, err := amavis.DKIMKeys(cfg); err != nil {
		return fmt.Errorf("dkim_key: %v", err)
	}
	d := amavis.New(cfg, log)
	if err := listenAndDrop(d, id, cfg.AllowRunAsRoot); err != nil {
		return err
	}
	if o.profile != "" { // pprof.go; with the daemon user's privileges
		ln, err := startProfiler(o.profile)
		if err != nil {
			return err
		}
		defer ln.Close()
	}
	if id != nil {
		// Whoever takes over the daemon user must not be able to rewrite its configuration:
		// each file read, includes too.
		for _, f := range o.files {
			if err := checkConfigWritable(f); err != nil { // security.go
				return err
			}
		}
	}

	run := &daemonRun{o: o, d: d, notify: sdnotify.FromEnv(), log: func(format string, args ...any) {
		// A line starting with "(!)" is a warning: the log adds the mark itself.
		if rest, warn := strings.CutPrefix(format, "(!)"); warn {
			log.Logf(-1, rest, args...)
			return
		}
		log.Logf(0, format, args...)
	}}
	errc := make(chan error, 1)
	go func() { errc <- d.Serve() }()

	// amavis logs its sockets at level 1 (Net::Server's "Binding to ..." lines).
	startupDiagnostics(cfg, func(format string, args ...any) { d.Logf(1, format, args...) })
	run.logConfigWarnings()
	run.notify.Ready(statusLine(cfg))
	serving()
	for {
		select {
		case err := <-errc:
			return err
		case s := <-sig:
			if s == syscall.SIGHUP {
				run.reload()
				continue
			}
			return run.shutdown(s, errc)
		}
	}
}

// makePidDir creates a missing directory for the pid file, owned by the daemon user so that it
// can remove the file when it stops (/run is emptied at boot).
func makePidDir(pidFile string, id *privdrop.Identity) {
	dir := filepath.Dir(pidFile)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err == nil && id != nil {
		os.Chown(dir, id.UID, id.GID)
	}
}

// reload reads the configuration file again and hands it to the daemon; a configuration that
// does not load is refused and the old one stays.
func (r *daemonRun) reload() {
	r.notify.Reloading()
	defer r.notify.Ready(statusLine(r.d.Config()))
	// logrotate moved LOGFILE away before it sent the signal.
	if err := r.d.ReopenLog(); err != nil {
		r.log("(!)reload: can't reopen LOGFILE: %v", err)
	}
	cfg, err := r.o.loadConfig()
	if err == nil {
		err = cfg.CheckStartable()
	}
	if err == nil {
		_, err = amavis.DKIMKeys(cfg)
	}
	if err == nil {
		// New messages go to the new directories: they must be usable by us, as we are now.
		err = privdrop.MakeDirs(nil, privdrop.Dir{Setting: "TEMPBASE", Path: cfg.TEMPBASE},
			privdrop.Dir{Setting: "QUARANTINEDIR", Path: cfg.QUARANTINEDIR})
	}
	if err != nil {
		r.log("(!)Rejecting reload, some config files unreadable or erroneous: %v", err)
		return
	}
	r.logConfigWarnings()
	old := r.d.Config()
	for _, c := range restartOnly(old, cfg) {
		r.log("(!)reload: %s changed; it takes effect at the next restart", c)
	}
	// Reload refuses a configuration whose engines cannot be built, and logs why itself.
	r.d.Reload(cfg)
}

// logConfigWarnings logs, once per load, the commands a Perl configuration ran and each setting
// that is read but not used, with its FILE:LINE:COL.
func (r *daemonRun) logConfigWarnings() {
	for _, c := range r.o.commands {
		r.log("config: %s", c)
	}
	for _, w := range r.o.warnings {
		r.log("(!)config: %s", w)
	}
}

// restartOnly names the process-wide settings a reload cannot apply: sockets stay bound,
// privileges are gone, the log stays open.
func restartOnly(old, cfg *conf.Config) []string {
	var out []string
	check := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	check("inet_socket_port", fmt.Sprint(old.Listeners()) != fmt.Sprint(cfg.Listeners()))
	check("daemon_user", old.DaemonUser != cfg.DaemonUser)
	check("daemon_group", old.DaemonGroup != cfg.DaemonGroup)
	check("pid_file", old.PidFile != cfg.PidFile)
	check("LOGFILE", old.LOGFILE != cfg.LOGFILE)
	check("DO_SYSLOG", old.DO_SYSLOG != cfg.DO_SYSLOG)
	check("syslog_facility", old.SyslogFacility != cfg.SyslogFacility)
	check("syslog_ident", old.SyslogIdent != cfg.SyslogIdent)
	return out
}

// shutdown drains: the daemon stops accepting, idle sessions get 421, messages in flight get
// up to child_timeout to finish.
func (r *daemonRun) shutdown(s os.Signal, errc <-chan error) error {
	r.notify.Stopping()
	cfg := r.d.Config()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ChildTimeout)*time.Second)
	defer cancel()
	r.d.Logf(1, "Daemon received %s, shutting down", signalName(s))
	err := r.d.Shutdown(ctx)
	<-errc
	if err != nil {
		return fmt.Errorf("shutdown: %v", err)
	}
	return nil
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	}
	return s.String()
}

// statusLine is systemd's STATUS= text.
func statusLine(cfg *conf.Config) string {
	var names []string
	for _, l := range cfg.Listeners() {
		names = append(names, l.Network+":"+l.Address)
	}
	return "listening on " + strings.Join(names, ", ")
}

// listenAndDrop binds the daemon's sockets with the privileges it was started with, gives the
// Unix sockets to daemon_user (id; nil when not started as root) and switches to it, and
// refuses to go on as root unless the configuration allows it.
func listenAndDrop(d *amavis.Daemon, id *privdrop.Identity, allowRoot bool) error {
	if err := d.Listen(); err != nil {
		return err
	}
	if id != nil {
		if err := d.ChownUnixSockets(id.UID, id.GID); err != nil {
			return err
		}
		if err := privdrop.Drop(id); err != nil {
			return err
		}
	}
	if err := privdrop.CheckNotRoot(allowRoot); err != nil {
		return fmt.Errorf("%v\nSECURITY PROBLEM, ABORTING", err)
	}
	return nil
}
