package smtp

import (
	"context"
	"sync"
	"time"
)

// Pool caches idle next-hop connections so that consecutive messages reuse them, as amavis's
// smtp_connection_cache does (Amavis::Out::SMTP::Session): a connection used recently goes
// straight on with the next transaction, one idle for longer is first probed with NOOP, and one
// that has died meanwhile is replaced by a new connection transparently.
type Pool struct {
	// MaxIdle is how long a connection may sit unused before it is closed rather than reused
	// (Postfix's smtpd closes idle clients after 300 s).
	MaxIdle time.Duration
	// ProbeAfter is the idle time after which a reused connection is probed with NOOP
	// (amavis: 18 s; Postfix's default idle timeout is 60 s).
	ProbeAfter time.Duration

	mu     sync.Mutex
	idle   map[string][]*Client
	closed bool
}

// NewPool returns an empty pool.
func NewPool(maxIdle time.Duration) *Pool {
	return &Pool{MaxIdle: maxIdle, ProbeAfter: 18 * time.Second, idle: map[string][]*Client{}}
}

// Get returns a connection to the next hop, reused when one is cached and still alive, else
// newly dialed (see Dial). A cached connection the next hop has closed is seen without a word
// on the wire (its end of file is already there to read); one idle for more than ProbeAfter
// must also answer NOOP.
func (p *Pool) Get(ctx context.Context, network, addr string, lmtp bool, helo string, timeout time.Duration) (*Client, error) {
	key := network + "|" + addr + "|" + helo
	if lmtp {
		key += "|lmtp"
	}
	for {
		c := p.take(key)
		if c == nil {
			break
		}
		idle := time.Since(c.used)
		if idle > p.MaxIdle {
			go c.Close()
			continue
		}
		c.timeout = timeout
		if !c.quiet() {
			c.Abort() // closed by the next hop, or it said something (a 421) unasked
			continue
		}
		if idle > p.ProbeAfter {
			if rep, err := c.cmd(ctx, "NOOP"); err != nil || rep.Class() != 2 {
				c.Abort()
				continue
			}
		}
		c.redial = func(ctx context.Context) (*Client, error) { return Dial(ctx, network, addr, lmtp, helo, timeout) }
		return c, nil
	}
	c, err := Dial(ctx, network, addr, lmtp, helo, timeout)
	if err != nil {
		return nil, err
	}
	c.key = key
	return c, nil
}

func (p *Pool) take(key string) *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[key]
	if len(l) == 0 {
		return nil
	}
	c := l[len(l)-1]
	p.idle[key] = l[:len(l)-1]
	return c
}

// Put returns a connection after a transaction that ended cleanly; it will be reused.
func (p *Pool) Put(c *Client) {
	c.used = time.Now()
	c.conn.SetDeadline(time.Time{})
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle[c.key] = append(p.idle[c.key], c)
	p.mu.Unlock()
}

// Close says QUIT to every cached connection; connections Put later are closed at once.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	all := p.idle
	p.idle = map[string][]*Client{}
	p.mu.Unlock()
	for _, l := range all {
		for _, c := range l {
			c.Close()
		}
	}
}
