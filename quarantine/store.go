package quarantine

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/hdr"
	"amavisgo/internal/panics"
	"amavisgo/smtp"
)

// Kind names a quarantine by the contents category that selects it.
type Kind int

// The quarantines amavis knows.
const (
	Virus Kind = iota
	Banned
	Unchecked
	Spam
	BadHeader
	Clean
	Archive
)

// Method is the kind's *_quarantine_method in policy p ("" = none).
func (k Kind) Method(p *conf.Policy) string {
	return [...]string{p.VirusQuarantineMethod, p.BannedFilesQuarantineMethod, p.UncheckedQuarantineMethod,
		p.SpamQuarantineMethod, p.BadHeaderQuarantineMethod, p.CleanQuarantineMethod, p.ArchiveQuarantineMethod}[k]
}

// To is the kind's *_quarantine_to in policy p.
func (k Kind) To(p *conf.Policy) conf.AddrMap {
	return [...]conf.AddrMap{p.VirusQuarantineTo, p.BannedQuarantineTo, p.UncheckedQuarantineTo,
		p.SpamQuarantineTo, p.BadHeaderQuarantineTo, p.CleanQuarantineTo, p.ArchiveQuarantineTo}[k]
}

// Message is what the daemon knows about a message when it quarantines it.
type Message struct {
	MailID       string
	LogID        string    // am_id, for %n
	BodyDigest   string    // hex, for %b
	PartitionTag string    // for %P
	Received     time.Time // reception time, for %i
	Sender       string    // bare envelope sender; "" = <>
	Recipients   []string  // all envelope recipients
	Blocked      []string  // the recipients not delivered (X-Envelope-To-Blocked)
	// Fields are the complete header fields that go between X-Quarantine-ID and Received, in
	// order: X-Amavis-Alert, the quarantine X-Spam-* fields, Authentication-Results. Each is
	// "Name: value", folded with "\n ", without the final newline.
	Fields []string
	// ReceivedField is our own "Received: from ..." field as for forwarding
	// (make_received_header_field in Amavis::rfc2821_2822_Tools).
	ReceivedField string
	// Original is the spooled message (email.txt), copied unchanged after our fields.
	Original string
}

// Location is where one copy went.
type Location struct {
	Name string // relative to QUARANTINEDIR ("n/virus-n8rZJ2zBYamo"), or the address
	Type byte   // amavis's quar_type: 'F' file, 'Z' gzip file, 'M' mailbox at an MTA, 'Q' sql:
}

// Error is a failed quarantine. The daemon must answer the MTA with Reply: the mail stays queued
// there (a failed quarantine aborts Amavis.pm's check_mail with a 451); Detail is for the log.
type Error struct {
	Temporary bool
	Detail    string
}

func (e *Error) Error() string { return e.Detail }

// Reply is the SMTP reply for the MTA; amID is the log id. A quarantine failure always makes
// the MTA retry, as amavis's 451 for "Can't quarantine" too.
func (e *Error) Reply(amID string) smtp.Reply {
	what := "Can't quarantine"
	if e.Temporary {
		what = "temporarily unable to quarantine"
	}
	return smtp.ProcessingFailed(amID, "quar+notif", what)
}

// Store quarantines messages. Its zero value with Dir "" quarantines nothing locally, as amavis
// does with QUARANTINEDIR undefined.
type Store struct {
	Dir          string // QUARANTINEDIR
	SubdirLevels int    // quarantine_subdir_levels, 0 or 1
	Sender       delivery.Sender
	Notify       conf.Method // notify_method, for quarantine-to addresses
	// SQL is the database of the sql: method (package sqldb); nil without storage_sql_dsn.
	SQL SQLStore
}

// SQLStore is the sql: quarantine's database: the stored format in chunks under the mail_id.
type SQLStore interface {
	// Store writes the message (r may be read again after a Seek to 0) and returns its
	// location as amavis logs it.
	Store(ctx context.Context, mailID string, r io.ReadSeeker) (string, error)
	// Open reads a stored message back.
	Open(ctx context.Context, mailID string) (io.ReadCloser, error)
	// Host is the myhostname of the node that took the message in (msgs.host).
	Host(ctx context.Context, mailID string) (string, error)
}

// NewStore makes the store a configuration describes.
func NewStore(c *conf.Config, s delivery.Sender) *Store {
	return &Store{Dir: c.QUARANTINEDIR, SubdirLevels: int(c.QuarantineSubdirLevels), Sender: s, Notify: c.Notify()}
}

// Quarantine stores m for recipients rcpts, whose category selected kind, under policy p:
// once per distinct quarantine-to value. No method, or a local: method without QUARANTINEDIR,
// is not an error and yields no location. Any failure is an *Error.
func (s *Store) Quarantine(ctx context.Context, p *conf.Policy, kind Kind, m *Message, rcpts []string) ([]Location, error) {
	method := kind.Method(p)
	if method == "" {
		return nil, nil
	}
	var tos []string
	seen := map[string]bool{}
	for _, r := range rcpts {
		to := kind.To(p).Lookup(r, p.LookupOptions())
		if to == "%a" {
			to = r
		}
		if to != "" && !seen[to] {
			seen[to] = true
			tos = append(tos, to)
		}
	}
	sender := m.Sender
	if p.MailfromToQuarantine != nil {
		sender = *p.MailfromToQuarantine
	}
	var locs []Location
	local := false // every local quarantine-to name means the same file: write it once
	sqlDone := false
	for _, to := range tos {
		var loc Location
		var err error
		switch {
		case method == "sql:":
			if sqlDone {
				continue // one copy in the database serves every quarantine-to
			}
			sqlDone = true
			loc, err = s.writeSQL(ctx, sender, to, m)
		case strings.Contains(to, "@") || !strings.HasPrefix(method, "local:"):
			via := s.Notify
			if !strings.HasPrefix(method, "local:") {
				via, _ = conf.ParseMethod(method) // validated at load
			}
			loc, err = s.send(ctx, via, sender, to, m)
		case s.Dir == "" || local:
			continue // no QUARANTINEDIR: amavis's "skip local delivery"
		default:
			local = true
			loc, err = s.writeFile(strings.TrimPrefix(method, "local:"), sender, to, m)
		}
		if err != nil {
			return locs, err
		}
		locs = append(locs, loc)
	}
	return locs, nil
}

// writeSQL stores the stored format in the sql: quarantine (amavis's mail_via_sql): spooled to
// a temporary file first, so that a fail-over to the next database can read it again.
func (s *Store) writeSQL(ctx context.Context, sender, to string, m *Message) (Location, error) {
	fail := func(err error) (Location, error) {
		return Location{}, &Error{Temporary: true, Detail: "451 4.5.0 Storing to sql db as mail_id " + m.MailID + " failed: " + err.Error()}
	}
	if s.SQL == nil {
		return fail(errors.New("sql: quarantine method without storage_sql_dsn"))
	}
	tmp, err := os.CreateTemp(filepath.Dir(m.Original), "sql-quarantine-")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := writeStored(bw, sender, to, m); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	loc, err := s.SQL.Store(ctx, m.MailID, tmp)
	if err != nil {
		return fail(err)
	}
	return Location{Name: loc, Type: 'Q'}, nil
}

// send mails the stored format to a quarantine address.
func (s *Store) send(ctx context.Context, via conf.Method, sender, to string, m *Message) (Location, error) {
	if s.Sender == nil {
		return Location{}, &Error{Temporary: true, Detail: "quarantine to " + to + ": no sender configured"}
	}
	pr, pw := io.Pipe()
	go func() {
		var err error
		defer func() { pw.CloseWithError(err) }()
		defer panics.Catch(&err)
		err = writeStored(pw, sender, to, m)
	}()
	res, err := s.Sender.Send(ctx, via, sender, []string{to}, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return Location{}, &Error{Temporary: true, Detail: "quarantine to " + to + ": " + err.Error()}
	}
	if r := res[0].Reply; r.Class() != 2 {
		return Location{}, &Error{Temporary: r.Class() == 4, Detail: "quarantine to " + to + ": " + r.String()}
	}
	return Location{Name: to, Type: 'M'}, nil
}

// writeFile writes one quarantine file: under a temporary name, synced, then linked to its
// final name (never replacing an existing file) and the directory synced, so that a crash
// leaves either the whole file or none.
func (s *Store) writeFile(template, sender, to string, m *Message) (loc Location, err error) {
	name := expandName(template, m)
	if name == "" || strings.ContainsAny(name, "/\x00") || name[0] == '.' {
		return loc, &Error{Detail: fmt.Sprintf("quarantine file name %q from %q is unsafe", name, template)}
	}
	rel := name
	if s.SubdirLevels >= 1 {
		rel = m.MailID[:1] + "/" + name
	}
	path := filepath.Join(s.Dir, rel)
	fail := func(e error) (Location, error) {
		return Location{}, &Error{Temporary: true, Detail: "451 4.5.0 Local delivery(1) to " + path + " failed: " + e.Error()}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fail(err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+name+"-")
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o640); err != nil {
		return fail(err)
	}
	bw := bufio.NewWriterSize(tmp, 64<<10)
	var w io.Writer = bw
	var gz *gzip.Writer
	if strings.HasSuffix(name, ".gz") {
		gz = gzip.NewWriter(bw)
		w = gz
	}
	if err := writeStored(w, sender, to, m); err != nil {
		return fail(err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return fail(err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("file already exists, refuse to overwrite")
		}
		return fail(err)
	}
	os.Remove(tmp.Name())
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	loc = Location{Name: rel, Type: 'F'}
	if gz != nil {
		loc.Type = 'Z'
	}
	return loc, nil
}

// expandName expands a local: file name template: %m mail_id, %n log id, %b body digest,
// %P partition tag, %i reception time as YYYYMMDDTHHMMSS (local time; not the mail_id as in
// notification templates), %s the sender (letters, digits and ._@+- only), %% a percent sign.
func expandName(t string, m *Message) string {
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '%' || i+1 == len(t) {
			b.WriteByte(t[i])
			continue
		}
		i++
		switch t[i] {
		case 'm':
			b.WriteString(m.MailID)
		case 'n':
			b.WriteString(m.LogID)
		case 'b':
			b.WriteString(m.BodyDigest)
		case 'P':
			b.WriteString(m.PartitionTag)
		case 'i':
			b.WriteString(m.Received.Local().Format("20060102T150405"))
		case 's':
			b.WriteString(strings.Map(func(r rune) rune {
				if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@+-", r)) {
					return r
				}
				return '_'
			}, m.Sender))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(t[i])
		}
	}
	return b.String()
}

// writeStored writes amavis's stored format: our leading fields, then the original message
// with LF line endings (as amavis stores it).
func writeStored(w io.Writer, sender, to string, m *Message) error {
	var h strings.Builder
	h.WriteString("Return-Path: " + delivery.Bracket(sender) + "\n")
	h.WriteString("Delivered-To: " + to + "\n")
	h.WriteString("X-Envelope-From: " + delivery.Bracket(sender) + "\n")
	h.WriteString(addrField("X-Envelope-To:", m.Recipients) + "\n")
	h.WriteString(addrField("X-Envelope-To-Blocked:", m.Blocked) + "\n")
	h.WriteString("X-Quarantine-ID: <" + m.MailID + ">\n")
	for _, f := range m.Fields {
		h.WriteString(strings.TrimRight(f, "\r\n") + "\n")
	}
	if m.ReceivedField != "" {
		h.WriteString(strings.TrimRight(m.ReceivedField, "\r\n") + "\n")
	}
	if _, err := io.WriteString(w, h.String()); err != nil {
		return err
	}
	f, err := os.Open(m.Original)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(&lfWriter{w: w}, f)
	return err
}

// addrField is an X-Envelope-To field as amavis writes it (a structured field of its hdr):
// the addresses on one line while they fit in 78 columns, a continuation line before an
// address that would not; nothing after the colon when there is none.
func addrField(name string, addrs []string) string {
	chunks := make([]string, len(addrs))
	for i, a := range addrs {
		chunks[i] = " " + delivery.Bracket(a)
		if i < len(addrs)-1 {
			chunks[i] += ","
		}
	}
	return string(hdr.Fold(nil, name, chunks, hdr.Style{Width: 78, EOL: "\n"}))
}

// lfWriter drops the CR of every CRLF, carrying a CR that ends one write into the next.
type lfWriter struct {
	w      io.Writer
	heldCR bool
	buf    []byte
}

func (l *lfWriter) Write(p []byte) (int, error) {
	l.buf = l.buf[:0]
	for i, c := range p {
		if l.heldCR {
			l.heldCR = false
			if c != '\n' {
				l.buf = append(l.buf, '\r')
			}
		}
		if c == '\r' {
			if i == len(p)-1 {
				l.heldCR = true
				continue
			}
			if p[i+1] == '\n' {
				continue
			}
		}
		l.buf = append(l.buf, c)
	}
	_, err := l.w.Write(l.buf)
	return len(p), err
}
