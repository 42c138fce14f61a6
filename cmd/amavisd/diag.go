package main

import (
	"context"

	"amavisgo/conf"
	"amavisgo/policybank"
)

// startupDiagnostics logs each listen socket with its policy bank, which a postmaster checks
// after a start; package amavis logs the AV engines and decoders it found.
func startupDiagnostics(cfg *conf.Config, logf func(format string, args ...any)) {
	for _, l := range cfg.Listeners() {
		bank := "''"
		if p, err := policybank.ForSocket(cfg, l.Address); err == nil && p.PolicyBankPath != "" {
			bank = p.PolicyBankPath
		}
		logf("listening on %s:%s, policy bank %s", l.Network, l.Address, bank)
	}
	for _, w := range postfixMaxproc(context.Background(), cfg, "") {
		logf("%s", w)
	}
}
