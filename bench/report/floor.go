package report

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteFloor writes, for each point where a floor was measured, the floors' figures and ours in
// rows one above the other; nothing when there is none. "floor" (bench/cmd/floorfilter) spools
// the message, has clamd scan it and forwards it, nothing else: what a filter built like ours
// (Go, a spool file, a clamd connection per message, a kept next-hop connection) pays for that
// I/O alone. "floor-parts" also decodes the MIME leaves with Go's standard library
// for clamd to scan beside the raw message: the plainest filter that keeps that safety net (not
// a bound: a better decoder costs less).
func WriteFloor(w io.Writer, points []Point) error {
	keys, byKey := rows(points)
	var b strings.Builder
	for _, k := range keys {
		f := byKey[k]
		if len(f[Floor].Samples) == 0 && len(f[FloorParts].Samples) == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nThe floors (bench/cmd/floorfilter): \"floor\" spools the message, has clamd CONTSCAN it and forwards it, " +
				"nothing else: what a filter built like ours pays for that I/O alone; \"floor-parts\" also decodes the MIME leaves " +
				"into parts/ with Go's standard library for clamd to scan beside the raw message, as ours does (the plainest such filter, not a bound):\n\n")
			b.WriteString("| load | sessions | filter | msg/s | × Perl | filter CPU ms/msg | clamd CPU ms/msg | filter CPU / clamd CPU | p50 / p99 ms |\n")
			b.WriteString("|---|--:|---|--:|--:|--:|--:|--:|--:|\n")
		}
		for _, name := range []string{Floor, FloorParts, Ours} {
			p := f[name]
			if len(p.Samples) == 0 {
				continue
			}
			share := math.NaN()
			if c := p.Clamd().Mean; c > 0 {
				share = p.CPU().Mean / c
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", k.load, k.sessions, name,
				fmtStat(p.Rate()), times(Ratio(p, f[Perl])), fmtStat(p.CPU()), fmtStat(p.Clamd()), times(share), latency(p))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
