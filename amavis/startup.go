package amavis

import (
	"fmt"
	"os"

	"amavisgo/conf"
)

// startingLine is amavis's first line at start (Amavis.pm's "starting. <program> at <host>
// <version>, Unicode aware, LANG=..."). The version is introduced as amavisd-new-compatible: log
// parsers such as logwatch's amavis service recognise the line by "amavisd-new-" and list every
// other form as unmatched.
func startingLine(cfg *conf.Config) string {
	return fmt.Sprintf("starting. %s at %s amavisd-new-compatible %s, Unicode aware, LANG=%q",
		os.Args[0], cfg.Myhostname, Version, os.Getenv("LANG"))
}

// Logf writes a process-level line at level, if the base policy's log_level (or -d) lets it
// through: the command line's facts about sockets and signals, which amavis logs at level 1.
func (d *Daemon) Logf(level int, format string, args ...any) {
	(&taskLog{l: d.log, level: d.cfg.Load().LogLevel}).Logf(level, format, args...)
}
