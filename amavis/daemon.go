// Package amavis is the daemon: it listens on inet_socket_port (and unix_socketname), admits
// clients by inet_acl (listen.go), runs at most max_servers SMTP/LMTP sessions at once
// (session.go), and takes every message through the per-message flow of message.go: spool,
// check, decide per recipient, quarantine, forward, notify, reply, log; one file per stage.
//
// The command line builds on this API:
//
//	d := amavis.New(cfg, log)
//	if err := d.Listen(); err != nil { ... }   // bind (before dropping privileges)
//	go d.Serve()                               // accept until Shutdown
//	d.Reload(newCfg)                           // new connections get newCfg
//	d.Shutdown(ctx)                            // 421 to idle sessions, messages finish
package amavis

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"amavisgo/conf"
	"amavisgo/metrics"
	"amavisgo/smtp"
)

// Daemon is the amavis server process.
type Daemon struct {
	cfg  atomic.Pointer[conf.Config]
	eng  atomic.Pointer[engines] // built from cfg by Listen and Reload
	log  *Log
	pool *smtp.Pool
	pid  int
	// spoolDirs keeps emptied message directories for the next messages (spooldirs.go)
	spoolDirs spoolDirs

	slots   *semaphore
	connNo  atomic.Int64
	closing atomic.Bool
	done    chan struct{}

	metrics       *metrics.Set // metrics.go
	metricsServer *http.Server

	mu        sync.Mutex
	listeners []*listener
	sessions  map[*smtp.Session]struct{}
	wg        sync.WaitGroup // sessions
	accepting sync.WaitGroup // accept loops
}

// New prepares a daemon for cfg, logging to log. Nothing is bound until Listen.
func New(cfg *conf.Config, log *Log) *Daemon {
	d := &Daemon{
		log:      log,
		pool:     smtp.NewPool(60 * time.Second),
		pid:      os.Getpid(),
		slots:    newSemaphore(cfg.MaxServers),
		sessions: map[*smtp.Session]struct{}{},
		done:     make(chan struct{}),
	}
	d.cfg.Store(cfg)
	if cfg.MetricsAddr() != "" { // metrics are counted only where they are served
		d.metrics = metrics.New(Version, d.slots.getLimit)
		log.countLines(d.metrics.Logged)
	}
	return d
}

// Config is the configuration new connections get.
func (d *Daemon) Config() *conf.Config { return d.cfg.Load() }

// Reload makes new connections use cfg. Listeners stay open (changes of inet_socket_port
// need a restart) and open sessions keep the configuration they started with. max_servers
// takes effect at once.
func (d *Daemon) Reload(cfg *conf.Config) error {
	e, err := d.newEngines(cfg)
	d.metrics.Reloaded(err == nil)
	if err != nil {
		d.log.logf("", -1, "Rejecting reload: %v", err)
		return err
	}
	d.eng.Store(e)
	d.cfg.Store(cfg)
	d.slots.setLimit(cfg.MaxServers)
	d.log.logf("", 0, "warm restart on HUP [%d]: reloaded configuration %s", d.pid, cfg.File)
	return nil
}

// Shutdown stops accepting, sends "421 4.3.2 Service shutting down, closing channel" to
// idle sessions and waits for sessions in the middle of a message to finish it (their
// client gets the real reply, then 421). When ctx ends first, remaining connections are
// closed and ctx's error is returned.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	if d.closing.Load() {
		d.mu.Unlock()
		return errors.New("already shut down")
	}
	d.closing.Store(true)
	d.mu.Unlock()
	close(d.done)
	d.slots.wake()
	d.closeListeners()
	d.mu.Lock()
	for s := range d.sessions {
		s.Shutdown()
	}
	d.mu.Unlock()
	finished := make(chan struct{})
	go func() { d.accepting.Wait(); d.wg.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = ctx.Err()
		d.mu.Lock()
		for s := range d.sessions {
			s.Close()
		}
		d.mu.Unlock()
	}
	d.sqlDrain(ctx)
	d.pool.Close()
	d.spoolDirs.close()
	d.closeMetrics(ctx)
	for _, l := range d.listeners {
		if l.spec.Network == "unix" {
			os.Remove(l.spec.Address)
		}
	}
	d.log.logf("", 0, "Net::Server: Server closing!") // amavis's line, which Net::Server logs
	return err
}

// Version strings for the greeting's ${version...} variables.
const (
	Version     = "amavis-go-0.1 (20261122)"
	VersionID   = "0.1"
	VersionDate = "20261122"
)
