package amavissmtp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"amavisgo/conf"
	"amavisgo/delivery/deliverytest"
	amsmtp "amavisgo/smtp"
	"amavisgo/smtp/smtptest"
)

func TestSender(t *testing.T) {
	hop := deliverytest.Start(t)
	hop.RejectRcpt("bad@example.com", 550, smtp.EnhancedCode{5, 1, 1}, "unknown user")
	for i, s := range []*Sender{{LocalhostName: "localhost"}, {LocalhostName: "localhost", Pool: amsmtp.NewPool(time.Minute)}} {
		res, err := s.Send(context.Background(), hop.Method, "", []string{"a@example.com", "bad@example.com"},
			strings.NewReader("Subject: x\n\n.dot\nbody\n"))
		if err != nil {
			t.Fatal(err)
		}
		via := hop.Method.String()
		if res[0].Reply.String() != "250 2.0.0 from MTA("+via+"): 250 2.0.0 Ok: queued as SINKQ000"+string(rune('1'+i)) ||
			res[1].Reply.String() != "550 5.1.1 from MTA("+via+"): 550 5.1.1 unknown user" {
			t.Errorf("replies %q", res)
		}
		m := hop.Wait(t, i)
		if m.From != "" || strings.Join(m.Rcpts, ",") != "a@example.com" || string(m.Data) != "Subject: x\r\n\r\n.dot\r\nbody\r\n" {
			t.Errorf("recorded %q %q %q", m.From, m.Rcpts, m.Data)
		}
	}
}

func TestSenderConnectionRefused(t *testing.T) {
	addr := smtptest.Refused(t)
	host, port, _ := net.SplitHostPort(addr)
	_, err := (&Sender{Timeout: 5 * time.Second}).Send(context.Background(), conf.Method{Proto: "smtp", Host: host, Port: port},
		"a@b", []string{"c@d"}, strings.NewReader("x\n"))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want connection refused", err)
	}
}
