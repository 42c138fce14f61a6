package dkim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"amavisgo/hdr"
)

// Resolver looks up the TXT records of a name.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// NewResolver is the system resolver (/etc/resolv.conf) when server is "", else a resolver
// that asks only server ("127.0.0.1:5353"); each lookup gives up after timeout.
func NewResolver(server string, timeout time.Duration) Resolver {
	r := &net.Resolver{}
	if server != "" {
		r.PreferGo = true
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}
	}
	return timedResolver{r, timeout}
}

type timedResolver struct {
	r       *net.Resolver
	timeout time.Duration
}

func (t timedResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	return t.r.LookupTXT(ctx, name)
}

// Sig is one DKIM-Signature of a message and the outcome of its verification, in the terms of
// Mail::DKIM that amavis reports: Result pass, fail, invalid or temperror, and Details.
type Sig struct {
	Domain, Selector, Identity, Algo, Canon string
	B                                       string // the b= tag without blanks
	Time, Expire                            time.Time
	Result, Details                         string
	KeyBits                                 int // 0 when the key could not be had
}

// Valid is amavis's notion of a valid signature: it passed and has not expired by rx.
func (s *Sig) Valid(rx time.Time) bool {
	return s.Result == "pass" && (s.Expire.IsZero() || !rx.After(s.Expire))
}

// MaxSignatures bounds the signatures verified per message; the rest are not reported.
const MaxSignatures = 16

// Verify checks the DKIM signatures of a message: header is its header section (the signatures
// are read from it), msg the whole message. Keys are looked up through res; a DNS failure
// makes that signature's result temperror.
func Verify(ctx context.Context, header []byte, msg io.Reader, res Resolver) ([]*Sig, error) {
	var sigs []*Sig
	for f := range hdr.Fields(header) {
		name, body, ok := hdr.Cut(f)
		if ok && strings.EqualFold(string(name), "DKIM-Signature") {
			sigs = append(sigs, parseSig(string(body)))
		}
	}
	if len(sigs) == 0 {
		return nil, nil
	}
	if len(sigs) > MaxSignatures {
		sigs = sigs[:MaxSignatures]
	}
	keys := &keyCache{ctx: ctx, res: res, txt: map[string]txtResult{}}
	verifs, err := dkim.VerifyWithOptions(msg, &dkim.VerifyOptions{LookupTXT: keys.lookup, MaxVerifications: MaxSignatures})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return nil, err
	}
	for i, s := range sigs {
		if i >= len(verifs) {
			break
		}
		pub, kerr := keys.key(s.Selector, s.Domain)
		s.KeyBits = keyBits(pub)
		s.Result, s.Details = outcome(verifs[i].Err, kerr, pub, s)
	}
	return sigs, nil
}

// outcome maps go-msgauth's verdict on a signature to Mail::DKIM's result and details.
func outcome(err, keyErr error, pub any, s *Sig) (result, details string) {
	if err == nil {
		return "pass", ""
	}
	msg := err.Error()
	switch {
	case dkim.IsTempFail(err) || isTemporary(keyErr):
		return "temperror", "public key: DNS error: " + dnsReason(keyErr)
	case strings.Contains(msg, "signature has expired"):
		return "invalid", "signature is expired"
	case strings.Contains(msg, "body hash did not verify"):
		return "fail", "body has been altered"
	case strings.Contains(msg, "signature did not verify"):
		return "fail", badSignature(pub, s)
	case strings.Contains(msg, "no key for signature"), strings.Contains(msg, "no valid key found"):
		return "invalid", "public key: not available"
	case strings.Contains(msg, "key revoked"):
		return "invalid", "public key: revoked"
	case strings.Contains(msg, "key syntax error"), strings.Contains(msg, "key record error"):
		return "invalid", "public key: syntax error"
	case strings.Contains(msg, "inappropriate service"):
		return "invalid", "public key: does not support email"
	case dkim.IsPermFail(err):
		return "invalid", strings.TrimPrefix(msg, "dkim: ")
	}
	return "fail", msg
}

// badSignature tells, as Mail::DKIM does for RSA, a signature made over other header data with
// the right key ("message has been altered") from one that the key did not make.
func badSignature(pub any, s *Sig) string {
	k, ok := pub.(*rsa.PublicKey)
	if !ok {
		return "bad signature"
	}
	b, err := base64.StdEncoding.DecodeString(s.B)
	switch {
	case err == nil && len(b) < k.Size():
		return "OpenSSL error: data too small for key size" // a signature by a shorter key
	case err != nil || len(b) != k.Size():
		return "bad RSA signature"
	}
	sig := new(big.Int).SetBytes(b)
	if sig.Cmp(k.N) >= 0 {
		return "OpenSSL error: data too large for modulus" // a signature by another key of this size
	}
	em := new(big.Int).Exp(sig, big.NewInt(int64(k.E)), k.N).FillBytes(make([]byte, k.Size()))
	// EMSA-PKCS1-v1_5: 00 01 FF.. 00, then the DigestInfo of SHA-256 and the 32-byte digest
	prefix := append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, k.Size()-3-len(sha256DigestInfo)-32)...)
	prefix = append(append(prefix, 0), sha256DigestInfo...)
	if bytes.HasPrefix(em, prefix) {
		return "message has been altered"
	}
	return "bad RSA signature"
}

var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

func isTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTimeout || de.IsTemporary) && !de.IsNotFound
}

func dnsReason(err error) string {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsTimeout:
		return "query timed out"
	case errors.As(err, &de):
		return de.Err
	case err != nil:
		return err.Error()
	}
	return "lookup failed"
}

// keyCache answers go-msgauth's key lookups and remembers them, so that the key's size can be
// reported and each key is asked for once.
type keyCache struct {
	ctx context.Context
	res Resolver
	mu  sync.Mutex
	txt map[string]txtResult
}

type txtResult struct {
	txt []string
	err error
}

func (c *keyCache) lookup(name string) ([]string, error) {
	name = strings.ToLower(name)
	c.mu.Lock()
	r, ok := c.txt[name]
	c.mu.Unlock()
	if !ok {
		r.txt, r.err = c.res.LookupTXT(c.ctx, name)
		c.mu.Lock()
		c.txt[name] = r
		c.mu.Unlock()
	}
	return r.txt, r.err
}

// key returns the public key of selector s in domain d, or the lookup's error.
func (c *keyCache) key(s, d string) (any, error) {
	if s == "" || d == "" {
		return nil, errors.New("no selector or domain")
	}
	txts, err := c.lookup(s + "._domainkey." + d)
	if err != nil {
		return nil, err
	}
	if len(txts) != 1 {
		return nil, errors.New("no single key record")
	}
	return parseKeyRecord(txts[0])
}

// parseKeyRecord reads the k= and p= tags of a key record.
func parseKeyRecord(rec string) (any, error) {
	tags := parseTags(rec)
	p := strings.Join(strings.Fields(tags["p"]), "")
	b, err := base64.StdEncoding.DecodeString(p)
	if err != nil || p == "" {
		return nil, errors.New("no public key data")
	}
	if tags["k"] == "ed25519" {
		if len(b) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		return ed25519.PublicKey(b), nil
	}
	if pub, err := x509.ParsePKIXPublicKey(b); err == nil {
		return pub, nil
	}
	var k rsa.PublicKey
	if _, err := asn1.Unmarshal(b, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

func keyBits(pub any) int {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen()
	case ed25519.PublicKey:
		return 256
	}
	return 0
}

// parseTags splits a tag=value list; values keep inner blanks.
func parseTags(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

func parseSig(body string) *Sig {
	t := parseTags(hdr.Unfold([]byte(body)))
	s := &Sig{Domain: strings.ToLower(t["d"]), Selector: t["s"], Identity: t["i"], Algo: t["a"], Canon: t["c"]}
	s.B = strings.Join(strings.Fields(t["b"]), "")
	if n, err := strconv.ParseInt(strings.TrimSpace(t["t"]), 10, 64); err == nil {
		s.Time = time.Unix(n, 0)
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(t["x"]), 10, 64); err == nil {
		s.Expire = time.Unix(n, 0)
	}
	return s
}

// AuthResultsField is our Authentication-Results field, folded as amavis folds it (at its
// items, within 78 columns) with its CRLF; "" when there are no signatures.
func AuthResultsField(authservid string, sigs []*Sig, rx time.Time) string {
	chunks := AuthResults(authservid, sigs, rx)
	if chunks == nil {
		return ""
	}
	return string(hdr.Fold(nil, "Authentication-Results:", chunks, hdr.Style{Width: 78, EOL: "\r\n"})) + "\r\n"
}

// AuthResults is the body of our Authentication-Results field for the signatures (Amavis::DKIM's
// generate_authentication_results), as chunks for hdr.Fold: "<authservid> (amavis);" then one
// result per signature with its key size, reason, header.d and, when the message has more than
// one signature, header.b. Nil when there are no signatures.
func AuthResults(authservid string, sigs []*Sig, rx time.Time) []string {
	if len(sigs) == 0 {
		return nil
	}
	type res struct{ result, details string }
	results := make([]res, len(sigs))
	all, allValid, all8 := map[string]int{}, map[string]int{}, map[string]int{}
	for i, s := range sigs {
		r := res{s.Result, s.Details}
		if r.result == "pass" && !s.Expire.IsZero() && rx.After(s.Expire) {
			r = res{"fail", "good, but expired"}
		}
		results[i] = r
		if s.B != "" {
			all8[s.B[:min(8, len(s.B))]]++
			all[s.B]++
			if r.result == "pass" {
				allValid[s.B]++
			}
		}
	}
	chunks := []string{" " + authservid + " (amavis)"}
	for i, s := range sigs {
		r := results[i]
		val := map[string]string{"pass": "pass", "temperror": "temperror", "fail": "fail", "invalid": "neutral"}[r.result]
		if val == "" {
			val = "permerror"
		}
		var c []string
		item := " dkim=" + val
		if s.KeyBits > 0 {
			item += " (" + strconv.Itoa(s.KeyBits) + "-bit key)"
		}
		c = append(c, item)
		detail := r.result
		if r.details != "" {
			detail += " (" + r.details + ")"
		}
		if !strings.EqualFold(detail, val) {
			c = append(c, " reason=\""+qtext(detail)+"\"")
		}
		if s.Domain != "" {
			c = append(c, " header.d="+s.Domain)
		}
		if len(sigs) > 1 && s.B != "" {
			switch {
			case !isBase64(s.B):
			case all[s.B] > 1 && allValid[s.B] > 0 && r.result != "pass":
				continue // a failing duplicate of a valid signature is not reported (RFC 6008 6.2)
			case all8[s.B[:min(8, len(s.B))]] > all[s.B]:
			default:
				c = append(c, " header.b=\""+s.B[:min(8, len(s.B))]+"\"")
			}
		}
		chunks[len(chunks)-1] += ";"
		chunks = append(chunks, c...)
	}
	return chunks
}

func qtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isBase64(s string) bool {
	t := strings.TrimRight(s, "=")
	if t == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// AuthServID is the authserv-id of an Authentication-Results field body (RFC 8601: a value
// before the first ';', after comments), without a "/version"; ok is false when the body has
// none that parses.
func AuthServID(body string) (id string, ok bool) {
	s := hdr.Unfold([]byte(body))
	s = stripComments(s)
	head, _, _ := strings.Cut(s, ";")
	f := strings.Fields(head)
	if len(f) == 0 {
		return "", false
	}
	id = f[0]
	if strings.HasPrefix(id, "\"") {
		id = strings.Trim(id, "\"")
	}
	id, _, _ = strings.Cut(id, "/")
	return id, id != ""
}

func stripComments(s string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			if depth == 0 {
				b.WriteString(s[i : i+2])
			}
			i++
		case c == '(':
			depth++
			b.WriteByte(' ')
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}
