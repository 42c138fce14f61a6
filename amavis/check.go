package amavis

import (
	"context"
	"path/filepath"
	"strings"

	"amavisgo/hdr"
	"amavisgo/metrics"
	"amavisgo/scanners"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// stageError is a failure of one stage of the flow; section names it in the 451 reply
// ("Error in processing, id=..., <section> FAILED: ...") as amavis does.
type stageError struct {
	section string
	err     error
	// reply, when not the zero Reply, is the whole reply for the MTA (a quarantine or
	// notification failure has its own wording).
	reply smtp.Reply
}

func (e *stageError) Error() string { return e.section + " FAILED: " + e.err.Error() }

// check decodes the message, scans it for viruses and asks the spam engines (spam.go). Decoding and scanning run only when a
// recipient needs them; the virus scan is skipped when decoding went over a limit (the
// message is then UNCHECKED, as in amavis).
func (d *Daemon) check(ctx context.Context, m *Message) error {
	e := m.eng
	checks := verdict.Plan(m.Policy, m.Recips)
	m.Bulk = isBulk(m.Header, m.Sender)
	d.dkimVerify(ctx, m)
	if checks.Decode {
		m.enter(metrics.StateDecode, m.LogID)
		res, err := e.unpacker.Unpack(ctx, m.File, filepath.Join(m.Dir, "parts"))
		if err != nil {
			return &stageError{section: "mime_decode", err: err}
		}
		m.Unpacked = res
		if res.Hold != "" {
			m.tl.Logf(-1, "NOTICE: %s, virus scan skipped", res.Hold)
		}
	}
	if checks.Virus && e.av.Configured() && (m.Unpacked == nil || m.Unpacked.Hold == "") {
		m.enter(metrics.StateVirus, m.LogID)
		m.AV = e.av.Scan(scanners.WithLog(ctx, m.tl.Logf), m.Dir)
		for _, en := range m.AV.Engines {
			m.tl.Logf(2, "virus_scan: %s took %d ms", en.Name, en.Duration.Milliseconds())
		}
	}
	return d.spamCheck(ctx, m, checks.Spam)
}

// isBulk tells mailing-list, bulk and automatic mail as amavis does (Amavis.pm's
// collect_some_info): such mail gets no DSN for a non-clean category.
func isBulk(header []byte, sender string) bool {
	bulk := false
	for f := range hdr.Fields(header) {
		name, body, ok := hdr.Cut(f)
		if !ok {
			continue
		}
		switch strings.ToLower(string(name)) {
		case "list-id", "list-post", "list-unsubscribe", "mailing-list":
			bulk = true
		case "precedence":
			switch strings.ToLower(strings.TrimSpace(hdr.JoinLines(body))) {
			case "bulk", "junk", "list", "auto_reply":
				bulk = true
			}
		case "auto-submitted":
			as := strings.ToLower(strings.TrimSpace(hdr.JoinLines(body)))
			bulk = as != "" && as != "no"
		}
		if bulk {
			break
		}
	}
	if bulk {
		return true
	}
	if sender == "" {
		return true
	}
	local := strings.ToLower(sender)
	if at := strings.LastIndexByte(local, '@'); at >= 0 {
		local = local[:at]
	}
	switch {
	case strings.HasSuffix(local, "-request"), strings.HasSuffix(local, "-bounces"),
		strings.HasSuffix(local, "-owner"), strings.HasPrefix(local, "owner-"):
		return true
	}
	switch local {
	case "mailer-daemon", "double-bounce", "mailer", "autoreply":
		return true
	}
	return false
}
