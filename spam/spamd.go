package spam

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// amavis's SpamdClient connects to these, in order, with a 10 s connect timeout.
var spamdDefaultAddrs = []string{"127.0.0.1:783", "[::1]:783"}

const spamdConnectTimeout = 10 * time.Second

// maxSpamdReply bounds what is read of spamd's answer: a header and one line of test names.
const maxSpamdReply = 256 << 10

type spamd struct {
	e         Entry
	bodyLimit int64 // mail_body_size_limit, else sa_mail_body_size_limit; 0: none
}

func newSpamd(e Entry, bodyLimit int64) *spamd {
	if e.MailBodySizeLimit != nil {
		bodyLimit = *e.MailBodySizeLimit
	}
	return &spamd{e: e, bodyLimit: bodyLimit}
}

func (s *spamd) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: spamdConnectTimeout}
	if s.e.Socket != "" {
		return d.DialContext(ctx, "unix", s.e.Socket)
	}
	addrs := spamdDefaultAddrs
	if s.e.Address != "" {
		addrs = []string{s.e.Address}
	}
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, failf("Can't connect to spamd: %w", errors.Join(errs...))
}

// check sends the message as amavis's SpamdClient does: "SYMBOLS SPAMC/1.3", its pseudo
// header fields in front of the message, the whole cut at the size limit with a final LF.
func (s *spamd) check(ctx context.Context, m *Message) Result {
	r := Result{Name: s.e.Name}
	var lim int64
	if s.bodyLimit > 0 {
		lim = sizeLimit(m, 64*1024, s.bodyLimit, 1)
	}
	score, raw, tests, err := s.ask(ctx, m, lim)
	scoreText := "" // as amavis logs it: spamd's own text unless score_factor made it a number
	if err != nil {
		r.Err = err
	} else {
		r.Scored, r.Score, r.Tests, scoreText = true, score, tests, raw
		if s.e.ScoreFactor != nil {
			r.Score *= *s.e.ScoreFactor
			scoreText = PerlNumber(r.Score)
		}
	}
	r.Log = fmt.Sprintf("%s spamd score=%s, tests=%s", s.e.Name, scoreText, r.Tests)
	return r
}

// pseudoHeader is what amavis's SpamdClient puts in front of the message.
func pseudoHeader(m *Message, lim int64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: %s\r\n", m.Sender)
	fmt.Fprintf(&b, "X-Envelope-To: %s\r\n", strings.Join(m.Recips, ",\r\n "))
	fmt.Fprintf(&b, "X-Amavis-PolicyBank: %s\r\n", m.PolicyBank)
	fmt.Fprintf(&b, "X-Amavis-MessageSize: %d", m.Size)
	if lim > 0 {
		fmt.Fprintf(&b, ", TRUNCATED to %d", lim)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func (s *spamd) ask(ctx context.Context, m *Message, lim int64) (score float64, raw, tests string, err error) {
	f, err := os.Open(m.File)
	if err != nil {
		return 0, "", "", err
	}
	defer f.Close()
	c, err := s.dial(ctx)
	if err != nil {
		return 0, "", "", err
	}
	defer c.Close()
	// A deadline from child_timeout, at least 3 s, as amavis gives spamd.
	deadline := time.Now().Add(3 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.After(deadline) {
		deadline = d
	} else if !ok {
		deadline = time.Now().Add(10 * time.Minute)
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	prefix := pseudoHeader(m, lim)
	n := int64(len(prefix)) + m.Size
	if lim > 0 && n > lim {
		n = lim
	}
	w := bufio.NewWriterSize(c, 32<<10)
	fmt.Fprintf(w, "%s SPAMC/1.3\r\nContent-length: %d\r\n\r\n", s.command(), n)
	body := io.MultiReader(bytes.NewReader(prefix), f)
	if lim > 0 && n == lim {
		// amavis ends a truncated message with a line feed in place of its last byte
		if _, err := io.Copy(w, io.LimitReader(body, n-1)); err != nil {
			return 0, "", "", err
		}
		w.WriteByte('\n')
	} else if _, err := io.Copy(w, io.LimitReader(body, n)); err != nil {
		return 0, "", "", err
	}
	if err := w.Flush(); err != nil {
		return 0, "", "", err
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	reply, err := io.ReadAll(io.LimitReader(c, maxSpamdReply))
	if err != nil {
		return 0, "", "", err
	}
	return ParseSpamdReply(reply, s.command() == "REPORT")
}

// command is SYMBOLS (amavis's) or REPORT (test names with their points).
func (s *spamd) command() string {
	if strings.EqualFold(s.e.Command, "REPORT") {
		return "REPORT"
	}
	return "SYMBOLS"
}

// ParseSpamdReply reads spamd's answer to SYMBOLS: "SPAMD/1.1 0 EX_OK", header lines, an empty
// line, then the test names on one line. The score is the middle field of "Spam: True ; 7.5 /
// 5.0"; raw is its text ("-0.0"). With report, the body is REPORT's text, whose table of
// points and rule names gives the tests as "NAME=points", sorted by name.
func ParseSpamdReply(b []byte, report bool) (score float64, raw, tests string, err error) {
	head, body, found := bytes.Cut(b, []byte("\r\n\r\n"))
	if !found {
		if len(b) == 0 {
			return 0, "", "", failf("Empty spamd response")
		}
		head, body = bytes.TrimSuffix(b, []byte("\r\n")), nil
	}
	lines := strings.Split(string(head), "\r\n")
	status := strings.Fields(lines[0])
	if len(status) < 2 || !strings.HasPrefix(status[0], "SPAMD/") {
		return 0, "", "", failf("Error in spamd resp: %q", limitText(lines[0]))
	}
	if status[1] != "0" {
		return 0, "", "", failf("Failure reported by spamd: %s", limitText(lines[0]))
	}
	var spamField string
	haveSpam := false
	for _, l := range lines[1:] {
		name, val, ok := strings.Cut(l, ":")
		if !ok {
			return 0, "", "", failf("Error in spamd resp: %q", limitText(l))
		}
		if strings.EqualFold(strings.TrimSpace(name), "spam") {
			spamField, haveSpam = strings.TrimSpace(val), true
		}
	}
	if !haveSpam {
		return 0, "", "", errors.New("no Spam field in spamd response")
	}
	// "True ; 1000.0 / 5.0"
	f := strings.Fields(spamField)
	if len(f) != 5 || f[1] != ";" || f[3] != "/" {
		return 0, "", "", fmt.Errorf("spamd: unexpected Spam field %q", limitText(spamField))
	}
	score, perr := strconv.ParseFloat(f[2], 64)
	if perr != nil || score != score || score > 1e12 || score < -1e12 {
		return 0, "", "", fmt.Errorf("spamd: bad score %q", limitText(f[2]))
	}
	if report {
		return score, f[2], reportTests(string(body)), nil
	}
	// the test names are the last line of the body
	t := strings.TrimRight(string(body), "\r\n")
	if i := strings.LastIndex(t, "\r\n"); i >= 0 {
		t = t[i+2:]
	}
	return score, f[2], sanitizeTests(t), nil
}

// reportTests reads the table of a REPORT body: after the "---- ----" line, one rule per line
// as " pts RULE_NAME description", description lines continued with blanks.
func reportTests(body string) string {
	_, table, ok := strings.Cut(body, "\n---- ")
	if !ok {
		return ""
	}
	lines := strings.Split(table, "\n")[1:]
	var t []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || strings.HasPrefix(l, "     ") {
			continue // a continued description (the points take 4 columns)
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		t = append(t, sanitizeTests(f[1])+"="+f[0])
	}
	slices.Sort(t)
	return strings.Join(t, ",")
}

// sanitizeTests keeps test lists printable and free of line breaks: they go into a header.
func sanitizeTests(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func limitText(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return sanitizeTests(s)
}

// PerlNumber formats a number as Perl prints one ("%.15g"): 1000, 6.31, -0.1.
func PerlNumber(x float64) string {
	if x == 0 {
		return "0"
	}
	return strconv.FormatFloat(x, 'g', 15, 64)
}
