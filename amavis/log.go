package amavis

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"amavisgo/conf"
)

// Log writes amavis's log lines: to syslog when DO_SYSLOG, else to LOGFILE when set, else to
// stderr; in debug mode everything goes to stderr. A line is written when its level (-3..5) is
// at most the effective log_level.
type Log struct {
	mu       sync.Mutex
	sys      sysWriter
	w        io.Writer // LOGFILE or stderr
	file     *os.File
	path     string // LOGFILE, reopened on reload (logrotate.go)
	stderr   bool
	debug    bool
	hostname string
	progname string
	pid      int
	buf      []byte

	// override is the -d level (or -1000 when not given); it beats log_level of any bank.
	override atomic.Int32
	// counted is told the level of every line written (the metrics' log_entries_total).
	counted atomic.Pointer[func(level int)]
}

// countLines has f told the level of every line written from now on.
func (l *Log) countLines(f func(level int)) { l.counted.Store(&f) }

// sysWriter is the part of *syslog.Writer the log uses (one method per priority).
type sysWriter interface {
	Debug(string) error
	Info(string) error
	Notice(string) error
	Warning(string) error
	Err(string) error
	Crit(string) error
	Close() error
}

// syslogNetwork and syslogAddr say where the syslog daemon listens; empty: the local one
// (/dev/log). Tests point them at a socket of their own.
var syslogNetwork, syslogAddr string

// NoOverride means "no -d given": log_level of the policy bank applies.
const NoOverride = -1000

// NewLog opens the log destination of g. debugLevel is the -d argument (NoOverride when not
// given); debug is the "debug" verb (all levels, to stderr, with milliseconds).
func NewLog(g *conf.Global, debugLevel int, debug bool) (*Log, error) {
	l := &Log{hostname: g.Myhostname, progname: os.Args[0], pid: os.Getpid(), debug: debug}
	if debug && debugLevel == NoOverride {
		debugLevel = 5
	}
	l.override.Store(int32(debugLevel))
	switch {
	case debug:
		l.w, l.stderr = os.Stderr, true
	case g.DO_SYSLOG:
		w, err := syslog.Dial(syslogNetwork, syslogAddr, syslog.Priority(g.SyslogFacilityCode()<<3)|syslog.LOG_INFO, g.SyslogIdent)
		if err != nil {
			// No syslog daemon (a fresh machine, a container): the lines go to stderr, which
			// systemd's journal keeps, rather than nowhere.
			fmt.Fprintf(os.Stderr, "amavisd: DO_SYSLOG is set but syslog is not reachable (%v); logging to stderr\n", err)
			l.w, l.stderr = os.Stderr, true
			break
		}
		l.sys = w
	case g.LOGFILE != "":
		f, err := os.OpenFile(g.LOGFILE, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0640)
		if err != nil {
			return nil, err
		}
		l.w, l.file, l.path = f, f, g.LOGFILE
	default:
		l.w, l.stderr = os.Stderr, true
	}
	return l, nil
}

// Close closes the log file or the syslog connection.
func (l *Log) Close() error {
	switch {
	case l.sys != nil:
		return l.sys.Close()
	case l.file != nil:
		return l.file.Close()
	}
	return nil
}

// level is the effective log level given a policy's log_level.
func (l *Log) level(policyLevel int) int {
	if o := int(l.override.Load()); o != NoOverride {
		return o
	}
	return policyLevel
}

// Logf writes one process-level line (no log id) at level, if level is at most the effective
// log level: what the command line itself has to say (a refused reload, a stop).
func (l *Log) Logf(level int, format string, args ...any) {
	if level <= l.level(0) {
		l.logf("", level, format, args...)
	}
}

// logf writes one line for task id (a log id such as "01234-01", "" for none).
func (l *Log) logf(id string, level int, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	msg = sanitize(msg)
	if f := l.counted.Load(); f != nil {
		(*f)(level)
	}
	mark := ""
	switch {
	case level <= -2:
		mark = "(!!)"
	case level == -1:
		mark = "(!)"
	}
	prefixID := ""
	if id != "" {
		prefixID = "(" + id + ") "
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sys != nil {
		l.syslog(level, prefixID, mark, msg)
		return
	}
	b := l.buf[:0]
	now := time.Now()
	switch {
	case l.debug:
		b = now.AppendFormat(b, "Jan _2 15:04")
		b = fmt.Appendf(b, ":%06.3f %s %s[%d]: ", float64(now.Second())+float64(now.Nanosecond())/1e9,
			l.hostname, l.progname, l.pid)
	case l.stderr:
		b = fmt.Appendf(b, "<%d>", syslogPriority(level))
	default:
		b = now.AppendFormat(b, "Jan _2 15:04:05 ")
		b = fmt.Appendf(b, "%s %s[%d]: ", l.hostname, l.progname, l.pid)
	}
	b = append(b, prefixID...)
	b = append(b, mark...)
	b = append(b, msg...)
	b = append(b, '\n')
	l.w.Write(b) // one write per line: lines of concurrent sessions do not interleave
	l.buf = b
}

// logline_maxlen: longer lines are split for syslog with "..." continuation marks.
const loglineMaxlen = 980

func (l *Log) syslog(level int, id, mark, msg string) {
	pre := mark
	for len(id)+len(pre)+len(msg) > loglineMaxlen {
		avail := loglineMaxlen - len(id) - len(pre) - 3
		l.sysWrite(level, id+pre+msg[:avail]+"...")
		pre, msg = mark+"...", msg[avail:]
	}
	l.sysWrite(level, id+pre+msg)
}

func (l *Log) sysWrite(level int, s string) {
	switch p := syslogPriority(level); p {
	case 7:
		l.sys.Debug(s)
	case 6:
		l.sys.Info(s)
	case 5:
		l.sys.Notice(s)
	case 4:
		l.sys.Warning(s)
	case 3:
		l.sys.Err(s)
	default:
		l.sys.Crit(s)
	}
}

// syslogPriority maps amavis's levels to syslog priorities: >=3 debug, 1-2 info, 0 notice,
// -1 warning, -2 err, below crit.
func syslogPriority(level int) int {
	switch {
	case level >= 3:
		return 7
	case level >= 1:
		return 6
	case level == 0:
		return 5
	case level == -1:
		return 4
	case level == -2:
		return 3
	}
	return 2
}

// sanitize escapes control characters as amavis does (\xNN), so that one call is one line.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "\\x%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// taskLog is the log as one task (a connection, a message) sees it: its log id and the
// log_level of its policy bank. It implements smtp.Logger.
type taskLog struct {
	l     *Log
	id    string
	level int
}

func (t *taskLog) Enabled(level int) bool { return level <= t.l.level(t.level) }

func (t *taskLog) Logf(level int, format string, args ...any) {
	if t.Enabled(level) {
		t.l.logf(t.id, level, format, args...)
	}
}
