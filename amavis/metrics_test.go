package amavis

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/metrics"
	"amavisgo/smtp/smtptest"
)

// metricsDaemon is a daemon with a real clamd, Debian's banned rules and metrics_listen on a
// free loopback port; it returns the daemon, clamd and the metrics base URL.
func metricsDaemon(t *testing.T, h *smtptest.NextHop) (*testDaemon, *testenv.Clamd, string) {
	t.Helper()
	clamd := testenv.StartClamd(t)
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	td := startDaemon(t, h.Addr, fmt.Sprintf(`
QUARANTINEDIR = %q
metrics_listen = "%d"
%s
[[av_scanners]]
name = "ClamAV-clamd"
type = "clamd"
sockets = [%q]
query = "CONTSCAN {}\n"
clean_pattern = '\bOK$'
infected_pattern = '\bFOUND$'
names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'
`, t.TempDir(), port, rules, clamd.Socket))
	return td, clamd, "http://127.0.0.1:" + strconv.Itoa(port)
}

func scrape(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

// 10 clean, 3 EICAR and 1 banned message: the scrape counts them exactly in amavis's families,
// promtool finds nothing to complain about, and amavisd-agent's view of it has the same totals.
func TestMetricsCountMessages(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td, clamd, base := metricsDaemon(t, h)
	prom := testenv.StartPrometheus(t, strings.TrimPrefix(base, "http://"))
	msgs := eicarMessages(t)
	for i := range 10 {
		sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, mimeMessage("text/plain", fmt.Sprintf("clean %d\r\n", i)))
	}
	for _, k := range []string{"plain", "zip", "tar.gz"} {
		if got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, msgs[k]); !strings.Contains(got[0], "INFECTED") {
			t.Fatalf("EICAR %s: %q", k, got[0])
		}
	}
	exe := mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
		"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		wrap76(base64.StdEncoding.EncodeToString(pe))+"--b1--\r\n")
	if got := sendMessage(t, td, false, "", []string{"x@example.com"}, exe); !strings.Contains(got[0], "BANNED") {
		t.Fatalf("banned: %q", got[0])
	}
	waitFor(t, "14 main log lines", func() bool { return len(mainLogLines(td.log.String())) == 14 })

	text := scrape(t, base+"/metrics")
	for _, want := range []string{
		`amavis_in_messages_total 14`,
		`amavis_in_recipients_total 14`,
		`amavis_in_null_sender_total 1`,
		`amavis_in_messages_direction_total{direction="Inbound"} 14`,
		`amavis_in_messages_direction_total{direction="Outbound"} 0`,
		`amavis_content_total{ccat="Clean"} 10`,
		`amavis_content_total{ccat="Virus"} 3`,
		`amavis_content_total{ccat="Banned"} 1`,
		`amavis_content_direction_total{ccat="Virus",direction="Inbound"} 3`,
		`amavis_message_status_total{status="RelayedUntagged"} 10`,
		`amavis_message_status_total{status="Relayed"} 10`,
		`amavis_message_status_total{status="Discarded"} 4`,
		`amavis_message_status_direction_total{direction="Inbound",status="Discarded"} 4`,
		`amavis_quarantined_total{ccat="Virus"} 3`,
		`amavis_quarantined_total{ccat="Banned"} 1`,
		`amavis_out_messages_total{kind="Relay"} 10`,
		`amavis_operations_total{op="Dec"} 14`,
		`amavis_operations_total{op="VirusCheck"} 14`, // the banned message is scanned too, as in amavis
		`amavis_virus_detections_total{name="` + clamd.VirusName + `"} 3`,
		`amavis_scanner_requests_total{result="infected",scanner="ClamAV-clamd"} 3`,
		`amavis_scanner_requests_total{result="clean",scanner="ClamAV-clamd"} 11`,
		`amavis_scanner_duration_seconds_count{scanner="ClamAV-clamd"} 14`,
		`amavis_check_duration_seconds_count{section="Total"} 14`,
		`amavis_check_duration_seconds_count{section="VirusCheck"} 14`,
		`amavis_max_sessions 4`,
		`amavis_config_last_reload_successful 1`,
	} {
		if !bytes.Contains(text, []byte("\n"+want+"\n")) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepAmavis(text))
	}
	// Log lines by level: as many notices as main log lines and other level-0 lines written.
	notices := strings.Count(td.log.String(), "\n")
	if !bytes.Contains(text, []byte(`amavis_log_entries_total{level="Notice"} `)) || notices == 0 {
		t.Errorf("no log_entries_total for notices")
	}

	// Debian's prometheus, scraping every second, sees the same counts.
	for q, want := range map[string]float64{
		`sum(amavis_content_total{ccat="Virus"})`:               3,
		`sum(amavis_content_total{ccat="Clean"})`:               10,
		`sum(amavis_content_total{ccat="Banned"})`:              1,
		`amavis_in_messages_total`:                              14,
		`sum(amavis_quarantined_total)`:                         4,
		`amavis_message_status_total{status="RelayedUntagged"}`: 10,
		// scraped at least once in the last minute (a scrape may time out on a loaded machine)
		`max_over_time(up{job="amavis"}[1m])`: 1,
	} {
		waitLong(t, fmt.Sprintf("prometheus: %s == %v", q, want), func() bool {
			v, ok := prom.Query(t, q)
			return ok && v == want
		})
	}

	// Every query of the Grafana dashboard in contrib/ runs and, but for the failures, finds data.
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile("../contrib/grafana/amavisgo-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	expand := strings.NewReplacer("$__rate_interval", "30s", "$__range", "5m", "$instance", ".*")
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			q := expand.Replace(tg.Expr)
			if strings.Contains(q, "failure") || strings.Contains(q, `result="failed"`) || strings.Contains(q, `level=~"Crit`) {
				prom.QueryAll(t, q) // valid, but nothing failed in this test
				continue
			}
			waitLong(t, fmt.Sprintf("panel %q: %s", p.Title, q), func() bool { return len(prom.QueryAll(t, q)) > 0 })
		}
	}

	promtool := testenv.RequireProgram(t, "promtool", "/usr/bin/promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	c, start, err := metrics.ReadCounters(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"InMsgs": 14, "InMsgsInbound": 14, "ContentCleanMsgs": 10, "ContentVirusMsgs": 3,
		"ContentBannedMsgs": 1, "InMsgsStatusRelayedUntagged": 10, "InMsgsStatusDiscardedInbound": 4, "QuarMsgs": 4,
		"QuarMsgsVirus": 3, "OpsVirusCheck": 14, "virus.byname." + clamd.VirusName: 3} {
		if c[k] != want {
			t.Errorf("agent counter %s = %v, want %v", k, c[k], want)
		}
	}
	var agent bytes.Buffer
	metrics.WriteAgent(&agent, c, start, time.Now())
	for _, want := range []string{
		fmt.Sprintf("%-35s %6d ", "ContentVirusMsgs", 3),
		fmt.Sprintf("%-35s %6d ", "InMsgs", 14),
		fmt.Sprintf(" %7.1f %% (InMsgs)", 100*10.0/14),
	} {
		if !strings.Contains(agent.String(), want) {
			t.Errorf("agent output lacks %q:\n%s", want, agent.String())
		}
	}
}

// While clamd is stopped (SIGSTOP) a message waits in its virus check: /nanny shows its session
// in state V with its log id, and the sessions gauge counts it under "virus".
func TestMetricsNannyShowsVirusCheck(t *testing.T) {
	h := hop(t, smtptest.Options{})
	td, clamd, base := metricsDaemon(t, h)
	p := clamd.Process()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			p.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	done := make(chan []string, 1)
	go func() {
		done <- sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, mimeMessage("text/plain", "held\r\n"))
	}()
	var nanny string
	waitFor(t, "a session in state V", func() bool {
		nanny = string(scrape(t, base+"/nanny"))
		return strings.Contains(nanny, " V ")
	})
	f := strings.Fields(strings.TrimSpace(nanny))
	if len(f) != 5 || f[1] != "V" || !strings.HasPrefix(f[3], fmt.Sprintf("%05d-", os.Getpid())) || !strings.HasSuffix(f[4], "=DV") {
		t.Errorf("nanny line %q", nanny)
	}
	if text := scrape(t, base+"/metrics"); !bytes.Contains(text, []byte("\namavis_sessions{state=\"virus\"} 1\n")) {
		t.Errorf("sessions gauge:\n%s", grepAmavis(text))
	}
	resume()
	if got := <-done; !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
		t.Errorf("reply after clamd resumed: %q", got[0])
	}
	waitFor(t, "no session in V", func() bool { return !strings.Contains(string(scrape(t, base+"/nanny")), " V ") })
}

func grepAmavis(text []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "amavis_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// waitLong is waitFor for what depends on Prometheus's scrapes (one a second, each of which
// may be slow on a loaded machine): up to 60 s.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
