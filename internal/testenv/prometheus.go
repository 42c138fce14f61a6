package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Prometheus is a private Debian prometheus on a loopback port, scraping one target every
// second, with its data in a temporary directory.
type Prometheus struct {
	URL string // http://127.0.0.1:port
	out *bytes.Buffer
}

// StartPrometheus starts prometheus scraping target (host:port, path /metrics) and waits until
// it answers /-/ready. It is stopped when the test ends.
func StartPrometheus(t testing.TB, target string) *Prometheus {
	t.Helper()
	bin := RequireProgram(t, "prometheus", "/usr/bin/prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"+
		"  - job_name: amavis\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	p := &Prometheus{URL: "http://127.0.0.1:" + strconv.Itoa(port), out: &bytes.Buffer{}}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--web.console.templates="+dir, "--web.console.libraries="+dir)
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("prometheus exited during start-up:\n%s", p.out.String())
		default:
		}
		if resp, err := http.Get(p.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 60 s:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Query evaluates an instant PromQL query and returns the value of its single sample, with
// ok false when the result has no sample (yet).
func (p *Prometheus) Query(t testing.TB, q string) (v float64, ok bool) {
	t.Helper()
	values := p.QueryAll(t, q)
	if len(values) != 1 {
		return 0, false
	}
	return values[0], true
}

// QueryAll evaluates an instant PromQL query and returns the values of all its samples; a query
// Prometheus refuses fails the test.
func (p *Prometheus) QueryAll(t testing.TB, q string) []float64 {
	t.Helper()
	resp, err := http.Get(p.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: %s", q, r.Error)
	}
	var out []float64
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		if v, err := strconv.ParseFloat(strings.TrimSpace(str), 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}
