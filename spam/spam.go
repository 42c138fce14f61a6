// Package spam asks the external spam engines of spam_scanners about a message, as amavis's
// Amavis::SpamControl does with its SpamdClient and RspamdClient modules: every engine is asked
// in order, their scores add up, and an engine that fails counts as score 0 (it is logged, and
// the caller may choose to tempfail instead).
package spam

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Engine types.
const (
	TypeSpamd  = "spamd"
	TypeRspamd = "rspamd"
)

// Entry is one element of spam_scanners, amavis's @spam_scanners. In TOML:
//
//	[[spam_scanners]]
//	name = "Local spamd"
//	type = "spamd"              # or amavis's "Amavis::SpamControl::SpamdClient"
//	address = "127.0.0.1:783"   # or socket = "/run/spamd.sock"
//
//	[[spam_scanners]]
//	name = "Local Rspamd"
//	type = "rspamd"             # or "Amavis::SpamControl::RspamdClient"
//	url = "http://127.0.0.1:11333/checkv2"
//	score_factor = 0.42066      # sa_tag2_level_deflt / 15
//	mta_name = "mail.example.com"
//
// Keys:
//   - name: the engine's name in logs.
//   - type: "spamd" or "rspamd"; amavis's module names are accepted.
//   - score_factor: multiplies the engine's score (rspamd: its required score too).
//   - mail_body_size_limit: bytes of body sent; default sa_mail_body_size_limit for spamd,
//     none for rspamd (as in amavis).
//   - spamd: address ("host:port", default amavis's hard-wired 127.0.0.1:783 then [::1]:783)
//     or socket (a unix socket path); command = "REPORT" lists the tests with their points
//     ("GTUBE=1000"), where amavis's SYMBOLS gives names only.
//   - rspamd: url, timeout (seconds, default 60), mta_name, username and password (HTTP basic
//     authentication, amavis's credentials), whole_message (send messages over 100 KiB too;
//     amavis skips them with score 0).
type Entry struct {
	Name              string   `toml:"name"`
	Type              string   `toml:"type"`
	ScoreFactor       *float64 `toml:"score_factor"`
	MailBodySizeLimit *int64   `toml:"mail_body_size_limit"`
	Address           string   `toml:"address"`
	Socket            string   `toml:"socket"`
	URL               string   `toml:"url"`
	Timeout           int      `toml:"timeout"`
	MTAName           string   `toml:"mta_name"`
	Username          string   `toml:"username"`
	Password          string   `toml:"password"`
	WholeMessage      bool     `toml:"whole_message"`
	Command           string   `toml:"command"`
}

// kind is the entry's engine type, from type or amavis's module name.
func (e Entry) kind() string {
	switch strings.ToLower(strings.TrimSpace(e.Type)) {
	case TypeSpamd, "amavis::spamcontrol::spamdclient":
		return TypeSpamd
	case TypeRspamd, "amavis::spamcontrol::rspamdclient":
		return TypeRspamd
	case "":
		if e.URL != "" {
			return TypeRspamd
		}
		if e.Address != "" || e.Socket != "" {
			return TypeSpamd
		}
	}
	return ""
}

// Validate checks one entry of spam_scanners.
func (e Entry) Validate() error {
	switch e.kind() {
	case TypeSpamd:
		if e.URL != "" {
			return fmt.Errorf("%s: url is for rspamd", e.Name)
		}
		if e.Address != "" && e.Socket != "" {
			return fmt.Errorf("%s: give address or socket, not both", e.Name)
		}
		if c := strings.ToUpper(e.Command); c != "" && c != "SYMBOLS" && c != "REPORT" {
			return fmt.Errorf("%s: command %q: SYMBOLS or REPORT", e.Name, e.Command)
		}
	case TypeRspamd:
		if e.Address != "" || e.Socket != "" {
			return fmt.Errorf("%s: address and socket are for spamd; rspamd takes url", e.Name)
		}
		if e.URL != "" && !strings.HasPrefix(e.URL, "http://") && !strings.HasPrefix(e.URL, "https://") {
			return fmt.Errorf("%s: url %q must be http:// or https://", e.Name, e.URL)
		}
	default:
		return fmt.Errorf("%s: unknown type %q (spamd or rspamd)", e.Name, e.Type)
	}
	if e.Name == "" {
		return fmt.Errorf("an entry has no name")
	}
	if e.Timeout < 0 {
		return fmt.Errorf("%s: timeout must not be negative", e.Name)
	}
	if e.MailBodySizeLimit != nil && *e.MailBodySizeLimit < 0 {
		return fmt.Errorf("%s: mail_body_size_limit must not be negative", e.Name)
	}
	return nil
}

// Message is what the engines are told about a message.
type Message struct {
	File       string   // the spooled message, CRLF line ends
	Size       int64    // its size (RFC 1870)
	HeaderSize int64    // the header section's size, with the empty line after it
	Sender     string   // the envelope sender as amavis quotes it: "<a@b.example>", "<>"
	Recips     []string // the recipients, quoted likewise
	PolicyBank string   // amavis's %p, e.g. "MYNETS"
	// The SMTP client as the MTA reported it (XFORWARD) and the MTA's queue id.
	Helo, ClientName, ClientAddr, QueueID string
}

// Result is one engine's answer.
type Result struct {
	Name string
	// Scored is false when the engine failed or was skipped: Score is 0 then.
	Scored bool
	Score  float64 // after score_factor
	Tests  string  // comma-separated test names ("GTUBE,NO_RELAYS" or "GTUBE=0,MIME_GOOD=-0.1")
	// Log is the engine's level-2 line, as amavis logs it.
	Log      string
	Err      error // the failure ("client failed: ..."), nil when it answered
	Duration time.Duration
}

// Report is the answer of all engines for one message.
type Report struct {
	Results []Result
	Score   float64  // the sum over the engines, as amavis adds them
	Tests   []string // each engine's tests, in engine order (empty ones left out)
	Failed  bool     // some engine failed
}

// FailReason names the engines that failed and why, for a tempfail reply.
func (r Report) FailReason() string {
	var s []string
	for _, e := range r.Results {
		if e.Err != nil {
			s = append(s, e.Name+": "+e.Err.Error())
		}
	}
	return strings.Join(s, "; ")
}

type engine interface {
	check(ctx context.Context, m *Message) Result
}

// Set is the engines of spam_scanners.
type Set struct {
	engines []engine
}

// NewSet builds the engines of entries; bodyLimit is sa_mail_body_size_limit (0: none).
func NewSet(entries []Entry, bodyLimit int64) (*Set, error) {
	s := &Set{}
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return nil, err
		}
		switch e.kind() {
		case TypeSpamd:
			s.engines = append(s.engines, newSpamd(e, bodyLimit))
		case TypeRspamd:
			s.engines = append(s.engines, newRspamd(e))
		}
	}
	return s, nil
}

// ValidateList checks spam_scanners.
func ValidateList(entries []Entry) error {
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Configured tells whether any engine is configured (amavis's $extra_code_antispam).
func (s *Set) Configured() bool { return s != nil && len(s.engines) > 0 }

// Check asks every engine in order; ctx bounds the whole (child_timeout).
func (s *Set) Check(ctx context.Context, m *Message) Report {
	var rep Report
	for _, e := range s.engines {
		start := time.Now()
		r := e.check(ctx, m)
		r.Duration = time.Since(start)
		if r.Err != nil {
			rep.Failed = true
		}
		rep.Score += r.Score
		if r.Tests != "" {
			rep.Tests = append(rep.Tests, r.Tests)
		}
		rep.Results = append(rep.Results, r)
	}
	return rep
}

// sizeLimit is amavis's truncation point for an engine given at most hdrMax bytes of header
// and bodyLimit bytes of body (plus extra, the separator spamd's client counts): none (0)
// when the message is not more than 5 KiB over it.
func sizeLimit(m *Message, hdrMax, bodyLimit, extra int64) int64 {
	body := max(m.Size-m.HeaderSize, 0)
	lim := min(hdrMax, m.HeaderSize) + extra + min(bodyLimit, body)
	if m.Size < lim+5*1024 {
		return 0
	}
	return lim
}

// failure is an engine's failure in amavis's words ("Can't connect to spamd", "Error calling
// rspamd: ..."), which the log line repeats.
type failure struct {
	msg string
	err error
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.err }

// failf is fmt.Errorf for amavis's capitalized failure texts; a %w argument is kept for errors.Is.
func failf(format string, args ...any) error {
	return &failure{msg: fmt.Sprintf(strings.ReplaceAll(format, "%w", "%v"), args...), err: errors.Unwrap(fmt.Errorf(format, args...))}
}
