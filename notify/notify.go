// Package notify writes and sends the mail amavis originates about a message (Amavis::Notify,
// Amavis.pm's do_notify_and_quarantine): notices to administrators per category, delivery status
// notifications (RFC 3464) to the sender of bounced mail, with amavis's rules for when not to send
// one, and warnings to recipients when enabled. Texts come from templates in amavis's macro
// language (notify/template); the defaults are in notify/templates and a site may point
// notify_*_templ at its own files, including customised amavis templates.
package notify

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery"
	"amavisgo/mailid"
	"amavisgo/notify/template"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// The content categories are package verdict's (amavis's CC_* numbers and display names).
const (
	CC_CATCHALL  = verdict.CC_CATCHALL
	CC_CLEAN     = verdict.CC_CLEAN
	CC_MTA       = verdict.CC_MTA
	CC_OVERSIZED = verdict.CC_OVERSIZED
	CC_BADH      = verdict.CC_BADH
	CC_SPAMMY    = verdict.CC_SPAMMY
	CC_SPAM      = verdict.CC_SPAM
	CC_UNCHECKED = verdict.CC_UNCHECKED
	CC_BANNED    = verdict.CC_BANNED
	CC_VIRUS     = verdict.CC_VIRUS
)

// Category is a content category, major and minor.
type Category = verdict.CCat

// Message is the message the notifications are about.
type Message struct {
	LogID, MailID, SecretID string
	Sender                  string // bare; "" = <>
	// Recipients are the daemon's records after forwarding: a recipient's Reply is its blocked
	// reply or, when it went to the next hop, the next hop's answer as amavis wraps it; the
	// zero Reply when it was not forwarded yet.
	Recipients []*verdict.Recipient
	// RemoteMTA is the next hop ("[127.0.0.1]:10025"), named for the recipients it refused.
	RemoteMTA string
	// DSNPassedOn: the next hop took NOTIFY and ORCPT, so it reports a success itself.
	DSNPassedOn bool
	// Category is the message's blocking category when anything is blocked, else its main one;
	// MainCategory is the main one.
	Category, MainCategory Category
	Header                 []byte // the original header section
	Viruses                []string
	Scanners               []string // names of the scanners that found them (%W)
	ScannerOutput          []string // lines of scanner output (%v)
	BannedReason           string   // %F, "comment:.exe,.exe-ms,run.exe"
	BadHeaders             []string // %X
	Quarantined            []string // %q, names relative to QUARANTINEDIR
	ClientAddr, ClientPort string   // the SMTP client (XFORWARD ADDR/PORT)
	OriginatorIP           string   // %e: the oldest public IP address of the Received trace
	ClientName, ClientHelo string
	// ConnAddr, ConnHelo and ConnProto are the MTA's own connection to us (its IP address,
	// its EHLO name, SMTP/ESMTP/LMTP...), which amavis names in Received-From-MTA.
	ConnAddr, ConnHelo, ConnProto string
	Originating                   bool
	Bulk                          bool // bulk, list or automatic mail (amavis's is_bulk)
	Received                      time.Time
	ENVID                         string // MAIL ENVID=, xtext-decoded
	PolicyBank                    string
	QueueID                       string
	Size                          int64
	BodyDigest                    string
}

// Error is a notification that could not be sent for now. The daemon must answer the MTA
// with Reply (the mail stays queued there); Detail is for the log.
type Error struct {
	Section string // "quar+notif" or "delivery-notification"
	What    string // "temporarily unable to notify admin", ...
	Detail  string
}

func (e *Error) Error() string { return e.What + ": " + e.Detail }

// Reply is the SMTP reply for the MTA; amID is the log id.
func (e *Error) Reply(amID string) smtp.Reply {
	return smtp.ProcessingFailed(amID, e.Section, e.What)
}

//go:embed templates/*.txt
var defaultTemplates embed.FS

// Notifier sends notifications through notify_method.
type Notifier struct {
	Config *conf.Config
	Sender delivery.Sender
	Log    *slog.Logger     // nil: slog.Default()
	Now    func() time.Time // nil: time.Now

	mu    sync.Mutex
	cache map[string]*template.Template

	namesOnce sync.Once
	names     map[string]bool
}

// New makes a Notifier for a configuration.
func New(c *conf.Config, s delivery.Sender) *Notifier { return &Notifier{Config: c, Sender: s} }

// templ returns the template configured by path, or the built-in one.
func (n *Notifier) templ(path, builtin string) (*template.Template, error) {
	key := path
	if key == "" {
		key = "builtin:" + builtin
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.cache[key]; ok {
		return t, nil
	}
	var src []byte
	var err error
	if path == "" {
		src, err = defaultTemplates.ReadFile("templates/" + builtin)
	} else {
		src, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	name := path
	if name == "" {
		name = "templates/" + builtin
	}
	t, err := template.ParseFile(name, string(src), n.knownMacro)
	if err != nil {
		return nil, err
	}
	if n.cache == nil {
		n.cache = map[string]*template.Template{}
	}
	n.cache[key] = t
	return t, nil
}

// knownMacro reports whether the notifications provide a macro of that name.
func (n *Notifier) knownMacro(name string) bool {
	n.namesOnce.Do(func() {
		n.names = map[string]bool{}
		for k := range n.macros(&Message{}, "", nil, false) {
			n.names[k] = true
		}
	})
	return n.names[name]
}

func (n *Notifier) log() *slog.Logger {
	if n.Log != nil {
		return n.Log
	}
	return slog.Default()
}

func (n *Notifier) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// LogIDKey is the slog attribute that carries the log id of the message a record is about.
const LogIDKey = "log_id"

// send hands one notification about m to notify_method. A 4xx answer or a failed transaction
// is an *Error; a 5xx answer is logged and otherwise ignored, as amavis does.
// what names the action for messages: "notify admin", "send DSN to <a@b>".
// o are the MAIL and RCPT parameters; its ENVID is made here, as amavis makes one for each
// message it originates (Amavis::Out::SMTP): "AM.<mail_id>.<UTC time>@<myhostname>".
func (n *Notifier) send(ctx context.Context, p *conf.Policy, m *Message, from string, rcpts []string, msg string, section, what string, o delivery.Options) (bool, error) {
	id, _ := mailid.NewDefault()
	o.ENVID = delivery.XText("AM." + id + "." + n.now().UTC().Format("20060102T150405Z") + "@" + n.Config.Myhostname)
	res, err := n.Sender.Send(delivery.WithOptions(ctx, o), p.Notify(), from, rcpts, strings.NewReader(msg))
	if err != nil {
		return false, &Error{Section: section, What: "temporarily unable to " + what, Detail: err.Error()}
	}
	verb, _, _ := strings.Cut(what, " to <")
	ok := false
	for _, r := range res {
		switch r.Reply.Class() {
		case 4:
			return false, &Error{Section: section, What: "temporarily unable to " + what, Detail: r.Rcpt + ": " + r.Reply.String()}
		case 2:
			ok = true
		default: // amavis: "NOTICE: UNABLE TO SEND DSN to <sender>: 550 ..."
			n.log().Warn(fmt.Sprintf("NOTICE: UNABLE TO %s to %s: %s", strings.ToUpper(verb), delivery.Bracket(r.Rcpt), r.Reply),
				LogIDKey, m.LogID)
		}
	}
	return ok, nil
}

// Check reads the templates of the configuration and of each policy bank, so that a template
// that cannot be read or calls an unknown macro stops the daemon at start with file:line
// instead of failing the first notification.
func (n *Notifier) Check() error {
	policies := []*conf.Policy{&n.Config.Policy}
	for name := range n.Config.PolicyBanks {
		p, err := n.Config.Bank(&n.Config.Policy, name)
		if err != nil {
			return err
		}
		policies = append(policies, p)
	}
	for _, p := range policies {
		for _, t := range [][2]string{
			{p.NotifySenderTempl, "dsn.txt"}, {p.NotifyVirusSenderTempl, "virus-sender.txt"},
			{p.NotifySpamSenderTempl, "spam-sender.txt"}, {p.NotifyVirusAdminTempl, "virus-admin.txt"},
			{p.NotifySpamAdminTempl, "spam-admin.txt"}, {p.NotifyVirusRecipsTempl, "virus-recipient.txt"},
		} {
			if _, err := n.templ(t[0], t[1]); err != nil {
				return fmt.Errorf("notification template: %w", err)
			}
		}
	}
	return nil
}
