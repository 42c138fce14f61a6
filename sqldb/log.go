package sqldb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"amavisgo/conf"
	"amavisgo/lookup"
)

// Message is what the log stores of one message: the envelope and reception at the start
// (the preliminary msgs row), the outcome at the end (msgrcpt rows, the msgs update).
type Message struct {
	MailID, SecretID, LogID string
	RxTime                  time.Time
	Sender                  string // bare envelope sender, "" for <>
	Recips                  []Recip
	PolicyBankPath          string
	ClientAddr              string
	Size                    int64

	// the outcome
	Content     byte   // amavis's content code of the message: V B U S Y M H O T C ?
	QuarType    byte   // F Z Q M, or 0 when not quarantined
	QuarLoc     string // the first quarantine location
	DSNSent     byte   // Y N q
	SpamLevel   float64
	MessageID   string // Message-ID field, unfolded
	From        string // From field, unfolded, MIME-encoded words as received
	Subject     string // Subject field, likewise
	Originating bool
	// Options are the lookup settings of the message's policy (localpart_is_case_sensitive)
	Options lookup.Options

	sid  int64   // maddr.id of the sender; 0 when the preliminary row was not stored
	rids []int64 // maddr.id of each recipient
}

// Recip is one recipient's row in msgrcpt.
type Recip struct {
	Addr        string
	Local       bool
	Content     byte
	Destiny     conf.Destiny
	Done        bool   // the recipient's outcome is final (forwarded, or blocked)
	Response    string // the SMTP response for this recipient, as the MTA got it
	Blacklisted bool
	Whitelisted bool
	SpamLevel   float64
}

// Log writes amavis's message log (Amavis::Out::SQL::Log) to storage_sql_dsn.
type Log struct {
	pool *Pool
	g    *conf.SQLGlobal
	host string
	// Wait is the pause between two attempts at the final rows (amavis sleeps 1 to 3 s).
	Wait    func() time.Duration
	pending sync.WaitGroup
}

// NewLog makes the log of configuration c.
func NewLog(p *Pool, c *conf.Config) *Log {
	return &Log{pool: p, g: &c.SQLGlobal, host: c.Myhostname,
		Wait: func() time.Duration { return time.Duration(1+rand.IntN(3)) * time.Second }}
}

// Pool is the log's database.
func (l *Log) Pool() *Pool { return l.pool }

// IsDuplicate tells a unique-key violation: the mail_id is taken (another node, or a retry).
func IsDuplicate(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1062
}

// Preliminary stores the addresses and the msgs row with content NULL (message in progress),
// as amavis's save_info_preliminary. An error that IsDuplicate asks for a new mail_id.
func (l *Log) Preliminary(ctx context.Context, m *Message) error {
	m.sid, m.rids = 0, nil
	return l.pool.Do(ctx, func(ctx context.Context, c Conn) error {
		sid, err := l.addrID(ctx, c, m.Sender, m.Options)
		if err != nil {
			return err
		}
		rids := make([]int64, len(m.Recips))
		for i, r := range m.Recips {
			if rids[i], err = l.addrID(ctx, c, r.Addr, m.Options); err != nil {
				return err
			}
		}
		ins := clause(l.g, "ins_msg")
		if ins != "" && sid != 0 {
			err = c.InTx(ctx, func(tx Tx) error {
				_, err := tx.Exec(ctx, ins, l.g.PartitionTag, []byte(m.MailID), []byte(m.SecretID), m.LogID,
					m.RxTime.Unix(), l.timeISO(c, m.RxTime), sid, m.PolicyBankPath, m.ClientAddr, m.Size,
					truncate(l.host, 255))
				return err
			})
			if err != nil {
				return err
			}
		}
		m.sid, m.rids = sid, rids
		return nil
	})
}

// timeISO is the time_iso column: ISO 8601 UTC "20261204T054400Z", or MySQL's form when
// timestamp_fmt_mysql is set for a TIMESTAMP column.
func (l *Log) timeISO(c Conn, t time.Time) string {
	if l.g.TimestampFmtMysql && c.Kind == MySQL {
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	return t.UTC().Format("20060102T150405Z")
}

// addrID finds or adds an address in maddr (amavis's find_or_save_addr): select, insert,
// select again, so that two nodes adding the same address at once both end with its id.
func (l *Log) addrID(ctx context.Context, c Conn, addr string, o lookup.Options) (int64, error) {
	sel, ins := clause(l.g, "sel_adr"), clause(l.g, "ins_adr")
	if sel == "" {
		return 0, nil
	}
	naddr, domain := l.normAddr(addr, o)
	find := func() (int64, bool, error) {
		rows, err := c.Query(ctx, sel, l.g.PartitionTag, []byte(naddr))
		if err != nil {
			return 0, false, err
		}
		defer rows.Close()
		var id int64
		if rows.Next() {
			if err := rows.Scan(&id); err != nil {
				return 0, false, err
			}
			return id, true, nil
		}
		return 0, false, rows.Err()
	}
	id, ok, err := find()
	if err != nil || ok || ins == "" {
		return id, err
	}
	_, insErr := c.Exec(ctx, ins, l.g.PartitionTag, []byte(naddr), reverseDomain(domain))
	id, ok, err = find()
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("find_or_save_addr: failed to insert addr %s: %v", naddr, insErr)
	}
	return id, nil
}

// normAddr is the address as maddr.email holds it: the local part lower-cased (unless
// localpart_is_case_sensitive), the domain in ASCII and lower case without trailing dots, at
// most 255 bytes, and, unless sql_allow_8bit_address, bytes outside printable ASCII as "?".
func (l *Log) normAddr(addr string, o lookup.Options) (naddr, domain string) {
	if addr == "" {
		return "", ""
	}
	local, dom := lookup.SplitAddress(addr)
	if !o.LocalpartCaseSensitive {
		local = strings.ToLower(local)
	}
	domain = lookup.NormDomain(dom)
	naddr = truncate(local+"@"+domain, 255)
	if !l.g.SQLAllow8bitAddress {
		naddr = printable(naddr)
	}
	return naddr, domain
}

// reverseDomain is maddr.domain: the labels in reverse, "com.example.sub", at most 255 bytes.
func reverseDomain(d string) string {
	labels := strings.Split(d, ".")
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return truncate(strings.Join(labels, "."), 255)
}

// printable replaces every byte outside ASCII 32..126 by "?".
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// truncateUTF8 cuts s to n characters.
func truncateUTF8(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}

var wordDecoder = mime.WordDecoder{CharsetReader: charset.Reader}

// decodeField is From or Subject as msgs stores them: MIME-decoded to UTF-8, at most 255
// characters; undecodable text is kept as it is (cut to 255 bytes), as amavis does.
func decodeField(s string) string {
	s = strings.TrimSpace(s)
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil || !utf8.ValidString(d) {
		return strings.ToValidUTF8(truncate(s, 255), "?")
	}
	return truncateUTF8(d, 255)
}

// ds is a recipient's delivery status: T tempfail, B bounce, R reject, P pass, D discard,
// from its destiny and its response, as amavis's save_info_final.
func ds(r Recip) string {
	c := byte(0)
	if r.Response != "" {
		c = r.Response[0]
	}
	switch {
	case c == '4':
		return "T"
	case r.Destiny == conf.D_BOUNCE && c == '5':
		return "B"
	case r.Destiny != conf.D_BOUNCE && c == '5':
		return "R"
	case r.Destiny == conf.D_PASS && (c == '2' || !r.Done):
		return "P"
	case r.Destiny == conf.D_DISCARD:
		return "D"
	}
	return "?"
}

func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

func char(c byte) string {
	if c == 0 || c == ' ' {
		return " "
	}
	return string(c)
}

// Final stores the msgrcpt rows and completes the msgs row in one transaction, as amavis's
// save_info_final. Nothing is stored when the preliminary row was not.
func (l *Log) Final(ctx context.Context, m *Message) error {
	ins, upd := clause(l.g, "ins_rcp"), clause(l.g, "upd_msg")
	if m.sid == 0 || ins == "" || upd == "" || clause(l.g, "ins_msg") == "" {
		return nil
	}
	msgID := printable(truncate(strings.Join(strings.Fields(m.MessageID), " "), 255))
	return l.pool.Do(ctx, func(ctx context.Context, c Conn) error {
		return c.InTx(ctx, func(tx Tx) error {
			for i, r := range m.Recips {
				if i >= len(m.rids) || m.rids[i] == 0 {
					continue
				}
				resp := printable(truncate(r.Response, 255))
				if _, err := tx.Exec(ctx, ins, l.g.PartitionTag, []byte(m.MailID), i+1, m.rids[i], yn(r.Local),
					char(r.Content), ds(r), " ", yn(r.Blacklisted), yn(r.Whitelisted), r.SpamLevel, resp); err != nil {
					return err
				}
			}
			var qloc any = printable(truncate(m.QuarLoc, 255))
			_, err := tx.Exec(ctx, upd, char(m.Content), char(m.QuarType), qloc, char(m.DSNSent), m.SpamLevel,
				msgID, decodeField(m.From), decodeField(m.Subject), m.ClientAddr, yn(m.Originating),
				l.g.PartitionTag, []byte(m.MailID))
			return err
		})
	})
}

// FinalRetrying stores the final rows: the first attempt now, and when it fails up to four
// more in the background, a pause apart, so that a database outage never holds up mail
// (amavis retries five times, then logs that the information was not saved).
// logf is the message's log.
func (l *Log) FinalRetrying(m *Message, logf func(level int, format string, args ...any)) {
	const attempts = 5
	try := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*l.pool.timeout)
		defer cancel()
		return l.Final(ctx, m)
	}
	err := try()
	if err == nil {
		return
	}
	logf(-1, "WARN save_info_final: %v", err)
	l.pending.Add(1)
	go func() {
		defer l.pending.Done()
		for left := attempts - 1; left > 0; left-- {
			logf(2, "sql_storage: retrying on final, %d attempts remain", left)
			time.Sleep(l.Wait())
			if err = try(); err == nil {
				return
			}
			logf(-1, "WARN save_info_final: %v", err)
		}
		logf(-2, "ERROR sql_storage: too many retries on storing final, info not saved")
	}()
}

// Drain waits for the final rows still being retried (tests, shutdown).
func (l *Log) Drain() { l.pending.Wait() }
