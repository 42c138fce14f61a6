package dkim

import (
	"bytes"
	"crypto"
	"fmt"
	"io"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"amavisgo/hdr"
)

// Candidate is an address that may choose the signing key, and where it came from: From,
// Resent-From, Resent-Sender, Sender or mail_from (the envelope sender).
type Candidate struct{ Addr, Src string }

// Candidates lists the originator addresses in amavis's order (Amavis::DKIM's
// dkim_make_signatures): the authors, then the Resent-From and Resent-Sender addresses of each
// resent block from the top, then Sender, then the envelope sender; each address once.
func Candidates(header []byte, envSender string) []Candidate {
	var out []Candidate
	var resent []Candidate // Resent-From before Resent-Sender within each block
	var blockFrom, blockSender []string
	var inFrom, inSender bool // the block has its Resent-From / Resent-Sender already
	flush := func() {
		for _, a := range blockFrom {
			resent = append(resent, Candidate{a, "Resent-From"})
		}
		for _, a := range blockSender {
			resent = append(resent, Candidate{a, "Resent-Sender"})
		}
		blockFrom, blockSender, inFrom, inSender = nil, nil, false, false
	}
	var sender string
	for f := range hdr.Fields(header) {
		name, body, ok := hdr.Cut(f)
		if !ok {
			continue
		}
		switch strings.ToLower(string(name)) {
		case "from":
			for _, a := range addresses(body) {
				out = append(out, Candidate{a, "From"})
			}
		case "sender":
			if as := addresses(body); len(as) > 0 && sender == "" {
				sender = as[0]
			}
		case "resent-date":
			flush() // each resent block starts with its Resent-Date (RFC 5322 3.6.6)
		case "resent-from":
			if inFrom {
				flush()
			}
			blockFrom, inFrom = addresses(body), true
		case "resent-sender":
			if inSender {
				flush()
			}
			blockSender, inSender = addresses(body), true
		}
	}
	flush()
	out = append(out, resent...)
	out = append(out, Candidate{sender, "Sender"}, Candidate{envSender, "mail_from"})
	seen := map[string]bool{}
	var uniq []Candidate
	for _, c := range out {
		if c.Addr == "" || seen[c.Addr] {
			continue
		}
		seen[c.Addr] = true
		uniq = append(uniq, c)
	}
	return uniq
}

// addresses are the addr-specs of an address-list field body.
func addresses(body []byte) []string {
	text := hdr.Unfold(body)
	list, err := mail.ParseAddressList(text)
	if err != nil {
		// a broken list still names its address when it has one in angle brackets
		if i := strings.LastIndexByte(text, '<'); i >= 0 {
			if j := strings.IndexByte(text[i:], '>'); j > 0 {
				return []string{strings.TrimSpace(text[i+1 : i+j])}
			}
		}
		return nil
	}
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.Address)
	}
	return out
}

// Options are signature options by tag (a c d i q s x ttl) as strings.
type Options map[string]string

// Choice is the outcome of choosing a key: the key and the signature to make, or Reason
// when the message is not signed.
type Choice struct {
	Key         *Key
	Domain      string
	Identity    string // i=, "" for the default @domain
	HeaderCanon dkim.Canonicalization
	BodyCanon   dkim.Canonicalization
	Expire      time.Time
	Addr, Src   string // the candidate that chose the key
	Author      bool   // the signing domain is an author's (a From address's) domain
	Opts        Options
	Reason      string // why not signing, in amavis's words
	found       bool
}

// Choose picks the key as amavis does: for each candidate in turn the signature options are
// collected (optionsFor gives the matching option sets of dkim_signature_options_bysender_maps,
// most specific first; the first set that has a tag decides it; then c=relaxed/simple and
// a=rsa-sha256), d defaulting to the candidate's domain, and the first key suiting them wins.
// signedBy reports a valid signature by domain d and identity i already on the message (mail
// passing through twice is signed once). rx is the time the message was received, for ttl.
func Choose(cands []Candidate, keys Keys, optionsFor func(addr string) []Options, signedBy func(d, i string) bool, rx time.Time) Choice {
	var tried []string
	var c Choice
	for _, cand := range cands {
		opts := Options{}
		explicitA := false
		for _, set := range optionsFor(cand.Addr) {
			for k, v := range set {
				if _, ok := opts[k]; !ok {
					opts[k] = v
					explicitA = explicitA || k == "a"
				}
			}
		}
		if _, ok := opts["c"]; !ok {
			opts["c"] = "relaxed/simple"
		}
		if _, ok := opts["a"]; !ok {
			opts["a"] = "rsa-sha256"
		}
		_, domain, _ := cutLast(cand.Addr, "@")
		if _, ok := opts["d"]; !ok {
			opts["d"] = domain
		}
		tried = append(tried, opts["d"])
		if opts["d"] == "" {
			continue
		}
		k := keys.Find(opts["d"], opts["s"], opts["a"], opts["i"])
		if k == nil && !explicitA {
			// amavis knows RSA keys only: an Ed25519 key serves when no a= asks for RSA
			k = keys.Find(opts["d"], opts["s"], "ed25519-sha256", opts["i"])
		}
		if k != nil {
			c = Choice{Key: k, Domain: strings.ToLower(opts["d"]), Addr: cand.Addr, Src: cand.Src, Opts: opts, found: true}
			if !explicitA {
				opts["a"] = k.Type + "-sha256"
			}
			break
		}
	}
	if !c.found {
		return Choice{Reason: fmt.Sprintf("no applicable private key for domains %s", strings.Join(tried, ", "))}
	}
	opts := c.Opts
	var err error
	if c.HeaderCanon, c.BodyCanon, err = canon(opts["c"]); err != nil {
		return Choice{Reason: err.Error()}
	}
	if !strings.HasSuffix(strings.ToLower(opts["a"]), "-sha256") || !strings.HasPrefix(strings.ToLower(opts["a"]), c.Key.Type+"-") {
		return Choice{Reason: fmt.Sprintf("unsupported signing algorithm a=%s", opts["a"])}
	}
	// the identity: as given (with a leading @ when missing), else the candidate's domain when
	// it is a subdomain of d and the key record allows subdomains
	subdomainsOK := !hasItem(c.Key.Tags["t"], "s")
	if i, ok := opts["i"]; ok {
		if i != "" && !strings.Contains(i, "@") {
			i = "@" + i
		}
		c.Identity = i
	} else if subdomainsOK {
		if _, ad, _ := cutLast(c.Addr, "@"); strings.HasSuffix(strings.ToLower(ad), "."+c.Domain) {
			c.Identity = "@" + ad
		}
	}
	if c.Identity != "" {
		_, id, _ := cutLast(c.Identity, "@")
		id = strings.ToLower(id)
		switch {
		case !subdomainsOK && id != c.Domain:
			return Choice{Reason: fmt.Sprintf("identity domain %s not the same as a signing domain %s, flags t=%s", c.Identity, c.Domain, c.Key.Tags["t"])}
		case subdomainsOK && id != c.Domain && !strings.HasSuffix(id, "."+c.Domain):
			return Choice{Reason: fmt.Sprintf("identity %s not a subdomain of %s", c.Identity, c.Domain)}
		}
	}
	if signedBy != nil && signedBy(c.Domain, c.Identity) {
		return Choice{Reason: "already signed by domain " + c.Domain}
	}
	if strings.EqualFold(c.Identity, "@"+c.Domain) {
		c.Identity = ""
	}
	if ttl, err := strconv.ParseInt(opts["ttl"], 10, 64); err == nil && ttl > 0 {
		c.Expire = rx.Add(time.Duration(ttl) * time.Second)
	} else if x, err := strconv.ParseInt(opts["x"], 10, 64); err == nil {
		c.Expire = time.Unix(x, 0)
	}
	for _, cand := range cands {
		if cand.Src == "From" {
			if _, ad, _ := cutLast(cand.Addr, "@"); strings.EqualFold(ad, c.Domain) {
				c.Author = true
			}
		}
	}
	return c
}

func canon(c string) (h, b dkim.Canonicalization, err error) {
	hs, bs, ok := strings.Cut(strings.ToLower(c), "/")
	if !ok {
		bs = "simple"
	}
	for _, s := range []string{hs, bs} {
		if s != "simple" && s != "relaxed" {
			return "", "", fmt.Errorf("unknown canonicalization c=%s", c)
		}
	}
	return dkim.Canonicalization(hs), dkim.Canonicalization(bs), nil
}

// SignedFields lists the h= tag for a header section as amavis's signing policy makes it: every
// field whose name signed marks, bottom-up, and for a name marked 2 one occurrence more than
// the header has, so that no field of that name can be added without breaking the signature.
func SignedFields(header []byte, signed map[string]int) []string {
	var names []string
	for f := range hdr.Fields(header) {
		if name, _, ok := hdr.Cut(f); ok {
			names = append(names, strings.ToLower(string(name)))
		}
	}
	left := map[string]int{}
	for _, n := range names {
		left[n]++
	}
	var h []string
	for _, n := range names {
		left[n]--
		if signed[n] > 0 {
			h = append(h, n)
			if left[n] == 0 && signed[n] > 1 {
				h = append(h, n)
			}
		}
	}
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h
}

// Sign makes the DKIM-Signature field (with its CRLF) for a message: header is its complete
// header section as it will be sent (the fields only, to list h=), msg the whole message, header
// included. The signature is to be prepended as the first field.
// An h option (colon-separated names, a name twice to over-sign it) replaces signed.
func (c *Choice) Sign(header []byte, msg io.Reader, signed map[string]int) (string, error) {
	if hs := c.Opts["h"]; hs != "" {
		signed = map[string]int{}
		for _, n := range strings.Split(hs, ":") {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
				signed[n]++
			}
		}
	}
	h := SignedFields(header, signed)
	if !containsFold(h, "from") {
		return "", fmt.Errorf("no From header field to sign")
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain: c.Domain, Selector: c.Key.Selector, Identifier: c.Identity, Signer: c.Key.Signer,
		Hash: crypto.SHA256, HeaderCanonicalization: c.HeaderCanon, BodyCanonicalization: c.BodyCanon,
		HeaderKeys: h, Expiration: c.Expire,
	})
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(s, msg); err != nil {
		s.Close()
		return "", err
	}
	if err := s.Close(); err != nil {
		return "", err
	}
	return s.Signature(), nil
}

// LogOptions are the signature's options for the log, as amavis lists them: sorted k=>v.
func (c *Choice) LogOptions() string {
	o := map[string]string{"a": c.Opts["a"], "c": string(c.HeaderCanon) + "/" + string(c.BodyCanon), "d": c.Domain, "s": c.Key.Selector}
	if c.Identity != "" {
		o["i"] = c.Identity
	}
	if !c.Expire.IsZero() {
		o["x"] = strconv.FormatInt(c.Expire.Unix(), 10)
	}
	if t, ok := c.Opts["ttl"]; ok {
		o["ttl"] = t
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=>" + o[k])
	}
	return b.String()
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
