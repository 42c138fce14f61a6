package amavissmtp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	amsmtp "amavisgo/amavis/smtp"
	"amavisgo/delivery/deliverytest"
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
		if res[0].Reply != "250 2.0.0 from MTA("+via+"): 250 2.0.0 Ok: queued as SINKQ000"+string(rune('1'+i)) ||
			res[1].Reply != "550 5.1.1 from MTA("+via+"): 550 5.1.1 unknown user" {
			t.Errorf("replies %q", res)
		}
		m := hop.Wait(t, i)
		if m.From != "" || strings.Join(m.Rcpts, ",") != "a@example.com" || string(m.Data) != "Subject: x\r\n\r\n.dot\r\nbody\r\n" {
			t.Errorf("recorded %q %q %q", m.From, m.Rcpts, m.Data)
		}
	}
}
