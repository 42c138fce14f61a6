package amavis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"amavisgo/conf"
	"amavisgo/hdr"
	"amavisgo/mailid"
	"amavisgo/policybank"
	"amavisgo/quarantine/ampdp"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// A content check asked over AM.PDP (request=AM.PDP), as Amavis::In::AMPDP answers
// amavisd-milter and amavisd-submit: the client wrote the message to a file and names it; the
// message goes through the stages of an SMTP message (check, decide, quarantine, notify), and
// the response tells the client what to do: setreply, delrcpt for blocked recipients, the header
// edits (delheader, chgheader, insheader, addheader), return_value and exit_code. With
// delivery_care_of=server we forward the passed recipients ourselves, as after SMTP.

// Exit codes of a check response (sysexits.h and amavis's 99 for discard).
const (
	exOK          = 0
	exUnavailable = 69
	exTempfail    = 75
	exDiscard     = 99
)

// tempdirName is what amavis accepts as a client's directory below TEMPBASE or MYHOME: names of
// letters, digits, "_", "." and "-", none of them "..".
var tempdirName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// logIDFromFile is amavis's log id of a check: the part of the file name after "amavis-" (or
// "amavis-milter-"), when there is one.
var logIDFromFile = regexp.MustCompile(`amavis-(?:milter-)?([^/ \t]+)`)

// ampdpChecker gives the AM.PDP server of engines e its content check.
func (d *Daemon) ampdpChecker(e *engines) func(context.Context, *conf.Policy, ampdp.Request) []string {
	return func(ctx context.Context, p *conf.Policy, req ampdp.Request) []string {
		return d.checkAMPDP(ctx, e, p, req)
	}
}

// ampdpRequest is what a check request says, taken apart.
type ampdpRequest struct {
	tempdir, file  string
	clientRemoves  bool // tempdir_removed_by=client
	serverDelivers bool // delivery_care_of=server
	banks          []string
}

func (d *Daemon) checkAMPDP(ctx context.Context, e *engines, p *conf.Policy, req ampdp.Request) []string {
	start := time.Now()
	cfg := e.cfg
	m := &Message{cfg: cfg, Policy: p, RxTime: start, eng: e, Proto: req.Get("protocol_name"),
		QueueID: req.Get("queue_id"), DeclaredSize: -1}
	m.MailID, m.SecretID = mailid.NewDefault()
	n := d.connNo.Add(1)
	m.LogID = logID(d.pid, n, 0)
	tl := &taskLog{l: d.log, id: m.LogID, level: p.LogLevel}
	r, err := parseAMPDP(cfg, req)
	if err == nil {
		if id := logIDFromFile.FindStringSubmatch(r.file); id != nil {
			m.LogID = fmt.Sprintf("%s-%02d", id[1], n)
			tl.id = m.LogID
		}
		err = d.ampdpEnvelope(m, req, r)
	}
	if err == nil {
		err = readSpooled(m, r.file)
	}
	if err != nil {
		tl.Logf(-1, "AM.PDP: %v", err)
		return ampdpResponse(m, smtp.Reply{Code: 450, Enh: "4.5.0", Text: "Failure: " + err.Error()}, exTempfail, nil)
	}
	m.tl = tl
	if tl.Enabled(1) {
		tl.Logf(1, "AM.PDP %s: %s -> %s", r.tempdir, m.SenderSMTP, rcptList(m.Recips))
	}
	// Our own directory for the decoded parts: the client's directory need not be ours to
	// write in, and what we make there is ours to remove.
	sd, err := d.spoolDirs.take(cfg.TEMPBASE, m.RxTime) // spooldirs.go
	if err != nil {
		rep := d.failed(m, tl, "spool", err)[0]
		return ampdpResponse(m, rep, exTempfail, nil)
	}
	m.spool, m.Dir = sd, sd.path
	defer d.dropSpoolDir(tl, m)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.ChildTimeout)*time.Second)
	defer cancel()
	rep, code, edits, preserve := d.ampdpFlow(ctx, m, r.serverDelivers)
	if m.Verdict != nil {
		d.logMain(tl, m, time.Since(start))
	}
	d.ampdpCleanup(tl, r, preserve && cfg.AllowPreservingEvidence)
	return ampdpResponse(m, rep, code, edits)
}

// ampdpFlow runs the stages and returns the one reply for the client, its exit code, the header
// edits for the client to apply, and whether the client's directory is kept as evidence (a
// failure, as amavis's preserve_evidence).
func (d *Daemon) ampdpFlow(ctx context.Context, m *Message, serverDelivers bool) (smtp.Reply, int, *verdict.HeaderEdits, bool) {
	tl := m.tl
	fail := func(err error) (smtp.Reply, int, *verdict.HeaderEdits, bool) {
		return d.stageFailed(m, tl, err)[0], exTempfail, nil, true
	}
	if err := d.check(ctx, m); err != nil {
		return fail(err)
	}
	if err := d.decide(m); err != nil {
		return fail(err)
	}
	if serverDelivers {
		if err := d.act(ctx, m); err != nil {
			return fail(err)
		}
		rep := d.reply(m)[0]
		return rep, exitCode(m, rep), nil, false
	}
	if err := d.quarantine(ctx, m); err != nil {
		return fail(err)
	}
	// The client delivers the passed recipients: their reply says so (amavis's "continue
	// delivery"), and the first one's header edits are the message's.
	var edits *verdict.HeaderEdits
	for _, r := range m.Recips {
		if r.Blocked {
			continue
		}
		ed := m.Verdict.HeaderEdits(r, m.MailID, len(m.Quarantined) > 0)
		r.Tagged = ed.Tagged
		if edits == nil {
			edits = &ed
		} else if ed.Key() != edits.Key() {
			tl.Logf(-1, "AM.PDP: RECIPIENTS REQUIRE DIFFERENT HEADERS")
		}
		r.Reply = smtp.Reply{Code: 250, Enh: "2.5.0", Text: "Ok, id=" + m.LogID + ", continue delivery"}
	}
	if err := d.notifyBefore(ctx, m); err != nil {
		return fail(err)
	}
	if err := d.notifyDSN(ctx, m); err != nil {
		return fail(err)
	}
	rep := d.reply(m)[0]
	return rep, exitCode(m, rep), edits, false
}

// exitCode is the response's exit_code for the reply rep (Amavis::In::AMPDP after
// one_response_for_all): tempfail for a 4xx, discard when every recipient was discarded or none
// is left for the client to deliver, reject when all were rejected, else 0.
func exitCode(m *Message, rep smtp.Reply) int {
	switch rep.Class() {
	case 4:
		return exTempfail
	case 2:
	default:
		for _, r := range m.Recips {
			if r.Destiny == conf.D_DISCARD {
				continue
			}
			return exUnavailable
		}
	}
	for _, r := range m.Recips {
		if r.Destiny != conf.D_DISCARD {
			if !r.Blocked && !r.ByMTA {
				return exOK // the client delivers it
			}
			if rep.Class() == 5 {
				return exUnavailable
			}
		}
	}
	return exDiscard
}

// ampdpResponse is the response lines (Amavis::In::AMPDP's check_ampdp_policy).
func ampdpResponse(m *Message, rep smtp.Reply, code int, edits *verdict.HeaderEdits) []string {
	out := []string{ampdp.Encode("version_server", "2"), ampdp.Encode("log_id", m.LogID)}
	enh := rep.Enh
	if enh == "" {
		enh = strconv.Itoa(rep.Class()) + ".0.0"
	}
	out = append(out, ampdp.Encode("setreply", strconv.Itoa(rep.Code), enh, rep.Text))
	switch code {
	case exTempfail:
		out = append(out, ampdp.Encode("return_value", "tempfail"))
	case exUnavailable:
		out = append(out, ampdp.Encode("return_value", "reject"))
	case exDiscard:
		out = append(out, ampdp.Encode("return_value", "discard"))
	default:
		for _, r := range m.Recips {
			if r.Blocked || r.ByMTA {
				out = append(out, ampdp.Encode("delrcpt", r.AddrSMTP))
			}
		}
		if edits != nil {
			out = append(out, milterEdits(m, *edits)...)
		}
		out = append(out, ampdp.Encode("return_value", "continue"))
	}
	return append(out, ampdp.Encode("exit_code", strconv.Itoa(code)))
}

// milterEdits are the header edits as a milter applies them: the first occurrence of a field
// deleted or changed, then the added fields inserted at prepend_header_fields_hdridx one at a
// time, the topmost last (as Amavis::In::AMPDP lists them).
func milterEdits(m *Message, ed verdict.HeaderEdits) []string {
	var out []string
	// amavis names an edited field in lower case, as its edits are keyed
	for _, name := range ed.Delete {
		if _, ok := hdr.Get(m.Header, name); ok {
			out = append(out, ampdp.Encode("delheader", "1", strings.ToLower(name)))
		}
	}
	if ed.SubjectTag != "" {
		if body, ok := rawField(m.Header, "Subject"); ok {
			tagged := strings.TrimLeft(verdict.TagSubject(body, ed.SubjectTag), " \t")
			out = append(out, ampdp.Encode("chgheader", "1", "subject", strings.TrimRight(tagged, "\r\n")))
		}
	}
	idx := strconv.Itoa(max(m.Policy.PrependHeaderFieldsHdridx, 0))
	for i := len(ed.Add) - 1; i >= 0; i-- {
		f := ed.Add[i]
		s := strings.TrimSuffix(f.String(), "\r\n")
		s = strings.ReplaceAll(s, "\r\n", "\n")
		_, body, _ := strings.Cut(s, ":")
		out = append(out, ampdp.Encode("insheader", idx, f.Name, strings.TrimLeft(body, " ")))
	}
	return out
}

// rawField is the body of the first field name, as it is in the header (folded).
func rawField(header []byte, name string) (string, bool) {
	for f := range hdr.Fields(header) {
		n, body, ok := hdr.Cut(f)
		if ok && strings.EqualFold(string(n), name) {
			return strings.ReplaceAll(string(body), "\r\n", "\n"), true
		}
	}
	return "", false
}

// parseAMPDP checks the request's directory and file as amavis does, and a little more: the
// directory must be below TEMPBASE or MYHOME (Amavis::In::AMPDP), and so must the file, which
// must be a plain file (not a link) that we can read.
func parseAMPDP(cfg *conf.Config, req ampdp.Request) (*ampdpRequest, error) {
	r := &ampdpRequest{
		tempdir:        req.Get("tempdir"),
		file:           req.Get("mail_file"),
		clientRemoves:  strings.EqualFold(req.Get("tempdir_removed_by"), "client"),
		serverDelivers: strings.EqualFold(req.Get("delivery_care_of"), "server"),
	}
	for _, b := range strings.Split(req.Get("policy_bank"), ",") {
		if b = strings.Trim(b, " \t"); b != "" {
			r.banks = append(r.banks, b)
		}
	}
	if !req.Has("recipient") {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, errors.New("Incomplete request")
	}
	if r.tempdir == "" {
		return nil, errors.New("missing 'tempdir' field")
	}
	if !underHome(cfg, r.tempdir) {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return nil, fmt.Errorf("Suspicious temporary directory name '%s'", r.tempdir)
	}
	// the client's directory is removed after the check: never one that holds the quarantine
	// or every session's spool (TEMPBASE itself, MYHOME/tmp on Debian)
	for _, d := range []struct{ name, path string }{{"QUARANTINEDIR", cfg.QUARANTINEDIR}, {"TEMPBASE", cfg.TEMPBASE}} {
		if q := strings.TrimSuffix(d.path, "/"); q != "" && (q == r.tempdir || strings.HasPrefix(q, r.tempdir+"/")) {
			return nil, fmt.Errorf("temporary directory '%s' holds %s", r.tempdir, d.name)
		}
	}
	if r.file == "" {
		r.file = r.tempdir + "/email.txt"
	} else if !underHome(cfg, r.file) {
		return nil, fmt.Errorf("suspicious mail_file name '%s': not below TEMPBASE or MYHOME", r.file)
	}
	return r, nil
}

// underHome: path is a directory or file below TEMPBASE or MYHOME, named by components that
// are neither empty nor "." nor "..".
func underHome(cfg *conf.Config, path string) bool {
	for _, base := range []string{cfg.TEMPBASE, cfg.MYHOME} {
		base = strings.TrimSuffix(base, "/")
		rest, ok := strings.CutPrefix(path, base+"/")
		if base == "" || !ok {
			continue
		}
		good := true
		for _, c := range strings.Split(rest, "/") {
			if c == "." || c == ".." || !tempdirName.MatchString(c) {
				good = false
			}
		}
		if good {
			return true
		}
	}
	return false
}

// ampdpEnvelope fills in the envelope and the client, and loads the policy banks in amavis's
// order: the socket's (already in m.Policy), client_ipaddr_policy, those the request names,
// then MYUSERS for an originating sender of a local domain.
func (d *Daemon) ampdpEnvelope(m *Message, req ampdp.Request, r *ampdpRequest) error {
	sender := req.Get("sender")
	if !strings.HasPrefix(sender, "<") || !strings.HasSuffix(sender, ">") {
		sender = "<" + sender + ">"
	}
	m.SenderSMTP, m.Sender = sender, smtp.Unquote(sender)
	for _, a := range req.All("recipient") {
		if !strings.HasPrefix(a, "<") || !strings.HasSuffix(a, ">") {
			a = "<" + a + ">"
		}
		m.Recips = append(m.Recips, &verdict.Recipient{
			Recipient: smtp.Recipient{Addr: smtp.Unquote(a), AddrSMTP: a}, Destiny: conf.D_PASS})
	}
	m.Client = ClientInfo{Addr: req.Get("client_address"), Port: req.Get("client_port"),
		Name: req.Get("client_name"), Helo: req.Get("helo_name"), Proto: req.Get("protocol_name")}
	// Our quarantined copy's Received field names the original client.
	m.Conn = ConnInfo{PeerIP: trimIPv6Tag(m.Client.Addr), Helo: m.Client.Helo}
	if s := req.Get("client_source"); !strings.EqualFold(s, "[UNAVAILABLE]") {
		m.Client.Source = s
	}
	if !validPort(m.Client.Port) {
		m.Client.Port = ""
	}
	cfg := m.cfg
	ip, _ := netip.ParseAddr(trimIPv6Tag(m.Client.Addr))
	p, err := policybank.ForClient(cfg, m.Policy, ip)
	if err != nil {
		return err
	}
	for _, name := range r.banks {
		if p, err = cfg.Bank(p, name); err != nil {
			return err
		}
	}
	if m.Sender != "" && p.Originating {
		if p.LocalDomainsMaps.Bool(m.Sender, p.LookupOptions()) {
			if p, err = cfg.Bank(p, "MYUSERS"); err != nil {
				return err
			}
		}
	}
	m.Policy = p
	return nil
}

// readSpooled opens the client's file as amavis does (lstat: it must exist and be a plain
// file; then opened without following a link) and takes the header section, size and 8-bit
// status from it, as spool does while receiving.
func readSpooled(m *Message, file string) error {
	fi, err := os.Lstat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("File %s does not exist", file)
	case err != nil:
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("File %s inaccessible: %v", file, err)
	case !fi.Mode().IsRegular():
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("File %s is not a plain file", file)
	}
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		//lint:ignore ST1005 amavis's own text, which log parsers and clients match
		return fmt.Errorf("Can't open file %s: %v", file, err)
	}
	defer f.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	hc := headerCapture{limit: 256 << 10}
	var size int64
	for {
		k, err := f.Read(*bp)
		if k > 0 {
			chunk := (*bp)[:k]
			hc.Write(chunk)
			size += int64(k)
			if !m.Has8bit {
				m.Has8bit = has8bit(chunk) // spool.go
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			//lint:ignore ST1005 amavis's own text, which log parsers and clients match
			return fmt.Errorf("Can't read file %s: %v", file, err)
		}
	}
	m.File, m.Size = file, size
	m.Header, m.HeaderComplete = hc.buf, hc.complete
	m.MessageID, _ = hdr.Get(m.Header, "Message-ID")
	if !m.Has8bit {
		m.Body = "7BIT"
	}
	return nil
}

// ampdpCleanup removes the client's directory when the server is to (tempdir_removed_by
// defaults to server), unless it is kept as evidence of a failure.
func (d *Daemon) ampdpCleanup(tl *taskLog, r *ampdpRequest, preserve bool) {
	switch {
	case r.clientRemoves:
		tl.Logf(4, "AM.PDP: deletion of %s is client's responsibility", r.tempdir)
	case preserve:
		tl.Logf(-1, "AM.PDP: tempdir is to be PRESERVED: %s", r.tempdir)
	default:
		tl.Logf(4, "AM.PDP: tempdir and file being removed: %s, %s", r.tempdir, r.file)
		if err := os.Remove(r.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			tl.Logf(-1, "AM.PDP: Can't remove file %s: %v", r.file, err)
		}
		if err := os.RemoveAll(r.tempdir); err != nil {
			tl.Logf(-1, "AM.PDP: Can't remove %s: %v", r.tempdir, err)
		}
	}
}
