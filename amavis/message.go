package amavis

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"amavisgo/conf"
	"amavisgo/mailid"
	"amavisgo/policybank"
	"amavisgo/scanners"
	"amavisgo/smtp"
	"amavisgo/unpack"
	"amavisgo/verdict"
)

// The per-message flow, top-down (DESIGN.md): accept -> spool -> check -> decide per
// recipient -> act -> reply. processMessage is the whole of it; each stage is one function
// below, and the later stages (unpack, scanners, verdict, quarantine) slot into check, decide
// and act without changing the shape.

// ConnInfo describes the connection a message came in on.
type ConnInfo struct {
	PeerIP, PeerPort   string // the MTA's side of the socket
	LocalIP, LocalPort string // our side; LocalPort "" on a Unix socket
	Helo               string // the MTA's HELO/EHLO/LHLO argument
}

// ClientInfo is the original SMTP client as the MTA reported it by XFORWARD; Addr falls back
// to the peer's address when XFORWARD gave none.
type ClientInfo struct {
	Addr, Port, Name, Helo, Proto, Source, Login string
}

// Message is everything known about one message; later stages read it and add to it.
type Message struct {
	cfg    *conf.Config
	Policy *conf.Policy // the policy bank in effect (after interface_policy and MYNETS)

	LogID    string // "01234-01" or "01234-01-2"
	MailID   string // SPEC §4.1
	SecretID string
	RxTime   time.Time

	Conn    ConnInfo
	Client  ClientInfo
	QueueID string // the MTA's queue id (XFORWARD IDENT)
	Proto   string // SMTP, ESMTP, LMTP, UTF8SMTP...
	LMTP    bool

	Sender, SenderSMTP string // unquoted / as received
	Recips             []*Recipient
	DeclaredSize       int64 // MAIL SIZE=, -1 when not given
	Size               int64 // actual size (RFC 1870)
	Body               string
	Has8bit            bool
	SMTPUTF8           bool
	RET, ENVID         string

	Dir            string // the spool directory TEMPBASE/amavis-...
	File           string // Dir/email.txt: the message as received, dot-unstuffed, CRLF kept
	Header         []byte // the header section as received (bounded), for header lookups
	HeaderComplete bool   // Header is the whole header section (it was within the bound)
	MessageID      string

	eng         *engines // the decoder, scanners, quarantine and notifier of this connection
	tl          *taskLog
	Unpacked    *unpack.Result
	AV          scanners.Report
	Verdict     *verdict.Verdict
	Quarantined []string // quarantine locations, relative to QUARANTINEDIR
	Bulk        bool     // mailing-list, bulk or automatic mail (no DSN for it)

	ForwardParams []string // MAIL FROM parameters sent to the next hop
	DSNPassedOn   bool
}

// processMessage runs one message through all stages and returns the replies for the
// client: one for SMTP, one per recipient for LMTP. A failure anywhere before the next hop
// took the message is a 451, so the MTA keeps it.
func (d *Daemon) processMessage(ctx context.Context, m *Message, tx *smtp.Transaction, data *smtp.DataReader) []smtp.Reply {
	start := time.Now()
	tl := &taskLog{l: d.log, id: m.LogID, level: m.Policy.LogLevel}
	dir, err := makeSpoolDir(m.cfg.TEMPBASE, m.RxTime)
	if err != nil {
		return d.failed(m, tl, "spool", err)
	}
	m.Dir, m.File = dir, filepath.Join(dir, "email.txt")
	if tl.Enabled(1) {
		tl.Logf(1, "%s [%s]:%s %s: %s -> %s%s", m.Proto, m.Conn.LocalIP, m.Conn.LocalPort, m.Dir,
			m.SenderSMTP, rcptList(m.Recips), envelopeOpts(tx))
	}
	if err := d.spool(m, data); err != nil {
		if data.Err() != nil {
			return nil // the client went away: no one to answer
		}
		return d.failed(m, tl, "spool", err)
	}
	m.tl = tl
	// child_timeout runs from the last input received (SPEC §1.1): the end of DATA, however
	// long the transfer took (smtpd_timeout bounds each line of it).
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.ChildTimeout)*time.Second)
	defer cancel()
	if err := d.check(ctx, m); err != nil {
		return d.stageFailed(m, tl, err)
	}
	d.decide(m)
	if err := d.act(ctx, m); err != nil {
		return d.stageFailed(m, tl, err)
	}
	replies := d.reply(m)
	d.logMain(tl, m, time.Since(start))
	return replies
}

// spool streams DATA once into Dir/email.txt, taking the header section, size and 8-bit
// status on the way.
func (d *Daemon) spool(m *Message, data *smtp.DataReader) error {
	f, err := os.OpenFile(m.File, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0640)
	if err != nil {
		return err
	}
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	hc := headerCapture{limit: 256 << 10}
	w := spoolWriter{f: f, hc: &hc}
	if _, err := copyData(&w, data, *bp); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	m.Size = data.Size()
	m.Has8bit = w.has8bit
	m.Header = hc.buf
	m.HeaderComplete = hc.complete
	m.MessageID = headerField(m.Header, "Message-ID")
	// RFC 6152: an all-ASCII message is labeled 7BIT; 8-bit mail keeps its label.
	if !m.Has8bit {
		m.Body = "7BIT"
	}
	return nil
}

// copyData copies the message with one reusable buffer.
func copyData(w *spoolWriter, r *smtp.DataReader, buf []byte) (int64, error) {
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err != nil {
			if r.Done() {
				return n, nil
			}
			return n, err
		}
	}
}

// spoolWriter writes to the spool file and looks at the bytes once on the way.
type spoolWriter struct {
	f       *os.File
	hc      *headerCapture
	has8bit bool
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if !w.hc.done {
		w.hc.Write(p)
	}
	if !w.has8bit {
		for _, c := range p {
			if c >= 0x80 {
				w.has8bit = true
				break
			}
		}
	}
	return w.f.Write(p)
}

// reply gives the client's replies from the per-recipient outcomes: one reply for SMTP,
// one per recipient for LMTP.
func (d *Daemon) reply(m *Message) []smtp.Reply {
	if m.LMTP {
		return lmtpReplies(m.Recips)
	}
	suppressed := false
	for _, r := range m.Recips {
		suppressed = suppressed || r.DSN == verdict.DSNSuppressed
	}
	return []smtp.Reply{aggregateReply(m.Recips, m.LogID, suppressed)}
}

// stageFailed is the reply when a stage failed: its own reply when it has one (a quarantine
// or notification failure, a fatal virus scan failure), else the generic 451 of failed.
func (d *Daemon) stageFailed(m *Message, tl *taskLog, err error) []smtp.Reply {
	var se *stageError
	if !errors.As(err, &se) || se.reply == (smtp.Reply{}) {
		section := "check"
		if se != nil {
			section, err = se.section, se.err
		}
		return d.failed(m, tl, section, err)
	}
	tl.Logf(-2, "TROUBLE in check_mail: %v", err)
	rep := se.reply
	out := []smtp.Reply{rep}
	if m.LMTP {
		out = make([]smtp.Reply, len(m.Recips))
		for i := range out {
			out[i] = rep
		}
	}
	return out
}

// failed is the reply for an internal error: "451 4.5.0 Error in processing, id=<logid>,
// <section> FAILED: <error>" for the message (or each LMTP recipient).
func (d *Daemon) failed(m *Message, tl *taskLog, section string, err error) []smtp.Reply {
	rep := smtp.ProcessingFailed(m.LogID, section, err.Error())
	tl.Logf(-2, "TROUBLE in check_mail: %s FAILED: %v", section, err)
	if !m.LMTP {
		return []smtp.Reply{rep}
	}
	out := make([]smtp.Reply, len(m.Recips))
	for i := range out {
		out[i] = rep
	}
	return out
}

// newMessage gathers a transaction's envelope, the connection and the XFORWARD attributes,
// and selects the MYNETS policy bank when the client is in mynetworks.
func (d *Daemon) newMessage(cs *connState, s *smtp.Session, tx *smtp.Transaction) *Message {
	m := &Message{
		cfg: cs.cfg, Policy: cs.policy, RxTime: time.Now(),
		LogID: logID(d.pid, cs.connNo, tx.Seq),
		Conn: ConnInfo{PeerIP: cs.peerIP, PeerPort: cs.peerPort, LocalIP: cs.localIP,
			LocalPort: cs.localPort, Helo: s.Helo()},
		Proto: tx.Proto, LMTP: s.LMTP(),
		Sender: tx.From, SenderSMTP: tx.FromSMTP, DeclaredSize: tx.Size, Body: tx.Body,
		SMTPUTF8: tx.SMTPUTF8, RET: tx.RET, ENVID: tx.ENVID, QueueID: tx.XForward.Ident,
	}
	m.MailID, m.SecretID = mailid.NewDefault()
	xf := tx.XForward
	m.Client = ClientInfo{Addr: xf.Addr, Port: xf.Port, Name: xf.Name, Helo: xf.Helo, Proto: xf.Proto,
		Source: xf.Source, Login: xf.Login}
	if m.Client.Addr == "" {
		m.Client.Addr = cs.peerIP
	}
	if !validPort(m.Client.Port) {
		m.Client.Port = ""
	}
	ip, _ := netip.ParseAddr(trimIPv6Tag(m.Client.Addr))
	if p, err := policybank.ForClient(cs.cfg, m.Policy, ip); err == nil {
		m.Policy = p
	}
	m.eng = cs.eng
	for _, rc := range tx.Rcpts {
		m.Recips = append(m.Recips, &Recipient{Addr: rc.Addr, AddrSMTP: rc.AddrSMTP, Notify: rc.Notify,
			ORCPT: rc.ORCPT, Destiny: conf.D_PASS})
	}
	return m
}

func trimIPv6Tag(s string) string {
	if len(s) > 5 && (s[:5] == "IPv6:" || s[:5] == "ipv6:" || s[:5] == "IPV6:") {
		return s[5:]
	}
	return s
}

// validPort: XFORWARD PORT is used only when it is a number up to 65535 without a leading 0.
func validPort(p string) bool {
	if p == "" || len(p) > 5 || p[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n <= 65535
}
