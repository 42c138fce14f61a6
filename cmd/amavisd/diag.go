package main

import (
	"sort"

	"amavisgo/conf"
	"amavisgo/policybank"
	"amavisgo/unpack"
)

// startupDiagnostics logs what a postmaster checks after a start, as amavis does: each listen
// socket with its policy bank, and each decoder: in-process, the external program found on
// path, or missing.
func startupDiagnostics(cfg *conf.Config, logf func(format string, args ...any)) {
	for _, l := range cfg.Listeners() {
		key := l.Address
		bank := "''"
		if p, err := policybank.ForSocket(cfg, key); err == nil && p.PolicyBankPath != "" {
			bank = p.PolicyBankPath
		}
		logf("listening on %s:%s, policy bank %s", l.Network, l.Address, bank)
	}
	u := unpack.New(unpack.Limits{}, cfg.Path, func(format string, args ...any) { logf(format, args...) })
	progs := u.Programs()
	formats := make([]string, 0, len(progs))
	for f := range progs {
		formats = append(formats, f)
	}
	sort.Strings(formats)
	for _, f := range formats {
		if prog := progs[f]; prog != "" {
			logf("Found decoder for %-8s at %s", "."+f, prog)
		}
	}
}
