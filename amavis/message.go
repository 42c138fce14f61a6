package amavis

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"amavisgo/conf"
	"amavisgo/lookup"
	"amavisgo/mailid"
	"amavisgo/metrics"
	"amavisgo/policybank"
	"amavisgo/scanners"
	"amavisgo/smtp"
	"amavisgo/unpack"
	"amavisgo/verdict"
)

// The per-message flow, top-down (docs/architecture.md): accept (newMessage, here) -> spool
// (spool.go) -> check (check.go) -> decide per recipient (decide.go) -> act: quarantine
// (quarantine.go), notify (notify.go), forward (forward.go), DSN (notify.go) -> reply (reply.go) -> log
// (logline.go). processMessage is the whole of it; each stage has its own file.

// ConnInfo describes the connection a message came in on.
type ConnInfo struct {
	PeerIP, PeerPort   string // the MTA's side of the socket
	LocalIP, LocalPort string // our side; LocalPort "" on a Unix socket
	Helo               string // the MTA's HELO/EHLO/LHLO argument
}

// ClientInfo is the original SMTP client as the MTA reported it by XFORWARD; Addr falls back
// to the peer's address when XFORWARD gave none (as Amavis.pm takes it from the Received trace,
// whose first entry is amavis's own), except for the choice of the policy bank.
type ClientInfo struct {
	Addr, Port, Name, Helo, Proto, Source, Login string
}

// Message is everything known about one message; later stages read it and add to it.
type Message struct {
	cfg    *conf.Config
	Policy *conf.Policy // the policy bank in effect (after interface_policy and MYNETS)

	LogID    string // "01234-01" or "01234-01-2"
	MailID   string // amavis's mail_id (Amavis::Util's generate_mail_id)
	SecretID string
	RxTime   time.Time

	Conn    ConnInfo
	Client  ClientInfo
	QueueID string // the MTA's queue id (XFORWARD IDENT)
	Proto   string // SMTP, ESMTP, LMTP, UTF8SMTP...
	LMTP    bool

	Sender, SenderSMTP string               // unquoted / as received
	Recips             []*verdict.Recipient // one record per RCPT, from RCPT to the reply
	DeclaredSize       int64                // MAIL SIZE=, -1 when not given
	Size               int64                // actual size (RFC 1870)
	Body               string
	Has8bit            bool
	SMTPUTF8           bool
	RET, ENVID         string

	Dir            string // the spool directory TEMPBASE/amavis-...
	File           string // Dir/email.txt: the message as received, dot-unstuffed, CRLF kept
	sizeLimit      int64  // DATA over this is refused (oversized.go); 0: no limit
	Header         []byte // the header section as received (bounded), for header lookups
	HeaderComplete bool   // Header is the whole header section (it was within the bound)
	MessageID      string

	eng         *engines // the decoder, scanners, quarantine and notifier of this connection
	tl          *taskLog
	Unpacked    *unpack.Result
	AV          scanners.Report
	Spam        *verdict.SpamInput // what the spam engines said (nil: none configured)
	Verdict     *verdict.Verdict
	Quarantined []string // quarantine locations, relative to QUARANTINEDIR
	Bulk        bool     // mailing-list, bulk or automatic mail (no DSN for it)

	DKIM          dkimInfo // signatures verified and made (dkim.go)
	ForwardParams []string // MAIL FROM parameters sent to the next hop
	DSNPassedOn   bool

	progress           // the session's state and the time spent per section, for metrics (metrics.go)
	preserve string    // why Dir is kept as evidence (tempdirs.go); "" removes it
	spool    *spoolDir // Dir, taken from and given back to Daemon.spoolDirs
	// Response is the one reply to an SMTP client (not LMTP), which the log's action words
	// go by, as in Amavis.pm.
	Response smtp.Reply
	sql      sqlMessage               // the SQL log's row, the wblist values (sql.go)
	ldapRecs map[string]lookup.Record // recipients' directory entries fetched at RCPT (ldap.go)
}

// processMessage runs one message through all stages and returns the replies for the
// client: one for SMTP, one per recipient for LMTP. A failure anywhere before the next hop
// took the message is a 451, so the MTA keeps it.
func (d *Daemon) processMessage(ctx context.Context, m *Message, tx *smtp.Transaction, data *smtp.DataReader) []smtp.Reply {
	start := time.Now()
	tl := &taskLog{l: d.log, id: m.LogID, level: m.Policy.LogLevel}
	sd, err := d.spoolDirs.take(m.cfg.TEMPBASE, m.RxTime) // spooldirs.go
	if err != nil {
		return d.failed(m, tl, "spool", err)
	}
	m.spool, m.Dir, m.File = sd, sd.path, filepath.Join(sd.path, "email.txt")
	m.enter(metrics.StateData, m.LogID)
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
	if m.sizeLimit > 0 && data.WireSize() > m.sizeLimit {
		return d.refuseOversized(m, tl, tx, data.WireSize())
	}
	m.tl = tl
	// LDAP's per-user tables go in front of each setting first and SQL's in front of them, so
	// that SQL's are asked first, as in amavis's *_maps.
	if err := d.ldapPolicy(ctx, m); err != nil {
		return d.stageFailed(m, tl, err)
	}
	if err := d.sqlBegin(ctx, m); err != nil {
		return d.stageFailed(m, tl, err)
	}
	defer d.countMessage(m, start)
	m.enter(metrics.StateCheck, m.LogID)
	// child_timeout runs from the last input received (Amavis::Util's get_deadline): the end of
	// DATA, however long the transfer took (smtpd_timeout bounds each line of it).
	ctx, cancel := context.WithTimeout(ctx, time.Duration(m.cfg.ChildTimeout)*time.Second)
	defer cancel()
	if err := d.check(ctx, m); err != nil {
		return d.stageFailed(m, tl, err)
	}
	m.enter(metrics.StateResults, m.LogID)
	if err := d.decide(m); err != nil {
		return d.stageFailed(m, tl, err)
	}
	if err := d.act(ctx, m); err != nil {
		return d.stageFailed(m, tl, err)
	}
	replies := d.reply(m)
	d.sqlEnd(m)
	d.logMain(tl, m, time.Since(start))
	return replies
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
		sizeLimit: cs.dataSizeLimit(tx),
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
	// client_ipaddr_policy looks at XFORWARD ADDR only: without it the client is 0.0.0.0
	// (Amavis::In::SMTP), so a local MTA that does not forward the client is not MYNETS.
	ip, _ := netip.ParseAddr(trimIPv6Tag(xf.Addr))
	if p, err := policybank.ForClient(cs.cfg, m.Policy, ip); err == nil {
		m.Policy = p
	}
	m.eng = cs.eng
	m.proc = cs.proc
	m.ldapRecs = cs.ldap.take(tx)
	m.Recips = make([]*verdict.Recipient, len(tx.Rcpts))
	for i, rc := range tx.Rcpts {
		m.Recips[i] = &verdict.Recipient{Recipient: rc, Destiny: conf.D_PASS}
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

// act quarantines, notifies, forwards the passed recipients and sends the DSN, in the order of
// Amavis.pm's check_mail: quarantine and the admin notices and recipient warnings come first,
// so that a failure there is a 451 before anything was delivered; the DSN follows forwarding,
// which may add failed recipients. A notification that fails temporarily is a 451 too.
func (d *Daemon) act(ctx context.Context, m *Message) error {
	m.enter(metrics.StateQuarantine, m.LogID)
	if err := d.quarantine(ctx, m); err != nil {
		return err
	}
	if err := d.notifyBefore(ctx, m); err != nil {
		return err
	}
	m.enter(metrics.StateForward, m.LogID)
	d.forwardPassed(ctx, m)
	m.enter(metrics.StateQuarantine, m.LogID)
	return d.notifyDSN(ctx, m)
}

// logID is amavis's log id: 5-digit pid, connection counter, and for the second and later
// transactions of a session the transaction number: "01234-05", "01234-05-2".
func logID(pid int, conn int64, seq int) string {
	if seq > 1 {
		return fmt.Sprintf("%05d-%02d-%d", pid, conn, seq)
	}
	return fmt.Sprintf("%05d-%02d", pid, conn)
}
