package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestProfilerLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:6060", ":6060", "localhost6060"} {
		if ln, err := startProfiler(addr); err == nil {
			ln.Close()
			t.Errorf("startProfiler(%q) listened; want a refusal", addr)
		}
	}
	ln, err := startProfiler("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("goroutine profile: %s\n%s", resp.Status, body)
	}
}
