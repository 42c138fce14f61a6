package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"amavisgo/metrics"
)

// verbMonitor carries out `agent` and `nanny`: amavisd-agent's and amavisd-nanny's views of the
// running daemon, read from its metrics listener instead of amavis's BerkeleyDB files.
func verbMonitor(o *options, stdout io.Writer) error {
	c, err := o.loadConfig()
	if err != nil {
		return err
	}
	addr := c.MetricsAddr()
	if addr == "" {
		return errors.New(o.verb + " reads the running daemon's counters from metrics_listen, which is not set")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	path := "/metrics"
	if o.verb == "nanny" {
		path = "/nanny"
	}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return fmt.Errorf("is the daemon running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s", addr, path, resp.Status)
	}
	if o.verb == "nanny" {
		return writeNanny(stdout, resp.Body)
	}
	counters, start, err := metrics.ReadCounters(resp.Body)
	if err != nil {
		return err
	}
	metrics.WriteAgent(stdout, counters, start, time.Now())
	return nil
}

// writeNanny prints the daemon's sessions as amavisd-nanny prints amavis's children: the task
// (log id, or the state when idle), the time in it, and a bar of the states it went through.
func writeNanny(w io.Writer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			return fmt.Errorf("unexpected line from the daemon: %q", sc.Text())
		}
		secs, _ := strconv.ParseFloat(f[2], 64)
		task := f[3]
		if task == "-" {
			task = f[1]
		}
		bar := f[4]
		if bar == "-" {
			bar = ""
		}
		fmt.Fprintf(w, "session %s: %-11s %s %s %s\n", f[0], task, f[1], fmtAge(time.Duration(secs*float64(time.Second))), bar)
		n++
	}
	if n == 0 {
		fmt.Fprintln(w, "no sessions in progress")
	}
	return sc.Err()
}

// fmtAge is amavisd-nanny's age: "  H:MM:SS", or "Dd" in front once past a day.
func fmtAge(d time.Duration) string {
	t := int64(d / time.Second)
	s, m, h, days := t%60, t/60%60, t/3600%24, t/86400
	prefix := "  "
	if days > 0 {
		prefix = strconv.FormatInt(days, 10) + "d"
	}
	return fmt.Sprintf("%s%d:%02d:%02d", prefix, h, m, s)
}
