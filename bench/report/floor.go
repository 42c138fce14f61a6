package report

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteFloor writes, for each point where the floor (bench/cmd/floorfilter: spool, one
// clamd CONTSCAN, forward, nothing else) was measured, its figures beside ours and Perl's:
// what no filter doing that much could go below on this machine. Nothing when there is none.
func WriteFloor(w io.Writer, points []Point) error {
	keys, byKey := rows(points)
	var b strings.Builder
	for _, k := range keys {
		fl, ok := byKey[k][Floor]
		if !ok || len(fl.Samples) == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nThe floor (bench/cmd/floorfilter: the message spooled, one clamd CONTSCAN, forwarded; nothing decoded, checked, logged or added):\n\n")
			b.WriteString("| load | sessions | floor msg/s | floor/Perl | ours/Perl | floor CPU ms/msg | ours CPU ms/msg | clamd CPU ms/msg (floor / ours) | floor CPU / its clamd CPU | floor p50 / p99 ms |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		}
		ratio := func(p Point) string {
			if r := Ratio(p, byKey[k][Perl]); !math.IsNaN(r) {
				return num(r) + "×"
			}
			return "–"
		}
		share := "–"
		if c := fl.Clamd().Mean; c > 0 {
			share = num(fl.CPU().Mean/c) + "×"
		}
		o := byKey[k][Ours]
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n", k.load, k.sessions,
			fmtStat(fl.Rate()), ratio(fl), ratio(o), fmtStat(fl.CPU()), fmtStat(o.CPU()),
			fmtStat(fl.Clamd()), fmtStat(o.Clamd()), share, latency(fl))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
