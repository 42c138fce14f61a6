package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/emersion/go-smtp"

	"amavisgo/conf"
)

// SMTPSender sends with go-smtp over smtp: and lmtp: methods, one connection per message.
type SMTPSender struct {
	LocalhostName string        // EHLO/LHLO name, $localhost_name
	Timeout       time.Duration // for the whole transaction when ctx has no deadline
}

// Send implements Sender.
func (s *SMTPSender) Send(ctx context.Context, via conf.Method, from string, rcpts []string, msg io.Reader) ([]Result, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", via.Addr())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", via, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var c *smtp.Client
	if via.Proto == "lmtp" {
		c = smtp.NewClientLMTP(conn)
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	name := s.LocalhostName
	if name == "" {
		name = "localhost"
	}
	if err := c.Hello(name); err != nil {
		return nil, fmt.Errorf("%s: EHLO: %w", via, err)
	}
	if err := c.Mail(from, nil); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code/100 == 5 {
			return all(rcpts, Wrap(via, reply(se))), nil
		}
		return nil, fmt.Errorf("%s: MAIL FROM: %w", via, err)
	}
	results := make([]Result, len(rcpts))
	var accepted []int
	for i, r := range rcpts {
		results[i].Rcpt = r
		if err := c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return nil, fmt.Errorf("%s: RCPT TO: %w", via, err)
			}
			results[i].Reply = Wrap(via, reply(se))
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		c.Quit()
		return results, nil
	}
	w, err := c.Data()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			for _, i := range accepted {
				results[i].Reply = Wrap(via, reply(se))
			}
			return results, nil
		}
		return nil, fmt.Errorf("%s: DATA: %w", via, err)
	}
	if _, err := io.Copy(w, msg); err != nil {
		return nil, fmt.Errorf("%s: sending data: %w", via, err)
	}
	if via.Proto == "lmtp" {
		resp, err := w.CloseWithLMTPResponse()
		var lerr smtp.LMTPDataError
		if err != nil && !errors.As(err, &lerr) {
			return nil, fmt.Errorf("%s: end of data: %w", via, err)
		}
		for _, i := range accepted {
			r := rcpts[i]
			switch {
			case resp[r] != nil:
				results[i].Reply = Wrap(via, "250 "+resp[r].StatusText)
			case lerr[r] != nil:
				results[i].Reply = Wrap(via, reply(lerr[r]))
			default:
				results[i].Reply = Wrap(via, "451 4.5.0 no reply for this recipient")
			}
		}
	} else {
		resp, err := w.CloseWithResponse()
		var text string
		switch se := (*smtp.SMTPError)(nil); {
		case err == nil:
			text = "250 " + resp.StatusText
		case errors.As(err, &se):
			text = reply(se)
		default:
			return nil, fmt.Errorf("%s: end of data: %w", via, err)
		}
		for _, i := range accepted {
			results[i].Reply = Wrap(via, text)
		}
	}
	c.Quit()
	return results, nil
}

func all(rcpts []string, reply string) []Result {
	out := make([]Result, len(rcpts))
	for i, r := range rcpts {
		out[i] = Result{Rcpt: r, Reply: reply}
	}
	return out
}

// reply rebuilds the reply line go-smtp took apart.
func reply(se *smtp.SMTPError) string {
	s := strconv.Itoa(se.Code)
	if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
		e := se.EnhancedCode
		s += fmt.Sprintf(" %d.%d.%d", e[0], e[1], e[2])
	}
	return s + " " + se.Message
}
