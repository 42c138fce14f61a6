package amavis

import (
	"errors"

	"amavisgo/smtp"
	"amavisgo/verdict"
)

// decide fills in each recipient's decision (verdict.Decide): its categories, its destiny and,
// when blocked, its reply, which is then final.
func (d *Daemon) decide(m *Message) error {
	v, err := verdict.Decide(verdictInput(m))
	if err != nil {
		return &stageError{section: "check-banned", err: err}
	}
	for _, n := range v.Notes {
		m.tl.Logf(2, "%s", n)
	}
	m.Verdict = v
	if v.Tempfail != (smtp.Reply{}) {
		return &stageError{section: "virus_scan", err: errors.New(m.AV.FailReason), reply: v.Tempfail}
	}
	return nil
}

// verdictInput is what verdict.Decide is told about m.
func verdictInput(m *Message) verdict.Input {
	return verdict.Input{
		Config: m.cfg, Policy: m.Policy, LogID: m.LogID,
		Sender: m.Sender, Recipients: m.Recips, Header: m.Header, SMTPUTF8: m.SMTPUTF8,
		Size: m.Size, Bulk: m.Bulk, Unpacked: m.Unpacked, AV: m.AV, Spam: m.Spam, Received: m.RxTime,
	}
}
