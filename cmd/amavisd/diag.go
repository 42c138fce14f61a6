package main

import (
	"context"
	"sort"
	"time"

	"amavisgo/conf"
	"amavisgo/policybank"
	"amavisgo/scanners"
	"amavisgo/unpack"
)

// startupDiagnostics logs what a postmaster checks after a start, as amavis does: each listen
// socket with its policy bank; each decoder: in-process, the external program found on path,
// or missing; each AV engine: its program, or whether each clamd answers and its VERSION.
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
	avDiagnostics(cfg, logf)
}

// avDiagTimeout bounds the whole check of the AV engines at start-up.
const avDiagTimeout = 15 * time.Second

func avDiagnostics(cfg *conf.Config, logf func(format string, args ...any)) {
	if len(cfg.AvScanners)+len(cfg.AvScannersBackup) == 0 {
		logf("(!)av_scanners is empty: mail is not checked for viruses")
		return
	}
	set, err := scanners.NewSet(cfg.AvScanners, cfg.AvScannersBackup, scanners.Options{Path: cfg.Path,
		Logf: func(level int, format string, args ...any) {
			if level <= 0 {
				logf(format, args...)
			}
		}})
	if err != nil {
		logf("(!)av scanners: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), avDiagTimeout)
	defer cancel()
	for _, st := range set.Diagnose(ctx) {
		for _, a := range st.Addrs {
			if a.Err != nil {
				logf("(!)%s: clamd at %s does not answer: %v", st.Name, a.Addr, a.Err)
			} else {
				logf("%s: clamd at %s is %s", st.Name, a.Addr, a.Version)
			}
		}
		if st.Err != nil {
			logf("(!)%s is not usable: %v", st.Name, st.Err)
		}
	}
}
