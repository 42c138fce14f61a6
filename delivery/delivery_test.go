package delivery_test

import (
	"context"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/delivery/deliverytest"
)

func TestSMTPSenderPerRecipientReplies(t *testing.T) {
	hop := deliverytest.Start(t)
	hop.RejectRcpt("bad@example.com", 550, smtp.EnhancedCode{5, 1, 1}, "<bad@example.com>: Recipient address rejected")
	s := &delivery.SMTPSender{LocalhostName: "localhost"}
	res, err := s.Send(context.Background(), hop.Method, "", []string{"a@example.com", "bad@example.com"},
		strings.NewReader("Subject: x\n\n.leading dot\nbody\n"))
	if err != nil {
		t.Fatal(err)
	}
	via := hop.Method.String()
	want := []string{
		"250 2.0.0 from MTA(" + via + "): 250 2.0.0 Ok: queued as SINKQ0001",
		"550 5.1.1 from MTA(" + via + "): 550 5.1.1 <bad@example.com>: Recipient address rejected",
	}
	for i, r := range res {
		if r.Reply != want[i] {
			t.Errorf("reply %d = %q, want %q", i, r.Reply, want[i])
		}
	}
	m := hop.Wait(t, 0)
	if m.From != "" || len(m.Rcpts) != 1 || string(m.Data) != "Subject: x\r\n\r\n.leading dot\r\nbody\r\n" {
		t.Errorf("recorded %q %q %q", m.From, m.Rcpts, m.Data)
	}
	if !res[0].Temporary() && res[1].Code() != 550 {
		t.Error("Code()")
	}
}

func TestSMTPSenderConnectionRefused(t *testing.T) {
	s := &delivery.SMTPSender{}
	_, err := s.Send(context.Background(), conf.Method{Proto: "smtp", Host: "127.0.0.1", Port: "1"}, "a@b", []string{"c@d"}, strings.NewReader("x\n"))
	if err == nil || !strings.Contains(err.Error(), "connecting to smtp:[127.0.0.1]:1") {
		t.Errorf("err = %v", err)
	}
}

func TestWrap(t *testing.T) {
	m := conf.Method{Proto: "smtp", Host: "::1", Port: "10025"}
	for in, want := range map[string]string{
		"250 2.0.0 Ok: queued as X":  "250 2.0.0 from MTA(smtp:[::1]:10025): 250 2.0.0 Ok: queued as X",
		"451 try later":              "451 4.0.0 from MTA(smtp:[::1]:10025): 451 try later",
		"550-5.1.1 a\r\n550 5.1.1 b": "550 5.1.1 from MTA(smtp:[::1]:10025): 550-5.1.1 a 550 5.1.1 b",
	} {
		if got := delivery.Wrap(m, in); got != want {
			t.Errorf("Wrap(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestToCRLF(t *testing.T) {
	var b strings.Builder
	w := delivery.ToCRLF(&b)
	for _, chunk := range []string{"a\nb\r", "\nc\n", "\r\n", "d"} {
		w.Write([]byte(chunk))
	}
	if b.String() != "a\r\nb\r\nc\r\n\r\nd" {
		t.Errorf("%q", b.String())
	}
}
