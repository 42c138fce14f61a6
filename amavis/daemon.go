// Package amavis is the daemon: it listens on inet_socket_port (and unix_socketname), admits
// clients by inet_acl, runs at most max_servers SMTP/LMTP sessions at once, and takes every
// message through the per-message flow of message.go: spool, check, decide per recipient,
// forward, reply, log.
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
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"amavisgo/conf"
	"amavisgo/internal/panics"
	"amavisgo/lookup"
	"amavisgo/policybank"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// Daemon is the amavis server process.
type Daemon struct {
	cfg  atomic.Pointer[conf.Config]
	eng  atomic.Pointer[engines] // built from cfg by Listen and Reload
	log  *Log
	pool *smtp.Pool
	pid  int

	slots   *semaphore
	connNo  atomic.Int64
	closing atomic.Bool
	done    chan struct{}

	mu        sync.Mutex
	listeners []*listener
	sessions  map[*smtp.Session]struct{}
	wg        sync.WaitGroup // sessions
	accepting sync.WaitGroup // accept loops
}

type listener struct {
	net.Listener
	spec conf.Listener
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
	return d
}

// Config is the configuration new connections get.
func (d *Daemon) Config() *conf.Config { return d.cfg.Load() }

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
			os.Remove(s.Address)
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
	d.log.logf("", 0, "starting. %s at %s amavis-go, listening on %s", os.Args[0], cfg.Myhostname, d.listenNames())
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

func (d *Daemon) listenNames() string {
	var names []string
	for _, l := range d.listeners {
		names = append(names, l.spec.Network+":"+l.spec.Address)
	}
	return strings.Join(names, ", ")
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

// serveConnRecovered is serveConn, with a panic outside a message's processing (which Data
// recovers itself) ending only its own connection, as a failed child ends in amavis.
func (d *Daemon) serveConnRecovered(ac acceptedConn) {
	var err error
	defer func() {
		if err != nil {
			ac.conn.Close()
			ac.cs.tl.Logf(-2, "TROUBLE in process_request: %v", err)
			logPanic(ac.cs.tl, err)
		}
	}()
	defer panics.Catch(&err)
	d.serveConn(ac)
}

func (d *Daemon) serveConn(ac acceptedConn) {
	cs := ac.cs
	p := cs.policy
	lmtp := p.Protocol == "LMTP"
	if p.Protocol == "AM.PDP" {
		if !d.closing.Load() { // a release in progress finishes at Shutdown; ServeConn stops at ctx
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-d.done:
					cancel()
				case <-ctx.Done():
				}
			}()
			cs.eng.release.ServeConn(ctx, ac.conn, p)
			cancel()
		}
		ac.conn.Close()
		return
	}
	helo := "[localhost]"
	if cs.localIP != "" {
		helo = "[" + cs.localIP + "]"
	}
	proto := "ESMTP"
	if lmtp {
		proto = "LMTP"
	}
	vars := map[string]string{"helo-name": helo, "myhostname": cs.cfg.Myhostname, "version": Version,
		"version-id": VersionID, "version-date": VersionDate, "product": "amavis", "protocol": proto}
	size := p.SmtpdMessageSizeLimit
	if size > 0 && size < 65536 && cs.cfg.EnforceSmtpdMessageSizeLimit64kbMin {
		size = 65536
	}
	sc := &smtp.Config{
		HeloName:            helo,
		Greeting:            expandBanner(p.SmtpdGreetingBanner, vars),
		QuitBanner:          expandBanner(p.SmtpdQuitBanner, vars),
		SizeLimit:           size,
		RcptLimit:           p.SmtpdRecipientLimit,
		Timeout:             time.Duration(cs.cfg.SmtpdTimeout) * time.Second,
		DiscardEHLOKeywords: p.SmtpdDiscardEhloKeywords,
		RcptCheck:           cs.rcptCheck,
		Log:                 cs.tl,
	}
	s := smtp.NewSession(ac.conn, sc, cs, lmtp)
	d.mu.Lock()
	if d.closing.Load() {
		d.mu.Unlock()
		s.Shutdown()
	} else {
		d.sessions[s] = struct{}{}
		d.mu.Unlock()
	}
	defer func() {
		d.mu.Lock()
		delete(d.sessions, s)
		d.mu.Unlock()
	}()
	s.Serve()
}

// Data implements smtp.Handler: one message through the flow of message.go. A panic anywhere
// in it tempfails the message (the MTA keeps it) and the session goes on with the next one.
func (cs *connState) Data(s *smtp.Session, tx *smtp.Transaction, r *smtp.DataReader) (replies []smtp.Reply) {
	d := cs.d
	m := d.newMessage(cs, s, tx)
	cs.msg = m
	var err error
	func() {
		defer panics.Catch(&err)
		replies = d.processMessage(context.Background(), m, tx, r)
	}()
	if err != nil {
		tl := &taskLog{l: d.log, id: m.LogID, level: m.Policy.LogLevel}
		replies = d.failed(m, tl, "check", err)
		logPanic(tl, err)
	}
	return replies
}

// logPanic writes the stack of a recovered panic, one line per call, at level 0.
func logPanic(tl *taskLog, err error) {
	var pe *panics.Error
	if errors.As(err, &pe) {
		for _, f := range pe.Frames() {
			tl.Logf(0, "panic stack: %s", f)
		}
	}
}

// Finish implements smtp.Finisher: the spool directory goes after the reply was sent.
func (cs *connState) Finish(*smtp.Transaction) {
	if m := cs.msg; m != nil && m.Dir != "" {
		if err := os.RemoveAll(m.Dir); err != nil {
			cs.tl.Logf(-1, "Can't remove %s: %v", m.Dir, err)
		}
	}
	cs.msg = nil
}

func rcptList(rs []*Recipient) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.AddrSMTP)
	}
	return b.String()
}

func envelopeOpts(tx *smtp.Transaction) string {
	var b strings.Builder
	if tx.Size >= 0 {
		b.WriteString(" SIZE=" + strconv.FormatInt(tx.Size, 10))
	}
	if tx.Body != "" {
		b.WriteString(" BODY=" + tx.Body)
	}
	if tx.SMTPUTF8 {
		b.WriteString(" SMTPUTF8")
	}
	if tx.RET != "" {
		b.WriteString(" RET=" + tx.RET)
	}
	if tx.ENVID != "" {
		b.WriteString(" ENVID=" + smtp.XtextDecode(tx.ENVID))
	}
	return b.String()
}

// Reload makes new connections use cfg. Listeners stay open (changes of inet_socket_port
// need a restart) and open sessions keep the configuration they started with. max_servers
// takes effect at once.
func (d *Daemon) Reload(cfg *conf.Config) error {
	e, err := d.newEngines(cfg)
	if err != nil {
		d.log.logf("", -1, "Rejecting reload: %v", err)
		return err
	}
	d.eng.Store(e)
	d.cfg.Store(cfg)
	d.slots.setLimit(cfg.MaxServers)
	d.log.logf("", 0, "reloaded configuration %s", cfg.File)
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
	d.pool.Close()
	for _, l := range d.listeners {
		if l.spec.Network == "unix" {
			os.Remove(l.spec.Address)
		}
	}
	d.log.logf("", 0, "Server closing!")
	return err
}

// expandBanner expands ${name} and $name in smtpd_greeting_banner / smtpd_quit_banner.
func expandBanner(tmpl string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' || i+1 >= len(tmpl) || (tmpl[i+1] != '{' && !isAlnumByte(tmpl[i+1])) ||
			(tmpl[i+1] >= '0' && tmpl[i+1] <= '9') {
			b.WriteByte(tmpl[i])
			continue
		}
		var name string
		end := i + 1
		if tmpl[end] == '{' {
			j := strings.IndexByte(tmpl[end:], '}')
			if j < 0 {
				b.WriteByte(tmpl[i])
				continue
			}
			name, end = tmpl[end+1:end+j], end+j+1
		} else {
			for end < len(tmpl) && (isAlnumByte(tmpl[end]) || tmpl[end] == '_' || tmpl[end] == '-') {
				end++
			}
			name = strings.TrimRight(tmpl[i+1:end], "_-")
			end = i + 1 + len(name)
		}
		b.WriteString(vars[strings.ToLower(name)])
		i = end - 1
	}
	return b.String()
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

// Version strings for the greeting's ${version...} variables.
const (
	Version     = "amavis-go-0.1 (20261122)"
	VersionID   = "0.1"
	VersionDate = "20261122"
)

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

// rcptCheck refuses a recipient whose message_size_limit_maps limit is below the size the
// client declared with MAIL SIZE= (as Amavis::In::SMTP does); oversized mail would bounce anyway.
func (cs *connState) rcptCheck(tx *smtp.Transaction, rc *smtp.Recipient) *smtp.Reply {
	if tx.Size <= 0 {
		return nil
	}
	if limit := verdict.SizeLimit(cs.policy, rc.Addr); limit > 0 && tx.Size > limit {
		return &smtp.Reply{Code: 552, Enh: "5.3.4", Text: fmt.Sprintf(
			"Declared message size (%d B) exceeds size limit for recipient %s", tx.Size, smtp.Quote(rc.Addr))}
	}
	return nil
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
