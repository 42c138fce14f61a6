package amavis

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/ldapdb"
	"amavisgo/notify"
	"amavisgo/quarantine"
	"amavisgo/quarantine/ampdp"
	"amavisgo/scanners"
	"amavisgo/unpack"
)

// engines are the parts of the message flow that a configuration builds: the decoder, the
// virus scanners, the quarantine, the notifier and the AM.PDP release server. They are built
// at start-up and again on reload, and a connection keeps the set it started with.
type engines struct {
	cfg      *conf.Config
	unpacker *unpack.Unpacker
	av       *scanners.Set
	store    *quarantine.Store
	notifier *notify.Notifier
	release  *ampdp.Server
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
	sender := &amavissmtp.Sender{LocalhostName: cfg.LocalhostName, Timeout: 2 * time.Minute, Pool: d.pool}
	store := quarantine.NewStore(cfg, sender)
	e := &engines{
		cfg:      cfg,
		unpacker: unpack.New(lim, path, func(format string, args ...any) { process.Logf(1, format, args...) }),
		av:       av,
		store:    store,
		notifier: notify.New(cfg, sender),
		ldap:     newLDAP(cfg),
	}
	e.notifier.Log = d.slog("")
	e.release = &ampdp.Server{Config: cfg, Store: store, Sender: sender, Log: d.slog("")}
	return e, nil
}

// diagnose logs what start-up found: each AV engine reachable or not (clamd's VERSION), each
// external decoder found or not, as Amavis.pm's find_external_programs logs them.
func (e *engines) diagnose(ctx context.Context, tl *taskLog) {
	if !e.av.Configured() {
		tl.Logf(0, "No virus scanners configured (av_scanners is empty): mail is not scanned for viruses")
	}
	for _, st := range e.av.Diagnose(ctx) {
		kind := "primary"
		if st.Backup {
			kind = "secondary"
		}
		switch {
		case st.Err != nil:
			tl.Logf(-1, "Using %s av scanner %s: NOT AVAILABLE: %v", kind, st.Name, st.Err)
		case st.Program != "":
			tl.Logf(0, "Found %s av scanner %s at %s", kind, st.Name, st.Program)
		}
		for _, a := range st.Addrs {
			if a.Err != nil {
				first, _, _ := strings.Cut(a.Err.Error(), "\n")
				tl.Logf(-1, "av scanner %s at %s: %s", st.Name, a.Addr, first)
			} else {
				tl.Logf(0, "Found %s av scanner %s at %s: %s", kind, st.Name, a.Addr, a.Version)
			}
		}
	}
	progs := e.unpacker.Programs()
	var found, missing []string
	for format, path := range progs {
		if path == "" {
			missing = append(missing, format)
		} else {
			found = append(found, format+"="+path)
		}
	}
	if len(found) > 0 {
		slices.Sort(found)
		tl.Logf(0, "Found decoders: %s", strings.Join(found, ", "))
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		tl.Logf(0, "No decoder programs for: %s (their parts are scanned as they are)", strings.Join(missing, ", "))
	}
}

// slog gives the packages that log through log/slog (notify, ampdp) our log, under log id id.
func (d *Daemon) slog(id string) *slog.Logger {
	return slog.New(&slogHandler{l: d.log, id: id})
}

// slogHandler maps slog levels to amavis's: errors -2, warnings -1, info 0, debug 2.
type slogHandler struct {
	l     *Log
	id    string
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
	case r.Level < slog.LevelInfo:
		level = 2
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
	tl := &taskLog{l: h.l, id: id}
	tl.Logf(level, "%s", b.String())
	return nil
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &slogHandler{l: h.l, id: h.id, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *slogHandler) WithGroup(string) slog.Handler { return h }
