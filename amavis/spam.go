package amavis

import (
	"context"
	"errors"
	"strings"

	"amavisgo/conf"
	"amavisgo/quarantine"
	"amavisgo/smtp"
	"amavisgo/spam"
	"amavisgo/verdict"
)

// newSpamSet builds the spam engines of cfg (spam_scanners).
func newSpamSet(cfg *conf.Config) (*spam.Set, error) {
	return spam.NewSet(cfg.SpamScanners, cfg.SaMailBodySizeLimit)
}

// spamCheck asks the spam engines, as check_mail in Amavis.pm does: not at all without
// engines, nor when every recipient bypasses spam checks, is blocked anyway by what was
// found so far, or is decided by the sender lists. A failed engine is logged and counts as score 0; with
// spam_scanner_failure = "tempfail" it is a 451 instead.
func (d *Daemon) spamCheck(ctx context.Context, m *Message, wanted bool) error {
	if !m.eng.spam.Configured() {
		return nil
	}
	m.Spam = &verdict.SpamInput{}
	if !wanted || blockedAnyway(m) || verdict.AllListed(m.Policy, m.Sender, m.Header, m.Recips) {
		return nil
	}
	hs := m.Size
	if m.HeaderComplete {
		hs = min(int64(len(m.Header))+2, m.Size)
	}
	sm := &spam.Message{File: m.File, Size: m.Size, HeaderSize: hs, Sender: "<" + m.Sender + ">",
		PolicyBank: m.Policy.PolicyBankPath, Helo: m.Client.Helo, ClientName: m.Client.Name,
		ClientAddr: trimIPv6Tag(m.Client.Addr), QueueID: m.QueueID}
	if m.Sender != "" {
		sm.Sender = smtp.Quote(m.Sender)
	}
	for _, r := range m.Recips {
		sm.Recips = append(sm.Recips, smtp.Quote(r.Addr))
	}
	rep := m.eng.spam.Check(ctx, sm)
	for _, r := range rep.Results {
		if r.Err != nil {
			m.tl.Logf(-1, "%s client failed: %v", r.Name, r.Err)
		}
		m.tl.Logf(2, "%s", r.Log)
	}
	m.Spam.Scanned, m.Spam.Score, m.Spam.Tests = true, rep.Score, rep.Tests
	if rep.Failed && m.Policy.SpamScannerFailure == "tempfail" {
		return &stageError{section: "spam_scan", err: errors.New(rep.FailReason())}
	}
	return nil
}

// blockedAnyway: what was found so far (a virus, a banned part...) blocks every recipient, so
// the spam engines need not be asked (check_mail's preliminary destiny in Amavis.pm). The
// records Decide fills in here are filled in again by the real decision.
func blockedAnyway(m *Message) bool {
	in := verdictInput(m)
	in.Spam = nil
	v, err := verdict.Decide(in)
	if err != nil {
		return false // the real decision meets the error again
	}
	for _, r := range v.Recips {
		if !r.Blocked {
			return false
		}
	}
	m.tl.Logf(5, "bypassing of spam checks, message will be blocked anyway due to %s", v.Blocking)
	return true
}

// logSpamTag is amavis's level-2 line per cluster of recipients with a spam status.
func logSpamTag(m *Message, status string, rs []*verdict.Recipient) {
	if status == "" || !m.tl.Enabled(2) {
		return
	}
	addrs := make([]string, len(rs))
	for i, r := range rs {
		addrs[i] = r.AddrSMTP
	}
	m.tl.Logf(2, "spam-tag, %s -> %s, %s", m.SenderSMTP, strings.Join(addrs, ","), status)
}

// spamInfo is the quarantine's view of the spam check over all recipients (nil: none ran).
func spamInfo(m *Message) *quarantine.SpamInfo {
	if m.Spam == nil {
		return nil
	}
	s := &quarantine.SpamInfo{LevelChar: m.Policy.SaSpamLevelChar}
	lowest := func(cur, l *float64) *float64 {
		if l != nil && (cur == nil || *l < *cur) {
			return l
		}
		return cur
	}
	for i, r := range m.Recips {
		rs := &r.Spam
		if i == 0 || rs.Level < s.MinLevel {
			s.MinLevel = rs.Level
		}
		if i == 0 || rs.Level > s.MaxLevel {
			s.MaxLevel = rs.Level
		}
		s.Tag, s.Tag2, s.Kill = lowest(s.Tag, rs.Tag), lowest(s.Tag2, rs.Tag2), lowest(s.Kill, rs.Kill)
		s.Tag2Reached = s.Tag2Reached || r.CCats.Has(verdict.CC_SPAMMY, 0)
		s.KillReached = s.KillReached || r.CCats.Has(verdict.CC_SPAM, 0)
		s.Blacklisted = s.Blacklisted || rs.Blacklisted
		s.Whitelisted = s.Whitelisted || rs.Whitelisted
		if i == 0 {
			for _, t := range rs.Tests {
				s.Tests = append(s.Tests, strings.Split(t, ",")...)
			}
		}
	}
	return s
}
