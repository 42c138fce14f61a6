package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteSQLCost writes, for each point where ours-sql was measured, its rate and CPU beside
// ours without the SQL log, and PostgreSQL's CPU per message; nothing when there is none.
func WriteSQLCost(w io.Writer, points []Point) error {
	keys, byKey := rows(points)
	var b strings.Builder
	for _, k := range keys {
		s, ok := byKey[k][OursSQL]
		if !ok || len(s.Samples) == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\nCost of the SQL log (ours-sql: storage_sql_dsn on a PostgreSQL 15 of this machine, amavis's schema):\n\n")
			b.WriteString("| load | sessions | ours msg/s | ours-sql msg/s | rate lost | ours CPU ms/msg | ours-sql CPU ms/msg | PostgreSQL CPU ms/msg |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|\n")
		}
		o := byKey[k][Ours]
		lost := "–"
		if len(o.Samples) > 0 && o.Rate().Mean > 0 {
			lost = fmt.Sprintf("%.0f %%", 100*(1-s.Rate().Mean/o.Rate().Mean))
		}
		db := s.stat(func(x Sample) float64 { return x.DBCPUms })
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", s.Load, s.Sessions, fmtStat(o.Rate()), fmtStat(s.Rate()),
			lost, fmtStat(o.CPU()), fmtStat(s.CPU()), fmtStat(db))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
