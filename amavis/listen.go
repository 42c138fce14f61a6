package amavis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"amavisgo/conf"
	"amavisgo/lookup"
	"amavisgo/metrics"
	"amavisgo/policybank"
)

type listener struct {
	net.Listener
	spec conf.Listener
}

// Listen binds every socket of Global.Listeners(): TCP sockets and Unix sockets (chmod'ed to
// unix_socket_mode when set; a stale socket file is replaced).
func (d *Daemon) Listen() error {
	cfg := d.cfg.Load()
	specs := cfg.Listeners()
	if len(specs) == 0 {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return errors.New("No listen sockets or ports specified")
	}
	if st, err := os.Stat(cfg.TEMPBASE); err != nil || !st.IsDir() {
		return fmt.Errorf("TEMPBASE directory %s does not exist or is not a directory", cfg.TEMPBASE)
	}
	e, err := d.newEngines(cfg)
	if err != nil {
		return err
	}
	d.eng.Store(e)
	for _, s := range specs {
		if s.Network == "unix" {
			if err := removeStaleSocket(s.Address); err != nil { // unixsocket.go
				d.closeListeners()
				return err
			}
		}
		l, err := net.Listen(s.Network, s.Address)
		if err != nil && familyMissing(err) {
			// amavis binds the default [::1] only where IPv6 exists (Amavis::Conf's
			// inet_socket_bind).
			d.log.logf("", -1, "not listening on %s: %v", s.Address, err)
			continue
		}
		if err != nil {
			d.closeListeners()
			return err
		}
		if s.Network == "unix" && cfg.UnixSocketMode != 0 {
			os.Chmod(s.Address, os.FileMode(cfg.UnixSocketMode))
		}
		d.listeners = append(d.listeners, &listener{Listener: l, spec: s})
	}
	if len(d.listeners) == 0 {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return errors.New("No listen sockets or ports could be bound")
	}
	if err := d.listenMetrics(cfg); err != nil {
		d.closeListeners()
		return err
	}
	d.removeStaleTempdirs(cfg.TEMPBASE) // tempdirs.go
	return nil
}

// ChownUnixSockets gives the Unix sockets to the daemon user before privileges are dropped, so
// that the daemon can remove them when it stops and clients running as that user (such as
// amavisd-release) can connect.
func (d *Daemon) ChownUnixSockets(uid, gid int) error {
	for _, l := range d.listeners {
		if l.spec.Network == "unix" {
			if err := os.Chown(l.spec.Address, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

// familyMissing: the address family is not available on this host (no IPv6, or no IPv4).
func familyMissing(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT)
}

// Addrs are the bound addresses (useful with port 0 in tests).
func (d *Daemon) Addrs() []net.Addr {
	var out []net.Addr
	for _, l := range d.listeners {
		out = append(out, l.Addr())
	}
	return out
}

func (d *Daemon) closeListeners() {
	for _, l := range d.listeners {
		l.Close()
	}
}

// Serve accepts connections until Shutdown; it returns nil then, or the first accept error.
// Each listener hands at most one accepted connection to the dispatcher at a time, and the
// dispatcher starts a session only when one of max_servers slots is free: excess clients wait
// in the listen queue, as with amavis's fixed pool of children.
func (d *Daemon) Serve() error {
	if len(d.listeners) == 0 {
		if err := d.Listen(); err != nil {
			return err
		}
	}
	if !d.enter(&d.accepting, len(d.listeners)) {
		return nil // Shutdown came first
	}
	cfg := d.cfg.Load()
	d.log.logf("", 0, "%s", startingLine(cfg))
	diagCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	d.eng.Load().diagnose(diagCtx, &taskLog{l: d.log, level: cfg.LogLevel})
	cancel()
	conns := make(chan acceptedConn)
	errc := make(chan error, len(d.listeners))
	for _, l := range d.listeners {
		go d.acceptLoop(l, conns, errc)
	}
	for {
		if !d.slots.acquire(d.done) {
			return nil
		}
		select {
		case ac := <-conns:
			if !d.enter(&d.wg, 1) {
				ac.conn.Close()
				d.slots.release()
				return nil
			}
			go func() {
				defer d.wg.Done()
				defer d.slots.release()
				d.serveConnRecovered(ac)
			}()
		case err := <-errc:
			d.slots.release()
			return err
		case <-d.done:
			d.slots.release()
			return nil
		}
	}
}

// enter adds n to wg unless Shutdown has begun: Shutdown sets closing under the same lock
// before it waits, so no goroutine it must wait for can be added once its Wait has started.
func (d *Daemon) enter(wg *sync.WaitGroup, n int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing.Load() {
		return false
	}
	wg.Add(n)
	return true
}

type acceptedConn struct {
	conn net.Conn
	l    *listener
	cs   *connState
}

func (d *Daemon) acceptLoop(l *listener, conns chan<- acceptedConn, errc chan<- error) {
	defer d.accepting.Done()
	for {
		conn, err := l.Accept()
		if err != nil {
			if d.closing.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			errc <- err
			return
		}
		cs, ok := d.admit(conn, l)
		if !ok {
			conn.Close()
			continue
		}
		select {
		case conns <- acceptedConn{conn: conn, l: l, cs: cs}:
		case <-d.done:
			conn.Close()
			return
		}
	}
}

// connState is a connection's view of the configuration and its identity; it is the
// smtp.Handler of the session.
type connState struct {
	d      *Daemon
	cfg    *conf.Config
	eng    *engines
	policy *conf.Policy
	connNo int64
	tl     *taskLog

	peerIP, peerPort, localIP, localPort string

	// current message, for Finish
	msg *Message

	proc *metrics.Proc // the session's state for amavisd nanny
	ldap ldapSession   // directory entries fetched at RCPT for the transaction (ldap.go)
}

// admit loads the interface policy bank and checks inet_acl (Amavis.pm's access_is_allowed): a
// denied client is closed without a greeting.
func (d *Daemon) admit(conn net.Conn, l *listener) (*connState, bool) {
	e := d.eng.Load()
	cfg := e.cfg
	cs := &connState{d: d, cfg: cfg, eng: e, policy: &cfg.Policy}
	if l.spec.Network == "tcp" {
		cs.peerIP, cs.peerPort = splitAddr(conn.RemoteAddr())
		cs.localIP, cs.localPort = splitAddr(conn.LocalAddr())
	}
	socket := l.spec.Address // a Unix socket's path
	if l.spec.Network == "tcp" {
		socket = net.JoinHostPort(cs.localIP, l.spec.Port)
	}
	if p, err := policybank.ForSocket(cfg, socket); err == nil {
		cs.policy = p
	}
	cs.connNo = d.connNo.Add(1)
	cs.tl = &taskLog{l: d.log, id: logID(d.pid, cs.connNo, 0), level: cs.policy.LogLevel}
	if l.spec.Network == "tcp" {
		ip, err := parseIP(cs.peerIP)
		if err != nil || !cs.policy.InetACL.Contains(ip) {
			cs.tl.Logf(-1, "DENIED ACCESS from IP %s, policy bank '%s'%s", cs.peerIP, cs.policy.PolicyBankPath,
				blockedBy(cs.policy.InetACL, ip))
			return nil, false
		}
	}
	return cs, true
}

func parseIP(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

// blockedBy names the inet_acl entry that denied ip, as amavis's log does (", blocked by rule
// !10.1.2.3"), or "" when no entry matched. The first entry that contains ip decides.
func blockedBy(acl lookup.IPList, ip netip.Addr) string {
	for _, e := range acl.Strings() {
		one, err := lookup.ParseIPList([]string{e})
		if err != nil {
			continue
		}
		if _, found := one.Match(ip); found {
			return ", blocked by rule " + e
		}
	}
	return ""
}

func splitAddr(a net.Addr) (ip, port string) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), strconv.Itoa(ta.Port)
	}
	return "", ""
}

// semaphore is max_servers: a counting semaphore whose limit can change on reload.
type semaphore struct {
	mu    sync.Mutex
	cond  *sync.Cond
	limit int
	used  int
	woken bool
}

func newSemaphore(n int) *semaphore {
	s := &semaphore{limit: n}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// acquire waits for a free slot; false when done is closed meanwhile.
func (s *semaphore) acquire(done <-chan struct{}) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.used >= s.limit && !s.woken {
		s.cond.Wait()
	}
	select {
	case <-done:
		return false
	default:
	}
	s.used++
	return true
}

func (s *semaphore) release() {
	s.mu.Lock()
	s.used--
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *semaphore) getLimit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit
}

func (s *semaphore) setLimit(n int) {
	s.mu.Lock()
	s.limit = n
	s.mu.Unlock()
	s.cond.Broadcast()
}

// wake releases every waiter (shutdown).
func (s *semaphore) wake() {
	s.mu.Lock()
	s.woken = true
	s.mu.Unlock()
	s.cond.Broadcast()
}
