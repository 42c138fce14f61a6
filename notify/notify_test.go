package notify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/textproto"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-smtp"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/delivery/deliverytest"
	"amavisgo/notify/dsntest"
	amsmtp "amavisgo/smtp"
	"amavisgo/verdict"
)

// reply is the Reply a test writes as text.
func reply(s string) amsmtp.Reply { return amsmtp.ParseReply(s) }

// rcpt is the daemon's record of a recipient after forwarding: blocked in category c with
// destiny d, or, when d is D_PASS, passed in category c; resp is its reply ("" for none).
func rcpt(addr string, local bool, c Category, d conf.Destiny, resp string) *verdict.Recipient {
	r := &verdict.Recipient{Recipient: amsmtp.Recipient{Addr: addr}, Local: local, Destiny: d, Reply: reply(resp)}
	if d == conf.D_PASS {
		r.CCats.Add(c.Major, c.Minor)
	} else {
		r.Blocked, r.Blocking = true, c
	}
	return r
}

const origHeader = "Received: from client.example.org (client.example.org [198.51.100.7])\n\tby mta.example.com (Postfix) with ESMTP id QID123\nFrom: Bob <bob@sender.example.org>\nTo: x@example.com\nSubject: test \xc3\xa9\nMessage-ID: <m2@x>\nDate: Sun, 22 Nov 2026 09:44:17 +0000\n"

type rig struct {
	hop *deliverytest.Server
	cfg *conf.Config
	n   *Notifier
}

func newRig(t *testing.T, settings string) *rig {
	t.Helper()
	hop := deliverytest.Start(t)
	c, err := conf.Parse("n.toml", []byte("myhostname = \"mx.example.com\"\nnotify_method = \""+hop.Method.String()+"\"\n"+settings))
	if err != nil {
		t.Fatal(err)
	}
	n := New(c, &amavissmtp.Sender{LocalhostName: "localhost"})
	n.Now = func() time.Time { return time.Date(2026, 11, 22, 9, 44, 19, 0, time.UTC) }
	return &rig{hop: hop, cfg: c, n: n}
}

// eicar is an EICAR message from bob to x (blocked with destiny d) and ok (passed).
func eicar(p *conf.Policy, d conf.Destiny) *Message {
	virus := Category{Major: CC_VIRUS, Minor: 0}
	resp := map[conf.Destiny]string{
		conf.D_DISCARD: "250 2.7.0 Ok, discarded, id=12345-01 - INFECTED: Eicar-Test-Signature",
		conf.D_BOUNCE:  "554 5.7.0 Bounce, id=12345-01 - INFECTED: Eicar-Test-Signature",
	}[d]
	x := rcpt("x@example.com", true, virus, d, resp)
	// As package verdict does: a virus that fakes its sender suppresses the DSN.
	if p.VirusesThatFakeSenderMaps.Fakes([]string{"Eicar-Test-Signature"}) {
		x.DSNSuppress = "INFECTED"
	}
	return &Message{
		LogID: "12345-01", MailID: "n8rZJ2zBYamo", Sender: "bob@sender.example.org",
		Recipients: []*verdict.Recipient{x},
		Category:   virus, MainCategory: virus, Header: []byte(origHeader),
		Viruses: []string{"Eicar-Test-Signature"}, Scanners: []string{"ClamAV-clamd"},
		ScannerOutput: []string{"stream: Eicar-Test-Signature FOUND"},
		Quarantined:   []string{"n/virus-n8rZJ2zBYamo"},
		ClientAddr:    "198.51.100.7", ClientPort: "4567", ClientHelo: "client.example.org",
		ConnAddr: "127.0.0.1", ConnHelo: "mta.example.com",
		Received: time.Date(2026, 11, 22, 9, 44, 18, 0, time.UTC), Size: 445,
	}
}

func readHeader(t *testing.T, data []byte) textproto.MIMEHeader {
	t.Helper()
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(data))).ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVirusAdminNotice(t *testing.T) {
	r := newRig(t, "virus_admin = \"virusalert@example.com\"\n")
	m := eicar(&r.cfg.Policy, conf.D_DISCARD)
	// A virus lover, not yet forwarded when the notice goes out.
	m.Recipients = append(m.Recipients, rcpt("lover@example.com", true, Category{Major: CC_VIRUS, Minor: 0}, conf.D_PASS, ""))
	sent, err := r.n.Admins(context.Background(), &r.cfg.Policy, m, PlanDSN(m, false))
	if err != nil || len(sent) != 1 {
		t.Fatal(sent, err)
	}
	got := r.hop.Wait(t, 0)
	if got.From != "postmaster@mx.example.com" || strings.Join(got.Rcpts, ",") != "virusalert@example.com" {
		t.Errorf("envelope %q -> %q", got.From, got.Rcpts)
	}
	h := readHeader(t, got.Data)
	for name, want := range map[string]string{
		"Subject":    "VIRUS (Eicar-Test-Signature) in mail FROM [198.51.100.7]:4567 <bob@sender.example.org>",
		"From":       `"Content-filter at mx.example.com" <postmaster@mx.example.com>`,
		"To":         "<virusalert@example.com>",
		"Message-Id": "<VAn8rZJ2zBYamo@mx.example.com>",
		"Date":       "Sun, 22 Nov 2026 09:44:18 +0000 (UTC)", // the template's %d, as amavis keeps it
	} {
		if h.Get(name) != want {
			t.Errorf("%s: %q, want %q", name, h.Get(name), want)
		}
	}
	// amavis's form: the MIME fields first, the template's fields in their order after them
	if !regexp.MustCompile(`^Content-Type: multipart/mixed; boundary="----------=_\d+-[0-9a-f]+-0"\r\nContent-Transfer-Encoding: 8bit\r\n` +
		`MIME-Version: 1\.0\r\nFrom: "Content-filter at mx\.example\.com" <postmaster@mx\.example\.com>\r\nDate: `).Match(got.Data) {
		t.Errorf("the notice does not start as amavis's:\n%.300s", got.Data)
	}
	e, err := message.Read(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	mr := e.MultipartReader()
	text, _ := mr.NextPart()
	body, _ := io.ReadAll(text.Body)
	body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	for _, want := range []string{"Virus found: Eicar-Test-Signature\n", "Quarantined as: n/virus-n8rZJ2zBYamo\n",
		"Not delivered to:\n  <x@example.com>:\n   250 2.7.0 Ok, discarded", "Delivered to:\n  <lover@example.com>\n", "The sender will not be notified.",
		"Subject: test \u00e9\n", "Log reference: 12345-01/n8rZJ2zBYamo\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("notice text lacks %q:\n%s", want, body)
		}
	}
	hp, _ := mr.NextPart()
	// the original header holds UTF-8: message/global-headers, as amavis attaches it
	if ct, params, _ := hp.Header.ContentType(); ct != "message/global-headers" || params["name"] != "header.u8hdr" {
		t.Errorf("second part is %s %v", ct, params)
	}
}

func TestNoAdminNoNotice(t *testing.T) {
	r := newRig(t, "")
	m := eicar(&r.cfg.Policy, conf.D_DISCARD)
	if sent, err := r.n.Admins(context.Background(), &r.cfg.Policy, m, nil); err != nil || len(sent) != 0 {
		t.Errorf("no virus_admin configured: %v %v", sent, err)
	}
}

func TestBounceDSN(t *testing.T) {
	// Debian's rule: EICAR is not a virus that fakes its sender, so the sender hears of it.
	r := newRig(t, "viruses_that_fake_sender_maps = [['(?i)\\bEICAR\\b', false], ['.', true]]\ndsn_bcc = \"dsn-copies@example.com\"\n")
	p := &r.cfg.Policy
	m := eicar(p, conf.D_BOUNCE)
	m.Recipients[0].ORCPT = "rfc822;x@example.com"
	plan, err := r.n.DSN(context.Background(), p, m, false)
	if err != nil || plan[0] != DSNReported {
		t.Fatal(plan, err)
	}
	got := r.hop.Wait(t, 0)
	if got.From != "" || strings.Join(got.Rcpts, ",") != "bob@sender.example.org,dsn-copies@example.com" {
		t.Errorf("envelope %q -> %q, want <> -> the sender and dsn_bcc", got.From, got.Rcpts)
	}
	h := readHeader(t, got.Data)
	if h.Get("Subject") != "VIRUS in message apparently from you (Eicar-Test-Signature)" ||
		h.Get("Message-Id") != "<VSn8rZJ2zBYamo@mx.example.com>" || h.Get("In-Reply-To") != "<m2@x>" ||
		h.Get("To") != "<bob@sender.example.org>" || h.Get("From") != `"Content-filter at mx.example.com" <postmaster@mx.example.com>` {
		t.Errorf("DSN header %q", h)
	}
	d := dsntest.Read(t, got.Data)
	text, perMsg, perRcpt, hdrs := d.Text, d.PerMsg, d.PerRcpt, d.Headers
	if perMsg.Get("Reporting-MTA") != "dns; mx.example.com" ||
		perMsg.Get("Received-From-MTA") != "dns; mta.example.com ([127.0.0.1])" || // the MTA's connection, as amavis
		perMsg.Get("Arrival-Date") != "Sun, 22 Nov 2026 09:44:18 +0000 (UTC)" {
		t.Errorf("per-message fields %q", perMsg)
	}
	if len(perRcpt) != 1 {
		t.Fatalf("%d recipient groups", len(perRcpt))
	}
	for name, want := range map[string]string{
		"Original-Recipient": "rfc822;x@example.com", "Final-Recipient": "rfc822;x@example.com",
		"Action": "failed", "Status": "5.7.0",
		"Diagnostic-Code":   "smtp; 554-5.7.0 Bounce, id=12345-01 - INFECTED: 554 5.7.0 Eicar-Test-Signature",
		"Last-Attempt-Date": "Sun, 22 Nov 2026 09:44:18 +0000 (UTC)", "Final-Log-Id": "12345-01/n8rZJ2zBYamo",
	} {
		if got := perRcpt[0].Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(text, "because it contains malicious software:\n  Eicar-Test-Signature\n") {
		t.Errorf("DSN text:\n%s", text)
	}
	if hdrs != "Return-Path: <bob@sender.example.org>\n"+origHeader {
		t.Errorf("attached header %q", hdrs)
	}
	// amavis's MIME form (Amavis::Notify's build_mime_entity and delivery_status_notification)
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status;\n boundary=\"",
		"\"\nContent-Transfer-Encoding: 8bit\nMIME-Version: 1.0\nSubject: ",
		"\n\nThis is a multi-part message in MIME format...\n\n--",
		"\nContent-Type: text/plain; charset=\"UTF-8\"\nContent-Disposition: inline\nContent-Transfer-Encoding: quoted-printable\n\n",
		"\nContent-Type: message/delivery-status; name=\"dsn_status.dsn\"\nContent-Disposition: inline; filename=\"dsn_status.dsn\"\n" +
			"Content-Transfer-Encoding: 7bit\nContent-Description: Delivery error report\n\nReporting-MTA: dns; mx.example.com\n",
		"\nDiagnostic-Code: smtp; 554-5.7.0 Bounce, id=12345-01 - INFECTED:\n 554 5.7.0 Eicar-Test-Signature\n",
		"\nContent-Type: message/global-headers; name=\"header.u8hdr\"\nContent-Disposition: inline; filename=\"header.u8hdr\"\n" +
			"Content-Transfer-Encoding: 8bit\nContent-Description: Message header section\n\nReturn-Path: <bob@sender.example.org>\n",
	} {
		if !strings.Contains(string(got.Data), strings.ReplaceAll(want, "\n", "\r\n")) {
			t.Errorf("the DSN lacks %q:\n%s", want, got.Data)
		}
	}
}

func TestFakedSenderSuppressesDSN(t *testing.T) {
	r := newRig(t, "") // amavis's default: every virus fakes its sender
	p := &r.cfg.Policy
	m := eicar(p, conf.D_BOUNCE)
	plan, err := r.n.DSN(context.Background(), p, m, false)
	if err != nil || plan[0] != DSNSuppressed {
		t.Fatal(plan, err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(r.hop.Messages()); n != 0 {
		t.Errorf("%d messages sent for a suppressed DSN", n)
	}
}

func TestPlanDSN(t *testing.T) {
	bounce := "554 5.7.0 Bounce, id=1 - BANNED: x"
	mk := func(mod func(m *Message, r *verdict.Recipient)) *Message {
		r := rcpt("a@x", false, Category{Major: CC_BANNED, Minor: 0}, conf.D_BOUNCE, bounce)
		m := &Message{Sender: "s@y", Recipients: []*verdict.Recipient{r}}
		mod(m, r)
		return m
	}
	for _, tc := range []struct {
		name   string
		lmtp   bool
		mod    func(m *Message, r *verdict.Recipient)
		expect DSNState
	}{
		{"bounce", false, func(m *Message, r *verdict.Recipient) {}, DSNReported},
		{"null sender", false, func(m *Message, r *verdict.Recipient) { m.Sender = "" }, DSNSuppressed},
		{"NOTIFY=NEVER", false, func(m *Message, r *verdict.Recipient) { r.Notify = []string{"NEVER"} }, DSNSuppressed},
		{"NOTIFY=SUCCESS only", false, func(m *Message, r *verdict.Recipient) { r.Notify = []string{"SUCCESS"} }, DSNSuppressed},
		{"NOTIFY=FAILURE", false, func(m *Message, r *verdict.Recipient) { r.Notify = []string{"FAILURE", "DELAY"} }, DSNReported},
		{"banned rule DISCARD", false, func(m *Message, r *verdict.Recipient) { r.DSNSuppress = "BANNED:DISCARD suggested by rule" }, DSNSuppressed},
		{"bulk mail", false, func(m *Message, r *verdict.Recipient) { m.Bulk = true }, DSNSuppressed},
		{"discarded", false, func(m *Message, r *verdict.Recipient) {
			r.Destiny, r.Reply = conf.D_DISCARD, reply("250 2.7.0 Ok, discarded, id=1 - BANNED: x")
		}, NoDSN},
		{"passed", false, func(m *Message, r *verdict.Recipient) {
			r.Blocked, r.Destiny, r.ByMTA, r.Reply = false, conf.D_PASS, true, reply("250 2.0.0 from MTA(smtp:[::1]:10025): 250 Ok")
		}, NoDSN},
		{"passed, not yet forwarded", false, func(m *Message, r *verdict.Recipient) {
			r.Blocked, r.Destiny, r.Reply = false, conf.D_PASS, amsmtp.Reply{}
		}, NoDSN},
		{"tempfail", false, func(m *Message, r *verdict.Recipient) {
			r.Destiny, r.Reply = conf.D_TEMPFAIL, reply("450 4.7.0 Temporary failure")
		}, NoDSN},
		{"reject, all rejected", false, func(m *Message, r *verdict.Recipient) { r.Destiny, r.Reply = conf.D_REJECT, reply("554 5.7.0 Reject") }, NoDSN},
		{"reject over LMTP", true, func(m *Message, r *verdict.Recipient) {
			r.Destiny, r.Reply = conf.D_REJECT, reply("554 5.7.0 Reject")
			m.Recipients = append(m.Recipients, rcpt("b@x", false, Category{}, conf.D_PASS, "250 2.0.0 Ok"))
		}, NoDSN},
		{"reject in a mixed SMTP message", false, func(m *Message, r *verdict.Recipient) {
			r.Destiny, r.Reply = conf.D_REJECT, reply("554 5.7.0 Reject")
			m.Recipients = append(m.Recipients, rcpt("b@x", false, Category{}, conf.D_PASS, "250 2.0.0 Ok"))
		}, DSNReported},
	} {
		if got := PlanDSN(mk(tc.mod), tc.lmtp)[0]; got != tc.expect {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.expect)
		}
	}
}

func TestNextHopTroubleWithNotifications(t *testing.T) {
	r := newRig(t, "virus_admin = \"virusalert@example.com\"\n")
	p := &r.cfg.Policy
	m := eicar(p, conf.D_DISCARD)
	r.hop.RejectRcpt("virusalert@example.com", 451, smtp.EnhancedCode{4, 3, 0}, "try later")
	_, err := r.n.Admins(context.Background(), p, m, nil)
	var ne *Error
	if !errors.As(err, &ne) || ne.Reply("12345-01").String() != "451 4.5.0 Error in processing, id=12345-01, quar+notif FAILED: temporarily unable to notify admin" {
		t.Errorf("4xx: %v", err)
	}
	r.hop.RejectRcpt("virusalert@example.com", 550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	if sent, err := r.n.Admins(context.Background(), p, m, nil); err != nil || len(sent) != 0 {
		t.Errorf("5xx is logged, not an error: %v %v", sent, err)
	}
}

func TestRecipientWarning(t *testing.T) {
	r := newRig(t, "warnvirusrecip = true\n")
	m := eicar(&r.cfg.Policy, conf.D_DISCARD)
	remote := rcpt("far@elsewhere.org", false, Category{Major: CC_VIRUS, Minor: 0}, conf.D_DISCARD, "250 2.7.0 Ok, discarded")
	m.Recipients = append(m.Recipients, remote)
	sent, err := r.n.Warnings(context.Background(), &r.cfg.Policy, m)
	if err != nil || strings.Join(sent, ",") != "x@example.com" {
		t.Fatalf("warned %v, %v; want only the local recipient", sent, err)
	}
	data := r.hop.Wait(t, 0).Data
	h := readHeader(t, data)
	if h.Get("Subject") != "Message with a virus for you was not delivered" || h.Get("Message-Id") != "<VRn8rZJ2zBYamo@mx.example.com>" {
		t.Errorf("warning header %q", h)
	}
	// one text part, as amavis's make_singlepart leaves it: MIME-Version first, the part's
	// fields after the template's, the template's From, Date and To as they are
	if !regexp.MustCompile(`^MIME-Version: 1\.0\r\nFrom: "Content-filter at mx\.example\.com" <postmaster@mx\.example\.com>\r\n` +
		`Date: Sun, 22 Nov 2026 09:44:18 \+0000 \(UTC\)\r\n(.*\r\n)*Message-ID: <VRn8rZJ2zBYamo@mx\.example\.com>\r\n` +
		`Content-Disposition: inline\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset="UTF-8"\r\n\r\n`).Match(data) {
		t.Errorf("the warning's form is not amavis's:\n%.600s", data)
	}
}

// A site's customised amavis template (Debian's) replaces ours.
func TestSiteTemplate(t *testing.T) {
	const debian = "/etc/amavis/en_US/template-virus-admin.txt"
	if _, err := os.Stat(debian); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip("Debian's amavis templates are not installed")
	}
	r := newRig(t, "virus_admin = \"virusalert@example.com\"\nnotify_virus_admin_templ = \""+debian+"\"\n")
	m := eicar(&r.cfg.Policy, conf.D_DISCARD)
	m.OriginatorIP = "203.0.113.9"
	if _, err := r.n.Admins(context.Background(), &r.cfg.Policy, m, nil); err != nil {
		t.Fatal(err)
	}
	data := r.hop.Wait(t, 0).Data
	if h := readHeader(t, data); h.Get("Subject") != "VIRUS (Eicar-Test-Signature) in mail FROM [198.51.100.7]:4567 <bob@sender.example.org>" {
		t.Errorf("Subject %q", h.Get("Subject"))
	}
	if !bytes.Contains(data, []byte("A virus was found: Eicar-Test-Signature")) {
		t.Errorf("Debian's text is not used:\n%s", data)
	}
	// Its %e line: the origin from the Received trace.
	if text := strings.Join(strings.Fields(string(data)), " "); !strings.Contains(text, "the message apparently originated at: [203.0.113.9], from client.example.org") {
		t.Errorf("no %%e line:\n%s", data)
	}
}

func TestPlainDSNSubjects(t *testing.T) {
	r := newRig(t, "")
	p := &r.cfg.Policy
	big := rcpt("x@example.com", false, Category{Major: CC_OVERSIZED, Minor: 0}, conf.D_BOUNCE,
		"552 5.3.4 Bounce, id=12345-01 - Message size exceeds recipient's size limit")
	m := &Message{LogID: "12345-01", MailID: "n8rZJ2zBYamo", Sender: "bob@sender.example.org", Recipients: []*verdict.Recipient{big},
		Category: big.Category(), MainCategory: Category{Major: CC_CLEAN, Minor: 0}, Header: []byte(origHeader), Received: time.Now()}
	if _, err := r.n.DSN(context.Background(), p, m, false); err != nil {
		t.Fatal(err)
	}
	// A next-hop rejection of one recipient while another was delivered.
	ok := rcpt("ok@example.com", false, Category{Major: CC_CLEAN, Minor: 0}, conf.D_PASS,
		"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as X")
	bad := rcpt("bad@example.com", false, Category{Major: CC_MTA, Minor: 2}, conf.D_REJECT,
		"550 5.1.1 id=12345-01 - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <bad@example.com>: unknown")
	ok.ByMTA, bad.ByMTA, bad.Remote = true, true, reply("550 5.1.1 <bad@example.com>: unknown")
	m2 := *m
	m2.Recipients, m2.Category, m2.RemoteMTA = []*verdict.Recipient{ok, bad}, bad.Category(), "[127.0.0.1]:10025"
	if plan, err := r.n.DSN(context.Background(), p, &m2, false); err != nil || plan[0] != NoDSN || plan[1] != DSNReported {
		t.Fatal(plan, err)
	}
	for i, want := range []string{"Undeliverable mail, OVERSIZED message", "Delivery status notification, MTA-BLOCKED"} {
		data := r.hop.Wait(t, i).Data
		if h := readHeader(t, data); h.Get("Subject") != want || h.Get("Message-Id") != "<DSNn8rZJ2zBYamo@mx.example.com>" {
			t.Errorf("DSN %d: Subject %q, Message-ID %q", i, h.Get("Subject"), h.Get("Message-Id"))
		}
		if i == 1 {
			// %N names the next hop as amavis's delivery_short_report does, in brackets of its own
			if text := dsntest.Read(t, data).Text; !strings.Contains(text, "<bad@example.com>: [[127.0.0.1]:10025] said:\n") {
				t.Errorf("the DSN's text does not name the next hop as amavis does:\n%s", text)
			}
			perRcpt := dsntest.Read(t, data).PerRcpt
			if len(perRcpt) != 1 || perRcpt[0].Get("Remote-MTA") != "dns; [127.0.0.1]:10025" ||
				perRcpt[0].Get("Diagnostic-Code") != "smtp; 550 5.1.1 <bad@example.com>: unknown" || perRcpt[0].Get("Status") != "5.1.1" {
				t.Errorf("next-hop rejection report %q", perRcpt)
			}
		}
	}
}

// FuzzCompose: whatever a template expands to, the message we build parses as MIME and keeps
// the fields we set.
func FuzzCompose(f *testing.F) {
	f.Add("Subject: x\nTo: y\n\nbody\n")
	f.Add("no header at all")
	f.Add("Subject: caf\xc3\xa9 \xff\n Folded: x\n\n\n")
	f.Fuzz(func(t *testing.T, expanded string) {
		msg := compose(expanded, [][2]string{{"From", "<a@b>"}, {"To", "<c@d>"}}, "multipart/mixed",
			[]part{{"text/rfc822-headers", "header.hdr", "h", "X: y\n", ""}})
		e, err := message.Read(strings.NewReader(msg))
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			t.Fatalf("%q: %v\n%s", expanded, err, msg)
		}
		if e.Header.Get("From") != "<a@b>" || e.Header.Get("To") != "<c@d>" {
			t.Fatalf("From/To lost: %q", msg)
		}
	})
}

func TestBannedDSN(t *testing.T) {
	r := newRig(t, "")
	banned := Category{Major: CC_BANNED, Minor: 0}
	x := rcpt("x@example.com", false, banned, conf.D_BOUNCE, "554 5.7.0 Bounce, id=12345-01 - BANNED: .exe,.exe-ms,run.exe")
	m := &Message{LogID: "12345-01", MailID: "n8rZJ2zBYamo", Sender: "bob@sender.example.org", Recipients: []*verdict.Recipient{x},
		Category: banned, MainCategory: banned, BannedReason: ".exe,.exe-ms,run.exe", Header: []byte(origHeader), Received: time.Now()}
	if _, err := r.n.DSN(context.Background(), &r.cfg.Policy, m, false); err != nil {
		t.Fatal(err)
	}
	data := r.hop.Wait(t, 0).Data
	if h := readHeader(t, data); h.Get("Subject") != "BANNED contents from you (.exe,.exe-ms,run.exe)" {
		t.Errorf("Subject %q", h.Get("Subject"))
	}
	if text := dsntest.Read(t, data).Text; !strings.Contains(text, "that is not accepted here:\n  .exe,.exe-ms,run.exe\n") {
		t.Errorf("text:\n%s", text)
	}
}

// A DSN the sender's side refuses for good is logged with amavis's NOTICE, under the message's
// log id, and the message goes on (no error).
func TestDSNRefusedIsNoticed(t *testing.T) {
	r := newRig(t, "viruses_that_fake_sender_maps = [['(?i)\\bEICAR\\b', false], ['.', true]]\n")
	var logged bytes.Buffer
	r.n.Log = slog.New(slog.NewTextHandler(&logged, nil))
	r.hop.RejectRcpt("bob@sender.example.org", 550, smtp.EnhancedCode{5, 1, 1}, "no such user")
	p := &r.cfg.Policy
	if _, err := r.n.DSN(context.Background(), p, eicar(p, conf.D_BOUNCE), false); err != nil {
		t.Fatal(err)
	}
	want := `level=WARN msg="NOTICE: UNABLE TO SEND DSN to <bob@sender.example.org>: 550 5.1.1 from MTA(` +
		r.hop.Method.String() + `): 550 5.1.1 no such user" log_id=12345-01`
	if !strings.Contains(logged.String(), want) {
		t.Errorf("log %q\nlacks %q", logged.String(), want)
	}
}
