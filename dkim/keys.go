// Package dkim signs originating mail and verifies incoming DKIM signatures as amavis does
// (Amavis::DKIM): the choice of a signing key by the originator's address, the header fields
// signed and over-signed, and the Authentication-Results text. Signing and verifying are done
// by github.com/emersion/go-msgauth; RSA as amavis, Ed25519 in addition.
package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Key is a private signing key declared for a domain and selector (amavis's dkim_key).
type Key struct {
	Domain   string // lower case; may hold '*' wildcards
	Selector string
	File     string
	Signer   crypto.Signer
	Type     string            // "rsa" or "ed25519"
	Bits     int               // the RSA modulus size; 256 for Ed25519
	Tags     map[string]string // tags of the published record: v g h k n s t
	domainRE *regexp.Regexp    // for a wildcarded Domain
}

// LoadKey reads a PEM private key (PKCS#1 or PKCS#8; RSA or Ed25519) for domain and selector.
func LoadKey(domain, selector, file string, tags map[string]string) (*Key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	signer, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	k := &Key{Domain: strings.ToLower(domain), Selector: strings.ToLower(selector), File: file, Signer: signer, Tags: map[string]string{}}
	switch pub := signer.Public().(type) {
	case *rsa.PublicKey:
		k.Type, k.Bits = "rsa", pub.N.BitLen()
	case ed25519.PublicKey:
		k.Type, k.Bits = "ed25519", 256
	}
	for t, v := range tags {
		k.Tags[t] = v
	}
	if _, ok := k.Tags["v"]; !ok {
		k.Tags["v"] = "DKIM1"
	}
	// the key's own type decides k= (amavis forces rsa for a key read from a file)
	if k.Type == "ed25519" {
		k.Tags["k"] = "ed25519"
	} else if _, ok := k.Tags["k"]; ok {
		k.Tags["k"] = "rsa"
	}
	if strings.Contains(k.Domain, "*") {
		// a dkim-milter style wildcard: '*' matches anything, the rest literally
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(k.Domain), `\*`, ".*") + "$"
		k.domainRE = regexp.MustCompile(re)
	}
	return k, nil
}

// ParsePrivateKey decodes the first PEM block of b as an RSA or Ed25519 private key.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM private key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, errors.New("not an RSA or Ed25519 private key in PKCS#1 or PKCS#8 form")
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k)
}

// GenRSA writes a new RSA private key of bits to file in PEM (PKCS#1), as amavisd genrsa
// does; the file must not exist yet and is readable by its owner only.
func GenRSA(file string, bits int) error {
	if bits < 512 {
		return errors.New("number of bits is below 512 (suggested 1024..2048)")
	}
	if bits > 4096 {
		return errors.New("number of bits too large (suggested 1024..2048)")
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("can't create file %q: %w", file, err)
	}
	err = pem.Encode(f, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// PublicKeyData is the p= value of the key's DNS record: the SubjectPublicKeyInfo for RSA,
// the raw 32 bytes for Ed25519 (RFC 8463), in base64.
func (k *Key) PublicKeyData() string {
	switch pub := k.Signer.Public().(type) {
	case ed25519.PublicKey:
		return base64.StdEncoding.EncodeToString(pub)
	default:
		der, _ := x509.MarshalPKIXPublicKey(pub)
		return base64.StdEncoding.EncodeToString(der)
	}
}

// Record is the TXT record to publish: the key's tags in amavis's order, then p=.
func (k *Key) Record() string {
	var tags []string
	for _, t := range []string{"v", "g", "h", "k", "s", "t", "n"} {
		if v, ok := k.Tags[t]; ok {
			tags = append(tags, t+"="+v)
		}
	}
	return strings.Join(append(tags, "p="+k.PublicKeyData()), "; ")
}

// ShowKey writes the key's DNS record in the zone-file layout of amavisd showkeys: a comment
// line, then the record with its text in quoted strings of at most 64 characters of key data.
func (k *Key) ShowKey(index int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "; key#%d %d bits, s=%s, d=%s, %s\n", index, k.Bits, k.Selector, k.Domain, k.File)
	if k.domainRE != nil {
		b.WriteString("; CANNOT DECLARE A WILDCARDED LABEL IN DNS, AVOID OR EDIT MANUALLY!\n")
	}
	var tags []string
	for _, t := range []string{"v", "g", "h", "k", "s", "t", "n"} {
		if v, ok := k.Tags[t]; ok {
			tags = append(tags, t+"="+v)
		}
	}
	fmt.Fprintf(&b, "%s._domainkey.%s.\t3600 TXT (", k.Selector, k.Domain)
	fmt.Fprintf(&b, "\n  %q", strings.Join(append(tags, "p="), "; "))
	for p := k.PublicKeyData(); p != ""; {
		n := min(64, len(p))
		fmt.Fprintf(&b, "\n  %q", p[:n])
		p = p[n:]
	}
	b.WriteString(")\n\n")
	return b.String()
}

// matches tells whether the key serves signing domain d.
func (k *Key) matches(d string) bool {
	if k.domainRE != nil {
		return k.domainRE.MatchString(d)
	}
	return k.Domain == d
}

// Keys are the declared keys in order.
type Keys []*Key

// Find returns the first key for signing domain d that suits the signature options (as
// Amavis::DKIM's get_dkim_key): the selector s when given, the key type and hash of a, the
// service type, and whether the key record allows the identity i's domain.
func (ks Keys) Find(d, s, a, i string) *Key {
	d, s = strings.ToLower(d), strings.ToLower(s)
	keyType, hashAlg := "rsa", ""
	if t, h, ok := strings.Cut(a, "-"); ok {
		keyType, hashAlg = strings.ToLower(t), strings.ToLower(h)
	}
	_, iDomain, _ := cutLast(i, "@")
	for _, k := range ks {
		switch {
		case !k.matches(d), s != "" && k.Selector != s, k.Type != keyType:
			continue
		case k.Tags["s"] != "" && !hasItem(k.Tags["s"], "*") && !hasItem(k.Tags["s"], "email"):
			continue
		case hashAlg != "" && k.Tags["h"] != "" && !hasItem(k.Tags["h"], hashAlg):
			continue
		case i != "" && !strings.EqualFold(iDomain, d) && hasItem(k.Tags["t"], "s"):
			continue // the record allows no subdomains
		}
		return k
	}
	return nil
}

func hasItem(list, item string) bool {
	for _, x := range strings.Split(list, ":") {
		if strings.TrimSpace(x) == item {
			return true
		}
	}
	return false
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
