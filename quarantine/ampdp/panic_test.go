package ampdp

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"amavisgo/conf"
)

// A request whose handling panics gets amavis's tempfail answer and a log with the stack; the
// next request on the same connection is served.
func TestPanicInRequestIsTempfail(t *testing.T) {
	c, err := conf.Parse("t.toml", []byte("myhostname = \"mx.example.com\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	srv := &Server{Config: c, Log: slog.New(slog.NewTextHandler(&log, nil)),
		Check: func(context.Context, *conf.Policy, Request) []string {
			var fields []string
			return fields[7:] // out of range: the kind of bug hostile input finds
		}}
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), server, &c.Policy) }()
	ask := asker(t, client)
	want := "setreply=450 4.5.0 Failure:%20panic:%20runtime%20error:%20slice%20bounds%20out%20of%20range%20[7:0]\nreturn_value=tempfail\nexit_code=75"
	if got := ask("request=AM.PDP"); got != want {
		t.Errorf("panicking request:\n got %q\nwant %q", got, want)
	}
	if got := ask("request=smtpd_access_policy"); got != "action=DUNNO" {
		t.Errorf("next request: %q", got)
	}
	client.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeConn: %v", err)
	}
	if !strings.Contains(log.String(), "AM.PDP: TROUBLE in AM.PDP: panic: runtime error: slice bounds out of range [7:0]") ||
		!strings.Contains(log.String(), "panic stack: amavisgo/quarantine/ampdp.TestPanicInRequestIsTempfail.func1 at ") {
		t.Errorf("log:\n%s", log.String())
	}
}
