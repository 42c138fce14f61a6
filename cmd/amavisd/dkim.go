package main

// The DKIM verbs, as amavis has them (Amavis::Tools): genrsa writes a private key, showkeys
// prints the DNS records to publish for the declared keys, testkeys signs a test message with
// each key and verifies it against the published record.

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"amavisgo/amavis"
	"amavisgo/conf"
	"amavisgo/dkim"
)

// dkimVerbs take arguments after the verb.
var dkimVerbs = map[string]bool{"genrsa": true, "showkeys": true, "showkey": true, "testkeys": true, "testkey": true}

func runDKIMVerb(o *options, args []string) int {
	if o.verb == "genrsa" {
		if err := verbGenrsa(args, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "amavisd: genrsa:", err)
			return 1
		}
		return 0
	}
	c, err := o.loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	if strings.HasPrefix(o.verb, "showkey") {
		err = verbShowkeys(c, args, os.Stdout)
	} else {
		err = verbTestkeys(c, args, dkim.NewResolver("", 10*time.Second), os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "amavisd:", err)
		return 1
	}
	return 0
}

// verbGenrsa: genrsa FILE [BITS], 1024 bits by default as in amavis.
func verbGenrsa(args []string, w io.Writer) error {
	if len(args) < 1 || args[0] == "" {
		return fmt.Errorf("file name for a key not provided")
	}
	bits := 1024
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return fmt.Errorf("number of bits in a key must be numeric")
		}
		bits = n
	}
	if bits < 1024 && bits >= 512 {
		fmt.Fprintln(w, "INFO: RFC 6376 states: Signers MUST use RSA keys of at least 1024 bits for long-lived keys.")
	}
	if err := dkim.GenRSA(args[0], bits); err != nil {
		return err
	}
	fmt.Fprintf(w, "Private RSA key successfully written to file %q (%d bits, PEM format) \n", args[0], bits)
	return nil
}

// selectedKeys are the declared keys whose domain matches one of the arguments (a domain, or
// ".domain" for it and its subdomains), all keys when there are none, with their numbers.
func selectedKeys(c *conf.Config, args []string) (dkim.Keys, []int, error) {
	keys, err := amavis.DKIMKeys(c)
	if err != nil {
		return nil, nil, err
	}
	var out dkim.Keys
	var nums []int
	for i, k := range keys {
		ok := len(args) == 0
		for _, a := range args {
			a = strings.ToLower(a)
			if d, sub := strings.CutPrefix(a, "."); sub {
				ok = ok || k.Domain == d || strings.HasSuffix(k.Domain, "."+d)
			} else {
				ok = ok || k.Domain == a
			}
		}
		if ok {
			out, nums = append(out, k), append(nums, i+1)
		}
	}
	return out, nums, nil
}

func verbShowkeys(c *conf.Config, args []string, w io.Writer) error {
	keys, nums, err := selectedKeys(c, args)
	if err != nil {
		return err
	}
	for i, k := range keys {
		fmt.Fprint(w, k.ShowKey(nums[i]))
	}
	switch {
	case len(c.DKIMKeys) == 0:
		fmt.Fprintln(w, "No DKIM private keys declared in a config file.")
	case len(keys) == 0:
		fmt.Fprintln(w, "No DKIM private keys match the selection list.")
	}
	return nil
}

// verbTestkeys signs a small message with each key (simple/simple, valid for a day) and
// verifies it with the record found in DNS, printing Mail::DKIM's words for the outcome.
func verbTestkeys(c *conf.Config, args []string, res dkim.Resolver, w io.Writer) error {
	keys, nums, err := selectedKeys(c, args)
	if err != nil {
		return err
	}
	now := time.Now()
	for i, k := range keys {
		d := strings.ReplaceAll(k.Domain, "*", "x")
		header := fmt.Sprintf("From: test@%s\r\nMessage-ID: <123@%s>\r\nDate: %s\r\nSubject: test\r\n", d, d, now.Format(time.RFC1123Z))
		msg := header + "\r\ntest\r\n"
		ch := dkim.Choice{Key: k, Domain: d, HeaderCanon: "simple", BodyCanon: "simple", Expire: now.Add(24 * time.Hour)}
		sig, err := ch.Sign([]byte(header), strings.NewReader(msg), map[string]int{"from": 1, "message-id": 1, "date": 1, "subject": 1})
		if err != nil {
			fmt.Fprintf(w, "TESTING#%d %s: %s._domainkey.%s => signing failed: %v\n", nums[i], d, k.Selector, d, err)
			continue
		}
		signed := sig + msg
		sigs, err := dkim.Verify(context.Background(), []byte(sig+header), strings.NewReader(signed), res)
		if err != nil || len(sigs) != 1 {
			fmt.Fprintf(w, "TESTING#%d %s: %s._domainkey.%s => verification failed: %v\n", nums[i], d, k.Selector, d, err)
			continue
		}
		s := sigs[0]
		detail := s.Result
		if s.Details != "" {
			detail += " (" + s.Details + ")"
		}
		fmt.Fprintf(w, "TESTING#%d %s: %s._domainkey.%s => %s\n", nums[i], d, s.Selector, s.Domain, detail)
	}
	if len(keys) == 0 && len(c.DKIMKeys) == 0 {
		fmt.Fprintln(w, "No DKIM private keys declared in a config file.")
	}
	return nil
}
