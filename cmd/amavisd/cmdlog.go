package main

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strings"
	"time"

	"amavisgo/conf"
)

// cmdLog writes cmd/amavisd's own lines (a refused reload, the listen sockets, a stop) where
// the daemon's log goes: syslog when DO_SYSLOG, else LOGFILE, else stderr; debug sends
// everything to stderr. A line starting with "(!)" is a warning. It exists because package
// amavis does not export a logging call yet (/work/notes/ops-needs.md); it is opened before
// privileges are dropped, as the daemon's log is.
type cmdLog struct {
	sys  *syslog.Writer
	w    io.Writer
	file *os.File
	host string
}

func newCmdLog(g *conf.Global, debug bool) (*cmdLog, error) {
	l := &cmdLog{w: os.Stderr, host: g.Myhostname}
	switch {
	case debug:
	case g.DO_SYSLOG:
		w, err := syslog.New(syslog.Priority(g.SyslogFacilityCode()<<3)|syslog.LOG_NOTICE, g.SyslogIdent)
		if err != nil {
			return nil, fmt.Errorf("syslog: %v", err)
		}
		l.sys = w
	case g.LOGFILE != "":
		f, err := os.OpenFile(g.LOGFILE, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, err
		}
		l.w, l.file = f, f
	}
	return l, nil
}

func (l *cmdLog) logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch {
	case l.sys != nil && strings.HasPrefix(msg, "(!)"):
		l.sys.Warning(msg)
	case l.sys != nil:
		l.sys.Notice(msg)
	case l.file != nil:
		fmt.Fprintf(l.w, "%s %s %s[%d]: %s\n", time.Now().Format("Jan _2 15:04:05"), l.host, os.Args[0], os.Getpid(), msg)
	default:
		fmt.Fprintf(l.w, "amavisd: %s\n", msg)
	}
}

func (l *cmdLog) Close() error {
	switch {
	case l.sys != nil:
		return l.sys.Close()
	case l.file != nil:
		return l.file.Close()
	}
	return nil
}
