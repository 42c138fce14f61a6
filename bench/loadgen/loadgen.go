// Package loadgen is the benchmark's SMTP load generator: a message or a mix
// of messages over parallel sessions, each message timed. Like Postfix's
// `smtp-source -d` it keeps each session open for its messages and does not
// pipeline.
package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one run.
type Config struct {
	Addr     string   // host:port of the SMTP server
	Sessions int      // parallel sessions
	Count    int      // messages in all
	From, To string   // envelope
	Messages [][]byte // message texts, LF or CRLF line ends
	// Pick says which of Messages is the i-th message sent (0 <= i < Count).
	Pick    func(i int) int
	Timeout time.Duration // per reply; 0 means 5 minutes
}

// Result counts what happened, per entry of Config.Messages.
type Result struct {
	Elapsed   time.Duration
	Accepted  []int // 2xx replies after the final dot
	Discarded []int // of those, replies that say "discarded" (a filter dropped it)
	// Latencies has one entry per message: from sending MAIL FROM to the reply after the
	// final dot, in the order the replies came.
	Latencies []time.Duration
}

// Percentile is the q-th percentile (0 < q <= 100) of the latencies by the nearest rank,
// 0 when there are none.
func (r Result) Percentile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.Latencies)
	slices.Sort(s)
	rank := int(math.Ceil(q / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Run sends Count messages over Sessions sessions and returns when all are
// answered. Any reply other than the expected one ends the run with an error
// naming the command and the reply.
func Run(cfg Config) (Result, error) {
	if cfg.Sessions < 1 || cfg.Count < 0 || len(cfg.Messages) == 0 {
		return Result{}, errors.New("loadgen: need sessions >= 1 and at least one message")
	}
	if cfg.Pick == nil {
		cfg.Pick = func(int) int { return 0 }
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	wire := make([][]byte, len(cfg.Messages))
	for i, m := range cfg.Messages {
		wire[i] = DataBlock(m)
	}
	res := Result{Accepted: make([]int, len(wire)), Discarded: make([]int, len(wire))}
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range cfg.Sessions {
		wg.Go(func() {
			err := session(cfg, wire, &next, func(k int, reply string, took time.Duration) {
				mu.Lock()
				res.Latencies = append(res.Latencies, took)
				res.Accepted[k]++
				if strings.Contains(reply, "discarded") {
					res.Discarded[k]++
				}
				mu.Unlock()
			})
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				next.Store(int64(cfg.Count)) // stop the other sessions
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, firstErr
}

// session runs one connection: it claims message numbers until Count is
// reached, so that fast sessions send more, as smtp-source's do.
func session(cfg Config, wire [][]byte, next *atomic.Int64, done func(k int, reply string, took time.Duration)) error {
	if next.Load() >= int64(cfg.Count) {
		return nil
	}
	conn, err := net.DialTimeout("tcp", cfg.Addr, cfg.Timeout)
	if err != nil {
		return fmt.Errorf("loadgen: %v", err)
	}
	defer conn.Close()
	c := &client{conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn), timeout: cfg.Timeout}
	if _, err := c.reply("greeting", 220); err != nil {
		return err
	}
	if _, err := c.cmd("EHLO loadgen.example", 250); err != nil {
		return err
	}
	for {
		i := next.Add(1) - 1
		if i >= int64(cfg.Count) {
			break
		}
		k := cfg.Pick(int(i))
		t0 := time.Now()
		if _, err := c.cmd("MAIL FROM:<"+cfg.From+">", 250); err != nil {
			return err
		}
		if _, err := c.cmd("RCPT TO:<"+cfg.To+">", 250); err != nil {
			return err
		}
		if _, err := c.cmd("DATA", 354); err != nil {
			return err
		}
		c.w.Write(wire[k])
		reply, err := c.reply("end of data", 250)
		if err != nil {
			return err
		}
		done(k, reply, time.Since(t0))
	}
	_, err = c.cmd("QUIT", 221)
	return err
}

type client struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
}

func (c *client) cmd(line string, want int) (string, error) {
	c.w.WriteString(line + "\r\n")
	return c.reply(line, want)
}

// reply flushes what was written and reads a possibly multi-line reply,
// which must carry the code want.
func (c *client) reply(what string, want int) (string, error) {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if err := c.w.Flush(); err != nil {
		return "", fmt.Errorf("loadgen: %s: %v", what, err)
	}
	var all strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("loadgen: %s: reading reply: %v", what, err)
		}
		all.WriteString(line)
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	reply := strings.TrimRight(all.String(), "\r\n")
	if !strings.HasPrefix(reply, fmt.Sprint(want)) {
		return reply, fmt.Errorf("loadgen: %s: got %q, want %d", what, reply, want)
	}
	return reply, nil
}

// DataBlock turns a message into what follows DATA on the wire: CRLF line
// ends, dot-stuffed, ending with the lone dot.
func DataBlock(msg []byte) []byte {
	var b bytes.Buffer
	msg = bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	msg = bytes.TrimSuffix(msg, []byte("\n"))
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if len(line) > 0 && line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}
