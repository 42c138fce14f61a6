package amavis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"amavisgo/internal/panics"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// serveConnRecovered is serveConn, with a panic outside a message's processing (which Data
// recovers itself) ending only its own connection, as a failed child ends in amavis.
func (d *Daemon) serveConnRecovered(ac acceptedConn) {
	var err error
	defer func() {
		if err != nil {
			ac.conn.Close()
			ac.cs.tl.Logf(-2, "TROUBLE in process_request: %v", err)
			logPanic(ac.cs.tl, err)
		}
	}()
	defer panics.Catch(&err)
	d.serveConn(ac)
}

func (d *Daemon) serveConn(ac acceptedConn) {
	cs := ac.cs
	p := cs.policy
	lmtp := p.Protocol == "LMTP"
	if p.Protocol == "AM.PDP" {
		if !d.closing.Load() { // a release in progress finishes at Shutdown; ServeConn stops at ctx
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-d.done:
					cancel()
				case <-ctx.Done():
				}
			}()
			cs.eng.release.ServeConn(ctx, ac.conn, p)
			cancel()
		}
		ac.conn.Close()
		return
	}
	helo := "[localhost]"
	if cs.localIP != "" {
		helo = "[" + cs.localIP + "]"
	}
	proto := "ESMTP"
	if lmtp {
		proto = "LMTP"
	}
	vars := map[string]string{"helo-name": helo, "myhostname": cs.cfg.Myhostname, "version": Version,
		"version-id": VersionID, "version-date": VersionDate, "product": "amavis", "protocol": proto}
	size := p.SmtpdMessageSizeLimit
	if size > 0 && size < 65536 && cs.cfg.EnforceSmtpdMessageSizeLimit64kbMin {
		size = 65536
	}
	sc := &smtp.Config{
		HeloName:            helo,
		Greeting:            expandBanner(p.SmtpdGreetingBanner, vars),
		QuitBanner:          expandBanner(p.SmtpdQuitBanner, vars),
		SizeLimit:           size,
		RcptLimit:           p.SmtpdRecipientLimit,
		Timeout:             time.Duration(cs.cfg.SmtpdTimeout) * time.Second,
		DiscardEHLOKeywords: p.SmtpdDiscardEhloKeywords,
		RcptCheck:           cs.rcptCheck,
		Log:                 cs.tl,
	}
	s := smtp.NewSession(ac.conn, sc, cs, lmtp)
	d.mu.Lock()
	if d.closing.Load() {
		d.mu.Unlock()
		s.Shutdown()
	} else {
		d.sessions[s] = struct{}{}
		d.mu.Unlock()
	}
	defer func() {
		d.mu.Lock()
		delete(d.sessions, s)
		d.mu.Unlock()
	}()
	s.Serve()
}

// Data implements smtp.Handler: one message through the flow of message.go. A panic anywhere
// in it tempfails the message (the MTA keeps it) and the session goes on with the next one.
func (cs *connState) Data(s *smtp.Session, tx *smtp.Transaction, r *smtp.DataReader) (replies []smtp.Reply) {
	d := cs.d
	m := d.newMessage(cs, s, tx)
	cs.msg = m
	var err error
	func() {
		defer panics.Catch(&err)
		replies = d.processMessage(context.Background(), m, tx, r)
	}()
	if err != nil {
		tl := &taskLog{l: d.log, id: m.LogID, level: m.Policy.LogLevel}
		replies = d.failed(m, tl, "check", err)
		logPanic(tl, err)
	}
	return replies
}

// logPanic writes the stack of a recovered panic, one line per call, at level 0.
func logPanic(tl *taskLog, err error) {
	var pe *panics.Error
	if errors.As(err, &pe) {
		for _, f := range pe.Frames() {
			tl.Logf(0, "panic stack: %s", f)
		}
	}
}

// Finish implements smtp.Finisher: the spool directory goes after the reply was sent.
func (cs *connState) Finish(*smtp.Transaction) {
	if m := cs.msg; m != nil && m.Dir != "" {
		if err := os.RemoveAll(m.Dir); err != nil {
			cs.tl.Logf(-1, "Can't remove %s: %v", m.Dir, err)
		}
	}
	cs.msg = nil
}

func rcptList(rs []*verdict.Recipient) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.AddrSMTP)
	}
	return b.String()
}

func envelopeOpts(tx *smtp.Transaction) string {
	var b strings.Builder
	if tx.Size >= 0 {
		b.WriteString(" SIZE=" + strconv.FormatInt(tx.Size, 10))
	}
	if tx.Body != "" {
		b.WriteString(" BODY=" + tx.Body)
	}
	if tx.SMTPUTF8 {
		b.WriteString(" SMTPUTF8")
	}
	if tx.RET != "" {
		b.WriteString(" RET=" + tx.RET)
	}
	if tx.ENVID != "" {
		b.WriteString(" ENVID=" + smtp.XtextDecode(tx.ENVID))
	}
	return b.String()
}

// expandBanner expands ${name} and $name in smtpd_greeting_banner / smtpd_quit_banner.
func expandBanner(tmpl string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '$' || i+1 >= len(tmpl) || (tmpl[i+1] != '{' && !isAlnumByte(tmpl[i+1])) ||
			(tmpl[i+1] >= '0' && tmpl[i+1] <= '9') {
			b.WriteByte(tmpl[i])
			continue
		}
		var name string
		end := i + 1
		if tmpl[end] == '{' {
			j := strings.IndexByte(tmpl[end:], '}')
			if j < 0 {
				b.WriteByte(tmpl[i])
				continue
			}
			name, end = tmpl[end+1:end+j], end+j+1
		} else {
			for end < len(tmpl) && (isAlnumByte(tmpl[end]) || tmpl[end] == '_' || tmpl[end] == '-') {
				end++
			}
			name = strings.TrimRight(tmpl[i+1:end], "_-")
			end = i + 1 + len(name)
		}
		b.WriteString(vars[strings.ToLower(name)])
		i = end - 1
	}
	return b.String()
}

// rcptCheck refuses a recipient whose message_size_limit_maps limit is below the size the
// client declared with MAIL SIZE= (as Amavis::In::SMTP does); oversized mail would bounce anyway.
func (cs *connState) rcptCheck(tx *smtp.Transaction, rc *smtp.Recipient) *smtp.Reply {
	if rep := cs.ldapRcpt(tx, rc); rep != nil {
		return rep
	}
	if tx.Size <= 0 {
		return nil
	}
	if limit := verdict.SizeLimit(cs.rcptPolicy(tx, rc.Addr), rc.Addr); limit > 0 && tx.Size > limit {
		return &smtp.Reply{Code: 552, Enh: "5.3.4", Text: fmt.Sprintf(
			"Declared message size (%d B) exceeds size limit for recipient %s", tx.Size, smtp.Quote(rc.Addr))}
	}
	return nil
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
