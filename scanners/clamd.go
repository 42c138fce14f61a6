package scanners

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"amavisgo/internal/panics"
)

// Our own clamd client: go-clamd has no deadlines and leaks a goroutine per
// stream. Every call runs under the context's deadline; the z-prefixed
// commands make clamd end each reply line with NUL, so a path holding a
// newline cannot split a reply.

const (
	// connectTimeout caps one connection attempt so that a black-holed
	// address in a pool leaves time for the next one.
	connectTimeout = 3 * time.Second
	// downTime is how long a failed address is tried last.
	downTime = 10 * time.Second
	// chunkSize is the INSTREAM chunk length (amavis sends at most 32 KiB).
	chunkSize = 32 << 10
	// maxReply bounds what we read from clamd for one command.
	maxReply = 1 << 20
)

// ErrClamdReply is wrapped in errors that clamd reported itself, such as
// "INSTREAM size limit exceeded. ERROR".
var ErrClamdReply = errors.New("clamd error")

// Clamd is a client for a pool of clamd addresses. Calls start at the next
// address in rotation and fail over to the others; an address that failed is
// tried last for a while. A call whose context has no deadline gets
// DefaultTimeout. It is safe for concurrent use.
type Clamd struct {
	addrs []socketAddr

	mu   sync.Mutex
	next int
	down []time.Time
}

// NewClamd returns a client for the given socket specs (see Entry.Sockets).
func NewClamd(sockets []string) (*Clamd, error) {
	if len(sockets) == 0 {
		return nil, errors.New("no clamd sockets")
	}
	c := &Clamd{down: make([]time.Time, len(sockets))}
	for _, s := range sockets {
		sa, err := parseSocket(s)
		if err != nil {
			return nil, err
		}
		c.addrs = append(c.addrs, sa)
	}
	return c, nil
}

// order returns the pool indexes for one call: rotation from the next
// address, addresses marked down moved to the end.
func (c *Clamd) order() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	n := len(c.addrs)
	start := c.next
	c.next = (c.next + 1) % n
	var up, down []int
	for i := range n {
		j := (start + i) % n
		if now.Before(c.down[j]) {
			down = append(down, j)
		} else {
			up = append(up, j)
		}
	}
	return append(up, down...)
}

func (c *Clamd) markDown(i int) {
	c.mu.Lock()
	c.down[i] = time.Now().Add(downTime)
	c.mu.Unlock()
}

// do runs fn against the pool: each address in turn (amavis makes two
// rounds) until one succeeds or the context ends. Errors clamd itself
// reported are final, another address would say the same.
func (c *Clamd) do(ctx context.Context, fn func(ctx context.Context, sa socketAddr) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	var errs []error
	order := c.order()
	order = append(order, order...)
	for k, i := range order {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		// Within the first round, leave time for the untried addresses so
		// that a hung clamd cannot eat the whole deadline.
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && k < len(c.addrs)-1 {
			share := time.Until(dl) / time.Duration(len(c.addrs)-k)
			actx, cancel = context.WithTimeout(ctx, share)
		}
		err := fn(actx, c.addrs[i])
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.addrs[i], err))
		// The caller's deadline or cancellation says nothing about the
		// address; clamd's own error would be repeated by any other.
		if ctx.Err() != nil || errors.Is(err, ErrClamdReply) {
			break
		}
		c.markDown(i)
	}
	return errors.Join(errs...)
}

// ask runs fn for a scan as Amavis::AV's ask_daemon_internal talks to its daemon: the
// addresses in turn, each failure logged and retried, 2n retries in all for n addresses, with
// a pause after each round (1 s, then 6 s, growing by 5 s up to 20 s), so that a clamd being
// restarted is ridden out. name is the scanner's, for the log (logTo's logger).
func (c *Clamd) ask(ctx context.Context, name string, fn func(ctx context.Context, sa socketAddr) error) error {
	logf := logTo(ctx, nil)
	n := len(c.addrs)
	order := c.order()
	for retries := 0; ; {
		i := order[retries%n]
		sa := c.addrs[i]
		// Within the first round, leave time for the untried addresses so that a hung clamd
		// cannot eat the whole deadline.
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && retries < n-1 {
			actx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(n-retries))
		}
		err := fn(actx, sa)
		cancel()
		if err == nil {
			return nil
		}
		stat := err.Error()
		var ce *connectError
		if errors.As(err, &ce) {
			logf(-1, "connect to %s failed, attempt #1: %s", sa, ce.amavisText(sa))
			stat = "All attempts (1) failed connecting to " + sa.String()
		}
		// The caller's deadline or cancellation says nothing about the address; clamd's own
		// error would be repeated by any other.
		if ctx.Err() != nil || errors.Is(err, ErrClamdReply) {
			return fmt.Errorf("%s: %w", sa, err)
		}
		c.markDown(i)
		if retries++; retries > 2*n {
			//lint:ignore ST1005 amavis's own text, which log parsers match
			return fmt.Errorf("Too many retries to talk to %s (%s)", sa, stat)
		}
		level := 1
		if retries > 1 {
			level = -1
		}
		logf(level, "%s: %s, retrying (%d)", name, stat, retries)
		if retries%n == 0 {
			pause := time.Duration(min(20, 1+5*(retries/n-1))) * time.Second
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", sa, ctx.Err())
			case <-time.After(pause):
			}
		}
	}
}

// connectError is a failed connection to a clamd address.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// amavisText words the failure as Amavis::IO::RW does, the system error as the C library has it.
func (e *connectError) amavisText(sa socketAddr) string {
	what := "socket"
	if sa.network == "unix" {
		what = "a UNIX socket"
	}
	msg := e.err.Error()
	var errno syscall.Errno
	if errors.As(e.err, &errno) {
		msg = errno.Error()
		if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
			msg = string(msg[0]-'a'+'A') + msg[1:]
		}
	}
	return fmt.Sprintf("Can't connect to %s %s: %s", what, sa, msg)
}

func dial(ctx context.Context, sa socketAddr) (net.Conn, error) {
	d := net.Dialer{Timeout: connectTimeout}
	conn, err := d.DialContext(ctx, sa.network, sa.addr)
	if err != nil {
		return nil, &connectError{err}
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A cancelled context (not only a deadline) must unblock reads and writes.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return &ctxConn{Conn: conn, stop: stop}, nil
}

type ctxConn struct {
	net.Conn
	stop func() bool
}

func (c *ctxConn) Close() error { c.stop(); return c.Conn.Close() }

// command sends one z-command and returns clamd's reply lines (NUL or
// newline terminated) once clamd closes the connection.
func command(ctx context.Context, sa socketAddr, cmd string) ([]string, error) {
	conn, err := dial(ctx, sa)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "z"+cmd+"\x00"); err != nil {
		return nil, timeoutErr(ctx, err)
	}
	return readReply(ctx, conn)
}

func readReply(ctx context.Context, conn net.Conn) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(conn, maxReply))
	// A reset after a complete reply (clamd closing on unread input) still
	// leaves the reply usable.
	if err != nil && !(len(b) > 0 && b[len(b)-1] == 0) {
		return nil, timeoutErr(ctx, err)
	}
	lines := strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 || r == '\n' })
	if len(lines) == 0 {
		return nil, errors.New("empty reply")
	}
	return lines, nil
}

// timeoutErr names the deadline when it is what ended an I/O call. The
// connection's deadline is the context's, and may fire a moment before the
// context's own timer.
func timeoutErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// Ping sends PING and expects PONG.
func (c *Clamd) Ping(ctx context.Context) error {
	return c.do(ctx, func(ctx context.Context, sa socketAddr) error {
		lines, err := command(ctx, sa, "PING")
		if err != nil {
			return err
		}
		if lines[0] != "PONG" {
			return fmt.Errorf("PING: unexpected reply %q", lines[0])
		}
		return nil
	})
}

// Version returns clamd's VERSION reply, e.g. "ClamAV 1.4.6/27000/...".
func (c *Clamd) Version(ctx context.Context) (string, error) {
	var v string
	err := c.do(ctx, func(ctx context.Context, sa socketAddr) error {
		lines, err := command(ctx, sa, "VERSION")
		if err != nil {
			return err
		}
		v = lines[0]
		return nil
	})
	return v, err
}

// ScanDir has clamd scan a directory it can read (CONTSCAN or MULTISCAN)
// and returns clamd's reply lines, e.g. "/dir/f: Eicar FOUND" or "/dir: OK".
func (c *Clamd) ScanDir(ctx context.Context, cmd, dir string) ([]string, error) {
	if cmd != string(modeContscan) && cmd != string(modeMultiscan) {
		return nil, fmt.Errorf("ScanDir: %q is not CONTSCAN or MULTISCAN", cmd)
	}
	var lines []string
	err := c.do(ctx, func(ctx context.Context, sa socketAddr) (err error) {
		lines, err = command(ctx, sa, cmd+" "+dir)
		return err
	})
	return lines, err
}

// InStream streams r to clamd (zINSTREAM) and returns its verdict line,
// "stream: OK" or "stream: <name> FOUND". clamd's own errors, such as
// "INSTREAM size limit exceeded. ERROR", come back as an error wrapping
// ErrClamdReply. r is rewound when another address is tried.
func (c *Clamd) InStream(ctx context.Context, r io.ReadSeeker) (string, error) {
	var line string
	err := c.do(ctx, func(ctx context.Context, sa socketAddr) error {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return err
		}
		var err error
		line, err = instream(ctx, sa, r)
		return err
	})
	return line, err
}

func instream(ctx context.Context, sa socketAddr, r io.Reader) (string, error) {
	conn, err := dial(ctx, sa)
	if err != nil {
		return "", err
	}
	defer conn.Close()

	// clamd answers early (size limit) and closes while we still write:
	// read concurrently so that its reply, not our broken pipe, is reported.
	type reply struct {
		lines []string
		err   error
	}
	replies := make(chan reply, 1)
	go func() {
		var rep reply
		defer func() { replies <- rep }()
		defer panics.Catch(&rep.err)
		rep.lines, rep.err = readReply(ctx, conn)
	}()

	werr := writeStream(conn, r)
	if werr != nil {
		// Unblock the reader if clamd is still silent.
		conn.SetReadDeadline(time.Now().Add(time.Second))
	}
	rep := <-replies
	if rep.err != nil || len(rep.lines) == 0 {
		if werr != nil {
			return "", timeoutErr(ctx, werr)
		}
		return "", rep.err
	}
	return streamVerdict(rep.lines)
}

// streamVerdict reads clamd's reply to INSTREAM.
func streamVerdict(lines []string) (string, error) {
	line := lines[0]
	if strings.HasSuffix(line, " ERROR") {
		return "", fmt.Errorf("%w: %s", ErrClamdReply, line)
	}
	if !strings.HasPrefix(line, "stream: ") {
		return "", fmt.Errorf("INSTREAM: unexpected reply %q", line)
	}
	return line, nil
}

func writeStream(w io.Writer, r io.Reader) error {
	buf := make([]byte, 4+chunkSize)
	copy(buf, "zINSTREAM\x00")
	if _, err := w.Write(buf[:len("zINSTREAM\x00")]); err != nil {
		return err
	}
	for {
		n, err := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			if _, werr := w.Write(buf[:4+n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	_, err := w.Write([]byte{0, 0, 0, 0})
	return err
}

// joinLines renders reply lines as scanner output for the patterns.
func joinLines(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
