package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amavisgo/delivery/deliverytest"
	"amavisgo/internal/testenv"
	"amavisgo/metrics"
)

// `amavisd nanny` shows a session receiving DATA in state d with its log id; `amavisd agent`
// prints amavisd-agent's table, whose totals equal a scrape of the metrics listener.
func TestAgentAndNanny(t *testing.T) {
	next := deliverytest.Start(t)
	port := testenv.FreePort(t)
	clamd := testenv.StartClamd(t)
	e := newEnv(t, next.Method.String(), "allow_run_as_root = true", fmt.Sprintf("metrics_listen = \"%d\"", port),
		"[[av_scanners]]", `name = "ClamAV-clamd"`, `type = "clamd"`, fmt.Sprintf("sockets = [%q]", clamd.TCPAddr), `query = "INSTREAM"`)
	d := e.foreground()
	pid := fmt.Sprintf("%05d", d.cmd.Process.Pid)

	// In DATA: state d. With clamd stopped, the message waits in its virus check: state V.
	c, _ := dial(t, e.addr)
	c.startData("nanny@test")
	out, errOut, code := e.amavisd("nanny")
	if code != 0 || !regexp.MustCompile(`(?m)^session 1: `+pid+`-01 +d +0:00:\d\d d$`).MatchString(out) {
		t.Errorf("nanny in DATA: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	clamd.Process().Signal(syscall.SIGSTOP)
	replied := make(chan string, 1)
	go func() { replied <- c.finishData() }()
	inVirusCheck := regexp.MustCompile(`(?m)^session 1: ` + pid + `-01 +V +0:00:\d\d d=DV$`)
	for deadline := time.Now().Add(10 * time.Second); !inVirusCheck.MatchString(out); {
		if time.Now().After(deadline) {
			t.Errorf("nanny while clamd is stopped: %q, want a line matching %s", out, inVirusCheck)
			break
		}
		time.Sleep(20 * time.Millisecond)
		out, _, _ = e.amavisd("nanny")
	}
	clamd.Process().Signal(syscall.SIGCONT)
	if r := <-replied; !strings.HasPrefix(r, "250 2.0.0 from MTA(") {
		t.Fatalf("reply %s", r)
	}
	c.cmd("QUIT")
	next.Wait(t, 0)

	out, errOut, code = e.amavisd("agent")
	if code != 0 {
		t.Fatalf("agent: exit %d %q", code, errOut)
	}
	if testing.Verbose() {
		t.Log(out)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	scraped, _, err := metrics.ReadCounters(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`^(\S+)\s+(\d+) +\d+/h`)
	printed := map[string]float64{}
	for _, l := range strings.Split(out, "\n") {
		if m := row.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			printed[m[1]] = v
		}
	}
	for _, k := range []string{"InMsgs", "InMsgsOpenRelay", "InMsgsRecips", "ContentBadHdrMsgs", // no local_domains; no Date field
		"InMsgsStatusRelayedUntagged", "OutMsgsRelay", "OpsDec", "OpsVirusCheck"} {
		if printed[k] != 1 || scraped[k] != 1 {
			t.Errorf("%s: agent printed %v, the scrape has %v, want 1", k, printed[k], scraped[k])
		}
	}
	for k, v := range printed {
		if k != "LogEntries" && !strings.HasPrefix(k, "LogEntries") && scraped[k] != v {
			t.Errorf("%s: agent printed %v, the scrape has %v", k, v, scraped[k])
		}
	}
	if !strings.HasPrefix(out, "sysUpTime       TimeTicks ") {
		t.Errorf("agent output starts %q", out[:min(len(out), 60)])
	}

	e.writeConfig(next.Method.String(), "allow_run_as_root = true")
	if _, errOut, code := e.amavisd("agent"); code != 1 || !strings.Contains(errOut, "metrics_listen, which is not set") {
		t.Errorf("agent without metrics_listen: exit %d, %q", code, errOut)
	}
}
