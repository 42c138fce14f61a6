package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Counters are amavis's counter names (InMsgs, ContentVirusMsgs, virus.byname.Eicar...) with
// their values, as amavisd-agent reads them from amavis's snmp.db; times are in milliseconds
// and sizes in bytes, as amavis keeps them.
type Counters map[string]float64

// ReadCounters turns a scrape of our /metrics (Prometheus text format) into amavis's counters.
// A counter that is zero is left out, as amavis creates a counter only when it first counts.
func ReadCounters(r io.Reader) (Counters, time.Time, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading the metrics: %w", err)
	}
	c := Counters{}
	var start time.Time
	add := func(name string, v float64) {
		if v != 0 {
			c[name] += v
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			l := labels(m)
			v := m.GetCounter().GetValue()
			switch name {
			case "amavis_in_messages_total":
				add("InMsgs", v)
			case "amavis_in_recipients_total":
				add("InMsgsRecips", v)
			case "amavis_in_bytes_total":
				add("InMsgsSize", v)
			case "amavis_in_recipients_local_total":
				add("InMsgsRecipsLocal", v)
			case "amavis_in_null_sender_total":
				add("InMsgsBounceNullRPath", v)
			case "amavis_in_messages_direction_total":
				add("InMsgs"+l["direction"], v)
			case "amavis_in_recipients_direction_total":
				add("InMsgsRecips"+l["direction"], v)
			case "amavis_in_bytes_direction_total":
				add("InMsgsSize"+l["direction"], v)
			case "amavis_message_status_total":
				add("InMsgsStatus"+l["status"], v)
			case "amavis_message_status_direction_total":
				add("InMsgsStatus"+l["status"]+l["direction"], v)
			case "amavis_content_total":
				add("Content"+l["ccat"]+"Msgs", v)
			case "amavis_content_direction_total":
				add("Content"+l["ccat"]+"Msgs"+l["direction"], v)
			case "amavis_quarantined_total":
				add("QuarMsgs", v)
				add("QuarMsgs"+l["ccat"], v)
			case "amavis_quarantined_bytes_total":
				add("QuarMsgsSize", v)
				add("QuarMsgsSize"+l["ccat"], v)
			case "amavis_quarantine_failures_total":
				add("QuarAttemptFails", v)
			case "amavis_out_messages_total":
				add("OutMsgs", v)
				add("OutMsgs"+l["kind"], v)
			case "amavis_operations_total":
				add("Ops"+l["op"], v)
			case "amavis_virus_detections_total":
				add("virus.byname."+l["name"], v)
			case "amavis_log_entries_total":
				// amavis counts a line in its own level and every less severe one.
				rank := indexOf(LogLevels, l["level"])
				for i := max(rank, 0); rank >= 0 && i < len(LogLevels); i++ {
					add("LogEntries"+LogLevels[i], v)
				}
				add("LogEntries", v)
			case "amavis_check_duration_seconds":
				add("TimeElapsed"+l["section"], math.Round(m.GetHistogram().GetSampleSum()*1000))
			case "process_start_time_seconds":
				sec, frac := math.Modf(m.GetGauge().GetValue())
				start = time.Unix(int64(sec), int64(frac*1e9))
			}
		}
	}
	return c, start, nil
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		out[p.GetName()] = p.GetValue()
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// total is the counter amavisd-agent shows a counter's percentage of.
func total(k string) string {
	switch {
	case strings.HasPrefix(k, "Content"):
		_, dir, _ := strings.Cut(k[len("Content"):], "Msgs")
		return "InMsgs" + dir
	case strings.HasPrefix(k, "InMsgsSize"):
		return "InMsgsSize"
	case k == "InMsgsRecipsLocal":
		return "InMsgsRecips"
	case strings.HasPrefix(k, "InMsgsRecips"):
		return "InMsgs" + k[len("InMsgsRecips"):]
	case strings.HasPrefix(k, "InMsgs"), strings.HasPrefix(k, "Ops"), k == "OutMsgs", k == "LogEntries":
		return "InMsgs"
	case k == "OutMsgsSize" || k == "QuarMsgsSize":
		return "InMsgsSize"
	case strings.HasPrefix(k, "QuarMsgsSize"):
		return "QuarMsgsSize"
	case strings.HasPrefix(k, "Out"):
		return "OutMsgs"
	case strings.HasPrefix(k, "Quar"):
		return "QuarMsgs"
	case strings.HasPrefix(k, "Log"):
		return "LogEntries"
	}
	return ""
}

// WriteAgent prints the counters as amavisd-agent prints one round: the uptime, then one line
// per counter (name, total, rate per hour since the start, share of its total), then the virus
// names by count. Rates are averages since start, as amavisd-agent's first round shows them.
func WriteAgent(w io.Writer, c Counters, start, now time.Time) {
	up := now.Sub(start)
	ticks := int64(up / (10 * time.Millisecond))
	fmt.Fprintf(w, "%-15s %s %d (%s)\n", "sysUpTime", "TimeTicks", ticks, fmtTicks(ticks))
	perHour := func(v float64) float64 {
		if up <= 0 {
			return 0
		}
		return v / up.Seconds() * 3600
	}
	// share ends a counter's line with its share of its total, none when the total is 0 (as
	// amavisd-agent pads it: one column short for sizes)
	share := func(k string, v float64, width int, none string) {
		if t := total(k); t != "" {
			if c[t] <= 0 {
				fmt.Fprintf(w, "%s %%", none)
			} else {
				fmt.Fprintf(w, " %*.1f %%", width, 100*v/c[t])
			}
			fmt.Fprintf(w, " (%s)", t)
		}
		fmt.Fprintln(w)
	}
	var keys, viruses []string
	for k := range c {
		if strings.HasPrefix(k, "virus.byname.") {
			viruses = append(viruses, k)
		} else {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c[k]
		switch {
		case strings.HasPrefix(k, "TimeElapsed"):
			perMsg := "---"
			if n := c["InMsgs"]; n >= 1 {
				perMsg = fmt.Sprintf("%7.3f", v/1000/n)
			}
			fmt.Fprintf(w, "%-35s %6.0f s   %8s s/msg (%s)\n", k, v/1000, perMsg, "InMsgs")
			continue
		case strings.Contains(k, "Size"):
			const mb = 1024 * 1024
			fmt.Fprintf(w, "%-35s %6.0fMB %4.0fMB/h", k, v/mb, perHour(v)/mb)
			share(k, v, 5, "  ---")
			continue
		}
		fmt.Fprintf(w, "%-35s %6d %6.0f/h", k, int64(v), perHour(v))
		share(k, v, 7, "     ---")
	}
	sort.Slice(viruses, func(i, j int) bool {
		if c[viruses[i]] != c[viruses[j]] {
			return c[viruses[i]] > c[viruses[j]]
		}
		return viruses[i] < viruses[j]
	})
	if len(viruses) > 0 && c["ContentVirusMsgs"] > 0 {
		fmt.Fprintln(w)
		for _, k := range viruses {
			v := c[k]
			fmt.Fprintf(w, "%-35s %6d %6.0f/h %6.1f %% (%s)\n", k, int64(v), perHour(v), 100*v/c["ContentVirusMsgs"], "ContentVirusMsgs")
		}
	}
}

// fmtTicks is a time in hundredths of a second as "D days, H:MM:SS.hh".
func fmtTicks(t int64) string {
	hh := t % 100
	t /= 100
	s := t % 60
	t /= 60
	m := t % 60
	t /= 60
	return fmt.Sprintf("%d days, %d:%02d:%02d.%02d", t/24, t%24, m, s, hh)
}
