package amavis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"amavisgo/conf"
	"amavisgo/dkim"
	"amavisgo/hdr"
	"amavisgo/lookup"
	"amavisgo/verdict"
)

// dkimInfo is what DKIM verification found in a message and what we signed it with.
type dkimInfo struct {
	sigs []*dkim.Sig // the message's signatures, verified (enable_dkim_verification)
	// newSD are our own signatures, "selector:domain" (the log's dkim_new=).
	newSD []string
}

// dkimResolver is where keys are looked up: the system resolver, each query bounded.
var dkimResolver dkim.Resolver = dkim.NewResolver("", 10*time.Second)

// dkimKeys holds the signing keys loaded, by the dkim_key entries that declared them: the files
// are read once, before privileges are dropped, and a reload with the same entries keeps them.
var dkimKeys sync.Map // fmt.Sprint(cfg.DKIMKeys) -> dkimKeySet

type dkimKeySet struct {
	keys dkim.Keys
	err  error
}

// DKIMKeys returns the configuration's signing keys, read from their files on first use.
func DKIMKeys(cfg *conf.Config) (dkim.Keys, error) {
	id := fmt.Sprint(cfg.DKIMKeys)
	if v, ok := dkimKeys.Load(id); ok {
		s := v.(dkimKeySet)
		return s.keys, s.err
	}
	var s dkimKeySet
	for _, k := range cfg.DKIMKeys {
		key, err := dkim.LoadKey(k.Domain, k.Selector, k.KeyFile, k.Options)
		if err != nil {
			s = dkimKeySet{err: err}
			break
		}
		s.keys = append(s.keys, key)
	}
	if s.err == nil {
		dkimKeys.Store(id, s)
	}
	return s.keys, s.err
}

// dkimVerify verifies the message's signatures when enable_dkim_verification is on, as amavis
// does while receiving it (Amavis.pm, collect_some_dkim_info). A failure to verify is logged and
// leaves the message unverified: DKIM never holds mail back.
func (d *Daemon) dkimVerify(ctx context.Context, m *Message) {
	if !m.Policy.EnableDKIMVerification || !m.HeaderComplete {
		return
	}
	f, err := os.Open(m.File)
	if err != nil {
		m.tl.Logf(-1, "dkim: verification failed: %v", err)
		return
	}
	defer f.Close()
	sigs, err := dkim.Verify(ctx, m.Header, f, dkimResolver)
	if err != nil {
		m.tl.Logf(-1, "dkim: verification failed: %v", err)
		return
	}
	m.DKIM.sigs = sigs
	min := m.Policy.DKIMMinimumKeyBits
	for _, s := range sigs {
		if m.tl.Enabled(2) {
			state := "VALID"
			if !s.Valid(m.RxTime) {
				state = "FAILED"
			}
			m.tl.Logf(2, "dkim: %s signature by d=%s, a=%s, c=%s, s=%s, i=%s, %s%s", state, s.Domain, s.Algo, s.Canon, s.Selector, s.Identity, s.Result, parenthesized(s.Details))
		}
		if s.Valid(m.RxTime) && min > 0 && s.KeyBits > 0 && s.KeyBits < min {
			m.tl.Logf(1, "dkim: valid signature by d=%s ignored for policy, %d-bit key is shorter than %d", s.Domain, s.KeyBits, min)
		}
	}
}

func parenthesized(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// dkimResultsEdit adds our Authentication-Results field to a local recipient's copy, as
// Amavis.pm's add_forwarding_header_edits_per_recip does. Its text goes through edits so that
// copies with and without it go in different transactions; dkimHeader writes it out.
func dkimResultsEdit(m *Message, r *verdict.Recipient, edits *verdict.HeaderEdits) {
	if !m.Policy.EnableDKIMVerification || !r.Local || !m.Policy.HeaderFieldAllowed("Authentication-Results") {
		return
	}
	if f := dkim.AuthResultsField(authServID(m.cfg), m.DKIM.sigs, m.RxTime); f != "" {
		edits.Add = append(edits.Add, verdict.Field{Name: "Authentication-Results", Value: f})
	}
}

func authServID(cfg *conf.Config) string {
	if cfg.Myauthservid != "" {
		return cfg.Myauthservid
	}
	return cfg.Myhostname
}

// dkimHeader is forwardHeader with amavis's DKIM steps: our Authentication-Results folded as
// amavis folds it (at its items, 78 columns), incoming ones claiming our authserv-id (or none
// that parses) removed (RFC 8601 section 5), and, for originating mail, the DKIM signature over
// the header as forwarded and the untouched body, prepended as the first field.
func (d *Daemon) dkimHeader(m *Message, edits verdict.HeaderEdits, rs []*verdict.Recipient) (header []byte, skip int64) {
	var ar []string
	if m.Policy.EnableDKIMVerification { // our results go in later, under the signature
		kept := edits.Add[:0:0]
		for _, f := range edits.Add {
			if f.Name == "Authentication-Results" {
				ar = append(ar, f.Value)
				continue
			}
			kept = append(kept, f)
		}
		edits.Add = kept
	}
	header, skip, front := forwardHeader(m, edits)
	if m.Policy.EnableDKIMVerification && m.Policy.HeaderFieldAllowed("Authentication-Results") && m.HeaderComplete {
		added := len(edits.Prepend())
		// the header section as it goes out: edited and repaired after the fields in front, or
		// the spool's own
		prefix, orig := header, m.Header
		if skip > 0 {
			prefix, orig = header[:front], header[front:]
		}
		if cleaned, changed := withoutForgedAR(orig, authServID(m.cfg)); changed {
			header = append(append([]byte{}, prefix...), cleaned...)
			skip = int64(len(m.Header))
		}
		if len(ar) > 0 {
			b := []byte(strings.Join(ar, ""))
			header = append(append(append([]byte{}, header[:added]...), b...), header[added:]...)
		}
	}
	sig, made := d.dkimSign(m, header, skip)
	if sig == "" {
		return header, skip
	}
	header = append([]byte(sig), header...)
	// with verification on, a local recipient's copy also gets the result for our own
	// signature, on top (Amavis::Out's mail_dispatch); the key's size is our key's
	if m.Policy.EnableDKIMVerification && m.Policy.HeaderFieldAllowed("Authentication-Results") && anyLocal(rs) {
		made.Result, made.Details = "pass", "just generated, assumed good"
		header = append([]byte(dkim.AuthResultsField(authServID(m.cfg), []*dkim.Sig{made}, m.RxTime)), header...)
	}
	return header, skip
}

// withoutForgedAR drops the Authentication-Results fields whose authserv-id is ours or does not
// parse, as Amavis.pm's add_forwarding_header_edits_common does.
func withoutForgedAR(h []byte, ours string) ([]byte, bool) {
	ours, _, _ = strings.Cut(ours, "/")
	var out []byte
	changed := false
	for f := range hdr.Fields(h) {
		if name, body, ok := hdr.Cut(f); ok && strings.EqualFold(string(name), "Authentication-Results") {
			if id, ok := dkim.AuthServID(string(body)); !ok || strings.EqualFold(id, ours) {
				changed = true
				continue
			}
		}
		out = append(out, f...)
	}
	return out, changed
}

// dkimSign signs an originating message that is not virus-infected or spam with the key its
// originator's address chooses (Amavis::DKIM's dkim_make_signatures), and returns the
// DKIM-Signature field and what it is, or "" when the message is not signed (amavis's reason is
// logged).
func (d *Daemon) dkimSign(m *Message, header []byte, skip int64) (string, *dkim.Sig) {
	p := m.Policy
	if !p.EnableDKIMSigning || !p.HeaderFieldAllowed("DKIM-Signature") || !p.Originating {
		return "", nil
	}
	from := strings.Join(fromAddrs(m.Header), ", ")
	switch cc := m.Verdict.CCats; {
	case cc.Has(verdict.CC_VIRUS, 0):
		m.tl.Logf(2, "dkim: not signing infected mail (from inside), From: %s", from)
		return "", nil
	case cc.Has(verdict.CC_SPAM, 0):
		m.tl.Logf(2, "dkim: not signing spam (from inside), From: %s", from)
		return "", nil
	case cc.Has(verdict.CC_SPAMMY, 0):
		m.tl.Logf(2, "dkim: not signing suspected spam (from inside), From: %s", from)
		return "", nil
	case !m.HeaderComplete:
		m.tl.Logf(2, "dkim: not signing, header section too large, From: %s", from)
		return "", nil
	}
	keys, err := DKIMKeys(m.cfg)
	if err != nil {
		m.tl.Logf(-1, "dkim: signing error: %v", err)
		return "", nil
	}
	cands := dkim.Candidates(m.Header, m.Sender)
	o := m.cfg.LookupOptions()
	optionsFor := func(addr string) []dkim.Options {
		var out []dkim.Options
		keys, _ := lookup.QueryKeys(addr, o)
		for _, t := range p.DKIMSignatureOptionsBysenderMaps {
			for _, k := range keys {
				if set, ok := t[k]; ok {
					opts := dkim.Options{}
					for tag := range set {
						opts[tag], _ = set.String(tag)
					}
					out = append(out, opts)
				}
			}
		}
		return out
	}
	signedBy := func(dom, id string) bool {
		for _, s := range m.DKIM.sigs {
			if s.Valid(m.RxTime) && s.Domain == dom && (id == "" || id == s.Identity) {
				return true
			}
		}
		return false
	}
	c := dkim.Choose(cands, keys, optionsFor, signedBy, m.RxTime)
	if c.Key == nil {
		m.tl.Logf(2, "dkim: not signing, %s, From: %s", c.Reason, from)
		return "", nil
	}
	// the header as it goes out: our prefix, then the original (or edited) header section
	full := header
	if skip == 0 {
		full = append(append([]byte{}, header...), m.Header...)
	}
	f, err := os.Open(m.File)
	if err != nil {
		m.tl.Logf(-1, "dkim: signing error: %v", err)
		return "", nil
	}
	defer f.Close()
	if _, err := f.Seek(skip, io.SeekStart); err != nil {
		m.tl.Logf(-1, "dkim: signing error: %v", err)
		return "", nil
	}
	sig, err := c.Sign(full, io.MultiReader(bytes.NewReader(header), f), p.SignedHeaderFields)
	if err != nil {
		m.tl.Logf(-1, "dkim: signing error: %v", err)
		return "", nil
	}
	kind := "3rd-party"
	if c.Author {
		kind = "author"
	}
	m.tl.Logf(2, "dkim: signing (%s), From: %s (%s:%s), %s", kind, from, c.Src, c.Addr, c.LogOptions())
	made := &dkim.Sig{Domain: c.Domain, Selector: c.Key.Selector, KeyBits: c.Key.Bits}
	sd := c.Key.Selector + ":" + c.Domain
	for _, x := range m.DKIM.newSD {
		if x == sd {
			return sig, made
		}
	}
	m.DKIM.newSD = append(m.DKIM.newSD, sd)
	return sig, made
}

func anyLocal(rs []*verdict.Recipient) bool {
	for _, r := range rs {
		if r.Local {
			return true
		}
	}
	return false
}

func fromAddrs(h []byte) []string {
	var out []string
	for _, c := range dkim.Candidates(h, "") {
		if c.Src == "From" {
			out = append(out, c.Addr)
		}
	}
	return out
}

// dkimLogFields are the main log line's dkim_sd= (valid signatures, selector:domain) and
// dkim_new= (ours), as amavis's $log_short_templ has them.
func dkimLogFields(m *Message) string {
	var sd []string
	seen := map[string]bool{}
	for _, s := range m.DKIM.sigs {
		if k := s.Selector + ":" + s.Domain; s.Valid(m.RxTime) && !seen[k] {
			seen[k] = true
			sd = append(sd, k)
		}
	}
	var b strings.Builder
	if len(sd) > 0 {
		b.WriteString(", dkim_sd=" + strings.Join(sd, ","))
	}
	if len(m.DKIM.newSD) > 0 {
		b.WriteString(", dkim_new=" + strings.Join(m.DKIM.newSD, ","))
	}
	return b.String()
}
