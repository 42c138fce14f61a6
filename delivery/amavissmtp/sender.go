// Package amavissmtp adapts the daemon's own SMTP/LMTP client (smtp) to delivery.Sender,
// so that quarantine copies, notifications and releases leave through the same client, and the
// same connection cache, as forwarded mail.
package amavissmtp

import (
	"context"
	"io"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/smtp"
)

// Sender implements delivery.Sender with smtp.
type Sender struct {
	LocalhostName string        // EHLO/LHLO name, $localhost_name
	Timeout       time.Duration // per command; 0: 2 minutes
	Pool          *smtp.Pool    // connection cache; nil: a connection per message
}

// Send implements delivery.Sender. The message's LF line ends go out as CRLF.
func (s *Sender) Send(ctx context.Context, via conf.Method, from string, rcpts []string, msg io.Reader) ([]delivery.Result, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	lmtp := via.Proto == "lmtp"
	var c *smtp.Client
	var err error
	if s.Pool != nil {
		c, err = s.Pool.Get(ctx, "tcp", via.Addr(), lmtp, s.LocalhostName, timeout)
	} else {
		c, err = smtp.Dial(ctx, "tcp", via.Addr(), lmtp, s.LocalhostName, timeout)
	}
	if err != nil {
		return nil, err
	}
	o := delivery.OptionsFrom(ctx)
	env := &smtp.Envelope{From: smtp.Quote(from), ENVID: o.ENVID, Body: o.Body, DSN: o.ENVID != "" || o.ORCPT}
	for _, r := range rcpts {
		rc := smtp.Recipient{Addr: r}
		if o.ORCPT {
			rc.ORCPT = "rfc822;" + delivery.XText(r)
		}
		env.Rcpts = append(env.Rcpts, rc)
	}
	res, err := c.Send(ctx, env, func(w io.Writer) error {
		_, err := io.Copy(delivery.ToCRLF(w), msg)
		return err
	})
	if err != nil {
		c.Abort()
		return nil, err
	}
	if s.Pool != nil {
		s.Pool.Put(c)
	} else {
		c.Close()
	}
	out := make([]delivery.Result, len(rcpts))
	for i, r := range rcpts {
		out[i] = delivery.Result{Rcpt: r, Reply: delivery.Wrap(via, res.Rcpts[i].Reply)}
	}
	return out, nil
}
