package amavis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/ldapdb"
	"amavisgo/notify"
	"amavisgo/quarantine"
	"amavisgo/quarantine/ampdp"
	"amavisgo/scanners"
	"amavisgo/spam"
	"amavisgo/unpack"
)

// engines are the parts of the message flow that a configuration builds: the decoder, the
// virus scanners, the quarantine, the notifier and the AM.PDP release server. They are built
// at start-up and again on reload, and a connection keeps the set it started with.
type engines struct {
	cfg      *conf.Config
	unpacker *unpack.Unpacker
	av       *scanners.Set
	spam     *spam.Set
	store    *quarantine.Store
	notifier *notify.Notifier
	release  *ampdp.Server
	sql      *sqlEngine     // storage_sql_dsn and lookup_sql_dsn (sql.go)
	ldap     *ldapdb.Client // enable_ldap: the directory of default_ldap (ldap.go)
}

// newEngines builds the engines of cfg. The sender used for notifications, quarantine
// copies to addresses and releases is the daemon's own SMTP client with its connection cache.
func (d *Daemon) newEngines(cfg *conf.Config) (*engines, error) {
	process := &taskLog{l: d.log, level: cfg.LogLevel}
	av, err := scanners.NewSet(cfg.AvScanners, cfg.AvScannersBackup, scanners.Options{
		FirstInfectedStopsScan: cfg.FirstInfectedStopsScan,
		Path:                   cfg.Path,
		Logf:                   process.Logf,
	})
	if err != nil {
		return nil, err
	}
	lim := unpack.Limits{
		MaxLevels: cfg.MAXLEVELS, MaxFiles: cfg.MAXFILES,
		MinExpansionQuota: cfg.MIN_EXPANSION_QUOTA, MaxExpansionQuota: cfg.MAX_EXPANSION_QUOTA,
		MinExpansionFactor: cfg.MIN_EXPANSION_FACTOR, MaxExpansionFactor: cfg.MAX_EXPANSION_FACTOR,
	}
	path := cfg.Path
	if len(path) == 0 {
		path = nil // unpack searches $PATH then, as scanners do
	}
	spamSet, err := newSpamSet(cfg)
	if err != nil {
		return nil, err
	}
	sender := &amavissmtp.Sender{LocalhostName: cfg.LocalhostName, Timeout: 2 * time.Minute, Pool: d.pool}
	store := quarantine.NewStore(cfg, countingSender{Sender: sender, metrics: d.metrics, kind: "SubmitQuar"})
	e := &engines{
		cfg:      cfg,
		unpacker: unpack.New(lim, path, func(format string, args ...any) { process.Logf(1, format, args...) }),
		av:       av,
		spam:     spamSet,
		store:    store,
		notifier: notify.New(cfg, countingSender{Sender: sender, metrics: d.metrics}),
		ldap:     newLDAP(cfg),
	}
	// their records obey the configuration's log_level (a release's SEND line is level 1)
	logger := slog.New(&slogHandler{l: d.log, level: cfg.LogLevel})
	e.notifier.Log = logger
	if err := e.notifier.Check(); err != nil {
		return nil, err
	}
	if e.sql, err = d.newSQL(cfg, store, process); err != nil {
		return nil, err
	}
	e.release = &ampdp.Server{Config: cfg, Store: store, Sender: sender, Log: logger}
	e.release.Check = d.ampdpChecker(e) // request=AM.PDP: amavis/ampdp.go
	return e, nil
}

// diagnose logs what start-up found, in amavis's words so that log parsers (logwatch's amavis
// service) know the lines: each AV engine reachable (clamd's VERSION) or not, as Amavis::AV and
// Amavis.pm's find_external_programs log them, and one line per decoder: missing ones at level
// 0 with the programs tried, found and internal ones at level 1.
func (e *engines) diagnose(ctx context.Context, tl *taskLog) {
	if !e.av.Configured() {
		// a warning, which log parsers list as such
		tl.Logf(-1, "WARN: No virus scanners configured (av_scanners is empty): mail is not scanned for viruses")
	}
	for _, st := range e.av.Diagnose(ctx) {
		kind := "primary"
		if st.Backup {
			kind = "secondary"
		}
		switch {
		case st.Err != nil:
			tl.Logf(1, "Using %s av scanner %s: NOT AVAILABLE: %v", kind, st.Name, st.Err)
		case st.Program != "":
			tl.Logf(0, "Found %s av scanner %s at %s", kind, st.Name, st.Program)
		}
		for _, a := range st.Addrs {
			if a.Err != nil {
				tl.Logf(-1, "%s: Can't connect to %s: %s", st.Name, socketName(a.Addr), reason(a.Err))
			} else {
				tl.Logf(0, "Found %s av scanner %s at %s: %s", kind, st.Name, a.Addr, a.Version)
			}
		}
	}
	progs := e.unpacker.Programs()
	formats := make([]string, 0, len(progs))
	for f := range progs {
		formats = append(formats, f)
	}
	slices.Sort(formats)
	var missing []string
	for _, f := range formats {
		switch path := progs[f]; path {
		case "":
			missing = append(missing, f)
			tl.Logf(0, "No ext program for   .%s, tried: %s", f, strings.Join(unpack.Candidates(f), ", "))
		case "internal":
			tl.Logf(1, "Internal decoder for .%-4s", f)
		default:
			tl.Logf(1, "Found decoder for    .%-4s at %s", f, path)
		}
	}
	for _, f := range missing {
		tl.Logf(0, "No decoder for       .%-4s", f)
	}
}

// socketName names a scanner's socket as amavis's connection errors do.
func socketName(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return "UNIX socket " + addr
	}
	return "INET socket " + addr
}

// reason is the system's error text of err ("Connection refused"), else its first line.
func reason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		return strings.ToUpper(msg[:1]) + msg[1:]
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	return first
}

// slogHandler maps slog levels to amavis's: errors -2, warnings -1, info 0, debug 2, and a
// level between debug and info to 1.
type slogHandler struct {
	l     *Log
	id    string
	level int // log_level: records above it are dropped
	attrs []slog.Attr
}

func (h *slogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	level := 0
	switch {
	case r.Level >= slog.LevelError:
		level = -2
	case r.Level >= slog.LevelWarn:
		level = -1
	case r.Level <= slog.LevelDebug:
		level = 2
	case r.Level < slog.LevelInfo: // between: amavis's level 1
		level = 1
	}
	var b strings.Builder
	b.WriteString(r.Message)
	id := h.id
	add := func(a slog.Attr) bool {
		if a.Key == notify.LogIDKey { // a record about one message: its (PID-NN) id
			id = a.Value.String()
			return true
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	tl := &taskLog{l: h.l, id: id, level: h.level}
	tl.Logf(level, "%s", b.String())
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &slogHandler{l: h.l, id: h.id, level: h.level, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *slogHandler) WithGroup(string) slog.Handler { return h }
