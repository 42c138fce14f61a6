package spam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

const (
	rspamdDefaultURL     = "http://127.0.0.1:11333/checkv2"
	rspamdDefaultTimeout = 60 * time.Second
	// amavis's SMTP server keeps a copy in memory only of mail under 100 KiB, and its
	// RspamdClient sends only such a copy: bigger mail is skipped with score 0.
	rspamdInMemoryLimit = 100 * 1024
	maxRspamdReply      = 4 << 20
	// rspamdUserAgent is the User-Agent amavis's RspamdClient (version 2.412) sends.
	rspamdUserAgent = "amavis/2.412"
)

type rspamd struct {
	e       Entry
	url     string
	timeout time.Duration
	client  *http.Client
}

func newRspamd(e Entry) *rspamd {
	r := &rspamd{e: e, url: e.URL, timeout: rspamdDefaultTimeout}
	if r.url == "" {
		r.url = rspamdDefaultURL
	}
	if e.Timeout > 0 {
		r.timeout = time.Duration(e.Timeout) * time.Second
	}
	// Our own transport: connections to rspamd are kept between messages, and no proxy
	// from the environment stands between us and it.
	r.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}}
	return r
}

// RspamdReply is the part of rspamd's /checkv2 answer amavis reads.
type RspamdReply struct {
	IsSkipped     bool    `json:"is_skipped"`
	Score         float64 `json:"score"`
	RequiredScore float64 `json:"required_score"`
	Action        string  `json:"action"`
	Symbols       map[string]struct {
		Name  string  `json:"name"`
		Score float64 `json:"score"`
	} `json:"symbols"`
}

// ParseRspamdReply decodes rspamd's JSON answer.
func ParseRspamdReply(b []byte) (*RspamdReply, error) {
	var r RspamdReply
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("bad rspamd response: %v", err)
	}
	if r.Action == "" {
		return nil, errors.New("bad rspamd response: no action")
	}
	return &r, nil
}

// symbolNameFix makes a symbol name fit in a test list, as RspamdClient's tr/=,/__/.
var symbolNameFix = strings.NewReplacer("=", "_", ",", "_")

// Tests are the symbols as amavis's RspamdClient writes them, "NAME=score" with "=" and ","
// in names made "_"; sorted by name (amavis's order is Perl's hash order, which varies).
func (r *RspamdReply) Tests() string {
	t := make([]string, 0, len(r.Symbols))
	for key, s := range r.Symbols {
		name := s.Name
		if name == "" {
			name = key
		}
		name = symbolNameFix.Replace(name)
		t = append(t, sanitizeTests(name)+"="+PerlNumber(s.Score))
	}
	sort.Strings(t)
	return strings.Join(t, ",")
}

func (r *rspamd) check(ctx context.Context, m *Message) Result {
	res := Result{Name: r.e.Name}
	var rep *RspamdReply
	var err error
	skipped := !r.e.WholeMessage && m.Size >= rspamdInMemoryLimit
	if skipped {
		rep = &RspamdReply{Action: "N/A", IsSkipped: true}
		res.Scored = true
	} else if rep, err = r.ask(ctx, m); err != nil {
		res.Err = err
		rep = &RspamdReply{}
	} else {
		res.Scored = true
	}
	score, required := rep.Score, rep.RequiredScore
	if r.e.ScoreFactor != nil {
		score *= *r.e.ScoreFactor
		required *= *r.e.ScoreFactor
	}
	if res.Scored {
		res.Score = score
		res.Tests = rep.Tests()
	}
	skip := ""
	if rep.IsSkipped {
		skip = "skipped/"
	}
	if skipped {
		res.Log = fmt.Sprintf("%s skipping message type (%d bytes, over what amavis keeps in memory)", r.e.Name, m.Size)
	} else {
		res.Log = fmt.Sprintf("%s rspamd %sscore %.2f/%.2f (%s) %s", r.e.Name, skip, score, required, rep.Action, res.Tests)
	}
	return res
}

func (r *rspamd) ask(ctx context.Context, m *Message) (*RspamdReply, error) {
	f, err := os.Open(m.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var body io.Reader = f
	n := m.Size
	if r.e.MailBodySizeLimit != nil {
		if lim := sizeLimit(m, 32*1024, *r.e.MailBodySizeLimit, 0); lim > 0 {
			body, n = io.LimitReader(f, lim), lim
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("User-Agent", rspamdUserAgent)
	meta := func(name, value string) {
		if value != "" { // spelt as amavis spells them (a direct key is not canonicalized)
			req.Header[name] = append(req.Header[name], value)
		}
	}
	meta("Helo", m.Helo)
	meta("Hostname", m.ClientName)
	meta("IP", m.ClientAddr)
	meta("MTA-Name", r.e.MTAName)
	meta("From", m.Sender)
	meta("Queue-Id", m.QueueID)
	for _, rc := range m.Recips {
		meta("Rcpt", rc)
	}
	if r.e.Username != "" || r.e.Password != "" {
		req.SetBasicAuth(r.e.Username, r.e.Password)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, failf("Error calling rspamd: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRspamdReply))
	if err != nil {
		return nil, failf("Error calling rspamd: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, failf("Error calling rspamd: %s", resp.Status)
	}
	return ParseRspamdReply(b)
}
