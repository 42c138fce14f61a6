// Package report turns benchmark measurements into a markdown table, CSV
// files and a PNG plot.
package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Filter names as they appear in the outputs.
const (
	Ours    = "ours"
	Perl    = "perl"
	Ceiling = "ceiling"
	OursSQL = "ours-sql" // ours with the SQL log on (report/sql.go)
	Floor   = "floor"    // a filter that does only the I/O (bench/cmd/floorfilter, report/floor.go)
	// FloorParts is the floor that also has clamd scan the decoded MIME leaves, as ours does.
	FloorParts = "floor-parts"
)

// Load names: the targets refer to the first two.
const (
	Load2KB   = "2 KB"
	Load100KB = "100 KB"
	LoadMix   = "2 KB + 10% EICAR"
	// The spam loads: the 2 KB message through a spam engine both filters ask.
	LoadSpamd  = "2 KB via spamd"
	LoadRspamd = "2 KB via rspamd"
	// Load10MB: 32 sessions each sending a 10 MB message (a 7 MiB base64 attachment).
	Load10MB = "10 MB"
)

// Sample is one repetition of one point.
type Sample struct {
	MsgsPerSec float64
	CPUms      float64 // filter CPU per message, milliseconds
	ClamdCPUms float64 // clamd CPU per message, milliseconds
	DBCPUms    float64 // the SQL log's PostgreSQL CPU per message, milliseconds (ours-sql)
	// EngineCPUms is the spam engine's CPU per message (spamd's or rspamd's processes), 0
	// for a load without one.
	EngineCPUms float64
	PeakRSSMB   float64 // peak resident memory of the filter's processes, MiB
	// P50ms and P99ms are the median and 99th percentile of the messages' latencies, from
	// MAIL FROM to the reply after the final dot, milliseconds.
	P50ms, P99ms float64
	LoadAvg      float64 // the machine's 1-minute load average after the repetition
}

// Point is one measured configuration.
type Point struct {
	Filter   string // Ours, Perl, Ceiling, OursSQL, Floor or FloorParts
	Load     string // Load2KB, Load100KB, LoadMix
	Sessions int
	Messages int // messages per repetition
	Samples  []Sample
}

// Stat summarizes the repetitions of one figure.
type Stat struct {
	N                  int
	Mean, SD, Min, Max float64
}

// Summarize computes mean, sample standard deviation, minimum and maximum.
func Summarize(xs []float64) Stat {
	s := Stat{N: len(xs), Min: math.Inf(1), Max: math.Inf(-1)}
	if len(xs) == 0 {
		return Stat{}
	}
	for _, x := range xs {
		s.Mean += x
		s.Min = min(s.Min, x)
		s.Max = max(s.Max, x)
	}
	s.Mean /= float64(len(xs))
	if len(xs) > 1 {
		for _, x := range xs {
			s.SD += (x - s.Mean) * (x - s.Mean)
		}
		s.SD = math.Sqrt(s.SD / float64(len(xs)-1))
	}
	return s
}

func (p Point) stat(f func(Sample) float64) Stat {
	xs := make([]float64, len(p.Samples))
	for i, s := range p.Samples {
		xs[i] = f(s)
	}
	return Summarize(xs)
}

// Rate, CPU, Clamd and RSS summarize the point's figures.
func (p Point) Rate() Stat  { return p.stat(func(s Sample) float64 { return s.MsgsPerSec }) }
func (p Point) CPU() Stat   { return p.stat(func(s Sample) float64 { return s.CPUms }) }
func (p Point) Clamd() Stat { return p.stat(func(s Sample) float64 { return s.ClamdCPUms }) }
func (p Point) RSS() Stat   { return p.stat(func(s Sample) float64 { return s.PeakRSSMB }) }

// P50 and P99 summarize the latency percentiles over the repetitions.
func (p Point) P50() Stat { return p.stat(func(s Sample) float64 { return s.P50ms }) }
func (p Point) P99() Stat { return p.stat(func(s Sample) float64 { return s.P99ms }) }

// Engine summarizes the spam engine's CPU per message.
func (p Point) Engine() Stat { return p.stat(func(s Sample) float64 { return s.EngineCPUms }) }

// WriteSpamMarkdown writes a table for the loads through a spam engine: each filter's rate and
// CPU beside the engine's CPU, and the filter's CPU as a share of the engine's (the goal: ours
// adds at most 5 % to what the engine spends). Nothing when no such load was measured.
func WriteSpamMarkdown(w io.Writer, points []Point) error {
	keys, byKey := rows(points)
	var b strings.Builder
	for _, k := range keys {
		if k.load != LoadSpamd && k.load != LoadRspamd {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nThrough a spam engine (its own CPU measured over its process tree):\n\n")
			b.WriteString("| load | sessions | ours msg/s | Perl msg/s | ours CPU ms/msg | engine CPU ms/msg (ours) | ours / engine CPU | Perl CPU ms/msg | engine CPU ms/msg (Perl) | Perl / engine CPU |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		}
		f := byKey[k]
		share := func(p Point) string {
			c, e := p.CPU(), p.Engine()
			if c.N == 0 || e.Mean == 0 {
				return "–"
			}
			return num(100*c.Mean/e.Mean) + " %"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", k.load, k.sessions,
			fmtStat(f[Ours].Rate()), fmtStat(f[Perl].Rate()),
			fmtStat(f[Ours].CPU()), fmtStat(f[Ours].Engine()), share(f[Ours]),
			fmtStat(f[Perl].CPU()), fmtStat(f[Perl].Engine()), share(f[Perl]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// key identifies a row of the table: a load at a number of sessions.
type key struct {
	load     string
	sessions int
}

// rows groups points by load (in first-seen order) and sessions (ascending).
func rows(points []Point) ([]key, map[key]map[string]Point) {
	byKey := map[key]map[string]Point{}
	var loads []string
	for _, p := range points {
		k := key{p.Load, p.Sessions}
		if byKey[k] == nil {
			byKey[k] = map[string]Point{}
		}
		byKey[k][p.Filter] = p
		if !slices.Contains(loads, p.Load) {
			loads = append(loads, p.Load)
		}
	}
	var keys []key
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.load != b.load {
			return slices.Index(loads, a.load) - slices.Index(loads, b.load)
		}
		return a.sessions - b.sessions
	})
	return keys, byKey
}

// fmtStat prints mean ±sd with a precision that suits the magnitude.
func fmtStat(s Stat) string {
	if s.N == 0 {
		return "–"
	}
	return num(s.Mean) + " ±" + num(s.SD)
}

func num(x float64) string {
	switch a := math.Abs(x); {
	case a >= 100:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

// Ratio is ours/Perl of the mean message rates, or NaN if either is missing.
func Ratio(ours, perl Point) float64 {
	o, p := ours.Rate(), perl.Rate()
	if o.N == 0 || p.N == 0 || p.Mean == 0 {
		return math.NaN()
	}
	return o.Mean / p.Mean
}

// WriteMarkdown writes one table row per load and session count: message
// rates with their spread, the ratio ours/Perl, CPU per message and peak RSS.
func WriteMarkdown(w io.Writer, points []Point) error {
	keys, byKey := rows(points)
	var b strings.Builder
	b.WriteString("| load | sessions | ours msg/s | Perl msg/s | ceiling msg/s | ours/Perl | ours CPU ms/msg | Perl CPU ms/msg | clamd CPU ms/msg (ours / Perl) | ours peak RSS MiB | Perl peak RSS MiB | ours p50 / p99 ms | Perl p50 / p99 ms |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, k := range keys {
		f := byKey[k]
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s |\n",
			k.load, k.sessions,
			fmtStat(f[Ours].Rate()), fmtStat(f[Perl].Rate()), fmtStat(f[Ceiling].Rate()), times(Ratio(f[Ours], f[Perl])),
			fmtStat(f[Ours].CPU()), fmtStat(f[Perl].CPU()),
			fmtStat(f[Ours].Clamd()), fmtStat(f[Perl].Clamd()),
			fmtStat(f[Ours].RSS()), fmtStat(f[Perl].RSS()),
			latency(f[Ours]), latency(f[Perl]))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// times is a ratio as "12.3×", "–" when it is NaN (a figure missing).
func times(r float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	return num(r) + "×"
}

// latency is "p50 / p99" in milliseconds, the means over the repetitions.
func latency(p Point) string {
	if len(p.Samples) == 0 {
		return "–"
	}
	return num(p.P50().Mean) + " / " + num(p.P99().Mean)
}

// WriteCSV writes one line per point with every statistic; for our points
// the ratio ours/Perl of the message rates is filled in.
func WriteCSV(w io.Writer, points []Point) error {
	keys, byKey := rows(points)
	cw := csv.NewWriter(w)
	head := []string{"filter", "load", "sessions", "messages_per_rep", "reps"}
	for _, fig := range []string{"msgs_per_s", "cpu_ms_per_msg", "clamd_cpu_ms_per_msg", "peak_rss_mib", "p50_ms", "p99_ms"} {
		for _, st := range []string{"mean", "sd", "min", "max"} {
			head = append(head, fig+"_"+st)
		}
	}
	cw.Write(append(head, "ours_over_perl"))
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, k := range keys {
		for _, filter := range []string{Ours, Perl, Ceiling, OursSQL, Floor, FloorParts} {
			p, ok := byKey[k][filter]
			if !ok {
				continue
			}
			rec := []string{p.Filter, p.Load, strconv.Itoa(p.Sessions), strconv.Itoa(p.Messages), strconv.Itoa(len(p.Samples))}
			for _, s := range []Stat{p.Rate(), p.CPU(), p.Clamd(), p.RSS(), p.P50(), p.P99()} {
				rec = append(rec, g(s.Mean), g(s.SD), g(s.Min), g(s.Max))
			}
			ratio := ""
			if r := Ratio(p, byKey[k][Perl]); filter == Ours && !math.IsNaN(r) {
				ratio = g(r)
			}
			cw.Write(append(rec, ratio))
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteRepsCSV writes every repetition as measured.
func WriteRepsCSV(w io.Writer, points []Point) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"filter", "load", "sessions", "messages", "rep", "msgs_per_s", "cpu_ms_per_msg", "clamd_cpu_ms_per_msg", "peak_rss_mib", "loadavg1", "engine_cpu_ms_per_msg", "p50_ms", "p99_ms"})
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	for _, p := range points {
		for i, s := range p.Samples {
			cw.Write([]string{p.Filter, p.Load, strconv.Itoa(p.Sessions), strconv.Itoa(p.Messages), strconv.Itoa(i + 1),
				g(s.MsgsPerSec), g(s.CPUms), g(s.ClamdCPUms), g(s.PeakRSSMB), g(s.LoadAvg), g(s.EngineCPUms), g(s.P50ms), g(s.P99ms)})
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteTargets checks the figures against the goals of the benchmark issue
// and writes one line per goal with the measured value. A goal whose points
// were not measured says so.
func WriteTargets(w io.Writer, points []Point) error {
	find := func(filter, load string, sessions int) (Point, bool) {
		for _, p := range points {
			if p.Filter == filter && p.Load == load && p.Sessions == sessions && len(p.Samples) > 0 {
				return p, true
			}
		}
		return Point{}, false
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	var b strings.Builder
	b.WriteString("| goal | measured | |\n|---|---|---|\n")

	if o, ok1 := find(Ours, Load2KB, 8); ok1 {
		if p, ok2 := find(Perl, Load2KB, 8); ok2 {
			r := Ratio(o, p)
			fmt.Fprintf(&b, "| 2 KB, 8 sessions: ≥ 20 × Perl's msg/s | %s× | %s |\n", num(r), verdict(r >= 20))
			fmt.Fprintf(&b, "| 2 KB, 8 sessions: ≥ 30 × Perl's msg/s (issue 21) | %s× | %s |\n", num(r), verdict(r >= 30))
		}
	} else {
		b.WriteString("| 2 KB, 8 sessions: ≥ 20 × Perl's msg/s | not measured (add 8 to -sessions) | |\n")
	}

	worst := math.Inf(-1)
	for _, p := range points {
		if p.Filter == Ours && p.Load == Load2KB && len(p.Samples) > 0 {
			worst = max(worst, p.CPU().Mean)
		}
	}
	if !math.IsInf(worst, -1) {
		fmt.Fprintf(&b, "| CPU per 2 KB message ≤ 1.0 ms (worst session count) | %s ms | %s |\n", num(worst), verdict(worst <= 1.0))
	}
	// issue 21: the filter's CPU per message no more than clamd's for the same message
	share := math.Inf(-1)
	for _, p := range points {
		if p.Filter == Ours && p.Load == Load2KB && p.Clamd().Mean > 0 {
			share = max(share, p.CPU().Mean/p.Clamd().Mean)
		}
	}
	if !math.IsInf(share, -1) {
		fmt.Fprintf(&b, "| CPU per 2 KB message ≤ clamd's (issue 21; worst session count) | %s× clamd's | %s |\n", num(share), verdict(share <= 1))
	}

	least := math.Inf(1)
	for _, p := range points {
		if p.Filter == Ours && p.Load == Load100KB {
			if perl, ok := find(Perl, Load100KB, p.Sessions); ok {
				if r := Ratio(p, perl); !math.IsNaN(r) {
					least = min(least, r)
				}
			}
		}
	}
	if !math.IsInf(least, 1) {
		fmt.Fprintf(&b, "| 100 KB: ≥ 10 × Perl's msg/s (lowest ratio) | %s× | %s |\n", num(least), verdict(least >= 10))
		fmt.Fprintf(&b, "| 100 KB: ≥ 15 × Perl's msg/s (issue 21; lowest ratio) | %s× | %s |\n", num(least), verdict(least >= 15))
	}

	if o, ok := find(Ours, Load2KB, 8); ok && o.P99().N > 0 {
		p99 := o.P99().Mean
		fmt.Fprintf(&b, "| p99 latency, 2 KB at 8 sessions < 10 ms | %s ms | %s |\n", num(p99), verdict(p99 < 10))
	}

	peak := math.Inf(-1)
	for _, p := range points {
		if p.Filter == Ours && p.Sessions == 32 && len(p.Samples) > 0 {
			peak = max(peak, p.RSS().Max)
		}
	}
	if !math.IsInf(peak, -1) {
		fmt.Fprintf(&b, "| peak RSS at 32 sessions ≤ 64 MB (largest of any load) | %s MiB | %s |\n", num(peak), verdict(peak <= 64))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
