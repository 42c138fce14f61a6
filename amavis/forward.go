package amavis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"amavisgo/conf"
	"amavisgo/hdr"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// Next-hop timeouts per step, from amavis's Out/SMTP.pm (the longest is for the final dot).
const fwdTimeout = 600 * time.Second

// copyBufs recycles the buffers used to stream email.txt to the next hop.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// forward sends the message to the recipients rs through method, with header prepended to the
// original bytes of the spool file from offset skip on (skip > 0 when header holds an edited copy
// of the original header section), and sets each recipient's Reply from the next hop's answer (as
// Amavis::Out::SMTP does). It never returns an error: a failure becomes a 4xx per recipient.
func (d *Daemon) forward(ctx context.Context, m *Message, method conf.Method, header []byte, skip int64, rs []*verdict.Recipient) {
	mtaID := method.String()
	cfg := m.cfg
	// RFC 5321 §6.3 loop detection, as amavis does while writing the header.
	if n := hdr.Count(m.Header, "Received"); n > 100 {
		for _, r := range rs {
			r.ByMTA = true
			r.Reply = smtp.Reply{Code: 554, Enh: "5.4.6",
				Text: fmt.Sprintf("Reject: Too many hops: %d 'Received:' header fields, id=%s", n, m.LogID)}
		}
		d.mtaTrouble(m, rs)
		return
	}
	env := &smtp.Envelope{
		From:         m.SenderSMTP,
		Body:         m.Body,
		SMTPUTF8:     m.SMTPUTF8,
		RET:          m.RET,
		ENVID:        m.ENVID,
		DSN:          m.Policy.PropagateDSNIfPossible,
		AllOrNothing: !m.LMTP,
	}
	if m.Client.Addr != "" {
		xf := smtp.XForward{Addr: m.Client.Addr, Name: m.Client.Name, Port: m.Client.Port,
			Proto: m.Client.Proto, Helo: m.Client.Helo, Source: m.Client.Source, Ident: m.QueueID}
		env.XForward = &xf
	}
	for _, r := range rs {
		notify := r.Notify
		if m.Sender == "" {
			notify = nil // NOTIFY is not sent for the null sender
		}
		if m.Policy.TerminateDSNOnNotifySuccess {
			notify = stripSuccess(notify)
		}
		env.Rcpts = append(env.Rcpts, smtp.Recipient{Addr: r.Addr, Notify: notify, ORCPT: r.ORCPT})
	}
	body := func(out io.Writer) error {
		w := &nulSanitizer{w: out}
		defer func() {
			if w.n > 0 {
				m.tl.Logf(0, "smtp forwarding: SANITIZED %d NULL byte(s)", w.n)
			}
		}()
		if _, err := w.Write(header); err != nil {
			return err
		}
		f, err := openPlain(m.File, os.O_RDONLY, 0) // files.go
		if err != nil {
			return err
		}
		defer f.Close()
		if skip > 0 {
			if _, err := f.Seek(skip, io.SeekStart); err != nil {
				return err
			}
		}
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		_, err = io.CopyBuffer(w, onlyReader{f}, *bp)
		return err
	}

	network := "tcp"
	var c *smtp.Client
	var err error
	if cfg.SmtpConnectionCacheEnable {
		c, err = d.pool.Get(ctx, network, method.Addr(), method.Proto == "lmtp", cfg.LocalhostName, fwdTimeout)
	} else {
		c, err = smtp.Dial(ctx, network, method.Addr(), method.Proto == "lmtp", cfg.LocalhostName, fwdTimeout)
	}
	var res *smtp.Result
	if err == nil {
		res, err = c.Send(ctx, env, body)
		switch {
		case err != nil:
			c.Abort()
		case cfg.SmtpConnectionCacheEnable:
			d.pool.Put(c)
		default:
			c.Close()
		}
	}
	if res != nil {
		m.ForwardParams = res.Params
		m.DSNPassedOn = res.DSNPassed
	}
	for i, r := range rs {
		r.ByMTA = true
		if res != nil && res.Rcpts[i].Done {
			rr := res.Rcpts[i]
			r.Remote = rr.Reply
			if rr.Cmd == "" {
				r.Reply = rr.Reply
			} else {
				r.Reply = enhanceReply(rr.Reply, mtaID, rr.Cmd)
			}
			continue
		}
		r.Reply = fwdFailure(err, mtaID, m.LogID)
		r.Remote = smtp.Reply{}
	}
	logForwarding(m.tl, m, method, rs, res, err)
	d.mtaTrouble(m, rs)
}

// onlyReader hides os.File's WriteTo, so that io.CopyBuffer uses our pooled buffer instead
// of allocating one per message.
type onlyReader struct{ io.Reader }

func stripSuccess(n []string) []string {
	var out []string
	had := false
	for _, v := range n {
		if v == "SUCCESS" {
			had = true
			continue
		}
		out = append(out, v)
	}
	if had && len(out) == 0 {
		out = []string{"NEVER"}
	}
	if !had {
		return n
	}
	return out
}

// enhanceReply wraps a next hop's reply as amavis reports it upstream:
// "<code> <enh> from MTA(<mta>): <the reply>", synthesizing the enhanced code from the
// command's default when the next hop gave none.
func enhanceReply(rep smtp.Reply, mtaID, cmd string) smtp.Reply {
	if rep.Code == 0 { // the next hop closed the connection instead of answering
		return smtp.Reply{Code: 451, Enh: "4.5.0", Text: "from MTA(" + mtaID + "): No resp. to " + cmd}
	}
	enh := rep.Enh
	if enh == "" {
		dflt := map[string]string{"MAIL FROM": ".1.0", "RCPT TO": ".1.0", "DATA": ".5.0", "data-dot": ".6.0"}[cmd]
		enh = fmt.Sprintf("%d%s", rep.Class(), dflt)
	}
	return smtp.Reply{Code: rep.Code, Enh: enh, Text: "from MTA(" + mtaID + "): " + rep.String()}
}

// fwdFailure is the reply for a recipient the next hop gave no answer for.
func fwdFailure(err error, mtaID, logID string) smtp.Reply {
	var se *smtp.Error
	if !errors.As(err, &se) {
		return smtp.Reply{Code: 451, Enh: "4.5.0", Text: fmt.Sprintf("From MTA(%s) during fwd-end-chkpnt (%v): id=%s", mtaID, err, logID)}
	}
	if se.Stage == "fwd-connect" {
		// Refused or timed out alike, amavis names no MTA when no connection could be made.
		return smtp.Reply{Code: 451, Enh: "4.5.0", Text: fmt.Sprintf("From MTA() during fwd-connect (All attempts (1) failed connecting to %s): id=%s", mtaID, logID)}
	}
	if se.Timeout() {
		return smtp.Reply{Code: 450, Enh: "4.4.2", Text: fmt.Sprintf("Timed out during %s, MTA(%s), id=%s", se.Stage, mtaID, logID)}
	}
	return smtp.Reply{Code: 451, Enh: "4.5.0", Text: fmt.Sprintf("From MTA(%s) during %s (%v): id=%s", mtaID, se.Stage, se.Err, logID)}
}

// mtaTrouble turns a recipient the next hop did not take into a blocked one (as Amavis.pm's
// check_mail does): the verdict adds CC_MTA,1 for a 4xx (D_TEMPFAIL) or CC_MTA,2 for a 5xx
// (D_REJECT) and gives amavis's reply "<code> <enh> id=<logid> - <reason>, <next hop's reply>".
func (d *Daemon) mtaTrouble(m *Message, rs []*verdict.Recipient) {
	for _, r := range rs {
		if r.Reply.Class() != 2 {
			m.Verdict.NextHopFailed(r)
		}
	}
}

// queuedAs extracts the next hop's queue id from its reply ("... queued as 3F1A2B"), else
// the whole reply, for the log's queued_as.
func queuedAs(reply string) string {
	if i := strings.LastIndex(reply, "queued as "); i >= 0 {
		id := reply[i+len("queued as "):]
		if id != "" && strings.IndexFunc(id, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) < 0 {
			return id
		}
	}
	return reply
}

// forwardPassed forwards the recipients that passed, in clusters: recipients whose copies need the
// same header edits share one transaction (Amavis.pm's add_forwarding_header_edits_per_recip), in
// order of first appearance.
func (d *Daemon) forwardPassed(ctx context.Context, m *Message) {
	type cluster struct {
		edits verdict.HeaderEdits
		rs    []*verdict.Recipient
	}
	var clusters []*cluster
	byKey := map[string]*cluster{}
	quarantined := len(m.Quarantined) > 0
	for _, r := range m.Recips {
		if r.Blocked {
			continue // its reply is final
		}
		edits := m.Verdict.HeaderEdits(r, m.MailID, quarantined)
		dkimResultsEdit(m, r, &edits)
		r.Tagged = edits.Tagged
		key := edits.Key()
		c, ok := byKey[key]
		if !ok {
			c = &cluster{edits: edits}
			byKey[key] = c
			clusters = append(clusters, c)
		}
		c.rs = append(c.rs, r)
	}
	for _, c := range clusters {
		logSpamTag(m, c.edits.SpamStatus, c.rs)
		header, skip := d.dkimHeader(m, c.edits, c.rs)
		d.forward(ctx, m, m.Policy.Forward(), header, skip, c.rs)
	}
}

// forwardHeader is what goes in front of the spooled bytes for a copy with these edits: the added
// fields, amavis's Received field below them (as Amavis::Out::EditHeader places it), and, when the
// edits change the original header (a deleted field, a subject tag), the edited header section,
// which then replaces the first skip bytes of the spool file. When skip > 0 the edited section
// is header[added:], added being the length of the fields in front of it.
func forwardHeader(m *Message, edits verdict.HeaderEdits) (header []byte, skip int64, added int) {
	header = edits.Prepend()
	header = hdr.Fold(header, "Received:", receivedFields(m, m.cfg.LocalhostName, m.cfg.Myhostname), receivedStyle)
	header = append(header, "\r\n"...)
	added = len(header)
	if !m.HeaderComplete {
		return header, 0, added
	}
	edited, rep := repairHeader(m.Policy, edits.EditHeader(m.Header))
	logRepairs(m.tl, rep)
	if !bytes.Equal(edited, m.Header) {
		header = append(header, edited...)
		skip = int64(len(m.Header))
	}
	return header, skip, added
}
