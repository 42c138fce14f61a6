package smtp

import (
	"context"
	"sync"
	"time"
)

// Pool caches idle next-hop connections so that consecutive messages reuse them, as amavis's
// smtp_connection_cache does: a reused connection is checked with RSET, and one that has died
// meanwhile is replaced by a new connection transparently.
type Pool struct {
	// MaxIdle is how long a connection may sit unused before it is closed rather than reused
	// (Postfix's smtpd closes idle clients after 300 s).
	MaxIdle time.Duration

	mu     sync.Mutex
	idle   map[string][]*Client
	closed bool
}

// NewPool returns an empty pool.
func NewPool(maxIdle time.Duration) *Pool {
	return &Pool{MaxIdle: maxIdle, idle: map[string][]*Client{}}
}

// Get returns a connection to the next hop, reused when one is cached and still answers RSET,
// else newly dialed (see Dial).
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
		if time.Since(c.used) > p.MaxIdle {
			go c.Close()
			continue
		}
		c.timeout = timeout
		if err := c.Reset(ctx); err != nil {
			c.Abort() // died while cached: try the next, or dial
			continue
		}
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
