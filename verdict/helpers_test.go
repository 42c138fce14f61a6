package verdict

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/scanners"
	"amavisgo/smtp"
	"amavisgo/unpack"
)

const logID = "12345-03"

// text is a reply as the daemon writes it, "" for none.
func text(r smtp.Reply) string {
	if r == (smtp.Reply{}) {
		return ""
	}
	return r.String()
}

const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// pe is the start of a Windows program: enough for file(1) and our typer to say so.
var pe = append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), bytes.Repeat([]byte{0}, 112)...)

func parseConf(t testing.TB, text string) *conf.Config {
	t.Helper()
	c, err := conf.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// debianConf is a configuration with the shipped Debian banned rule set plus text.
func debianConf(t testing.TB, text string) *conf.Config {
	t.Helper()
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	return parseConf(t, text+"\n"+string(rules))
}

// decode runs the real unpacker over a message.
func decode(t testing.TB, msg string) *unpack.Result {
	t.Helper()
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	if err := os.WriteFile(email, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	u := unpack.New(unpack.Limits{MaxLevels: 14, MaxFiles: 1500}, nil, nil)
	res, err := u.Unpack(context.Background(), email, filepath.Join(dir, "parts"))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// header splits a message at its empty line.
func header(msg string) []byte {
	h, _, _ := strings.Cut(msg, "\n\n")
	return []byte(h + "\n")
}

const plainHeader = "From: a@example.net\nTo: b@example.com\nDate: Sun, 22 Nov 2026 09:45:23 +0000\nMessage-ID: <m1@example.net>\nSubject: test\n"

// withAttachment builds a multipart message with one base64 attachment.
func withAttachment(ctype, name string, content []byte) string {
	return plainHeader + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\n" +
		"--BB\nContent-Type: text/plain\n\nhello\n" +
		"--BB\nContent-Type: " + ctype + "; name=\"" + name + "\"\nContent-Disposition: attachment; filename=\"" + name + "\"\nContent-Transfer-Encoding: base64\n\n" +
		wrap(base64.StdEncoding.EncodeToString(content)) + "\n--BB--\n"
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func zipOf(t testing.TB, name string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func infected(names ...string) scanners.Report {
	return scanners.Report{Infected: true, Viruses: names, Detectors: []string{"ClamAV-clamd"}}
}

// input is a message to one local and one remote recipient under cfg's base policy.
func input(cfg *conf.Config, msg string) Input {
	return Input{
		Config: cfg, Policy: &cfg.Policy, LogID: logID, Sender: "a@example.net",
		Recipients: recips("b@example.com", "c@remote.example"),
		Header:     header(msg), Size: int64(len(msg)),
	}
}

// recips are fresh records for RCPT TO:<addr>, as the daemon makes them.
func recips(addrs ...string) []*Recipient {
	rs := make([]*Recipient, len(addrs))
	for i, a := range addrs {
		rs[i] = &Recipient{Recipient: smtp.Recipient{Addr: a, AddrSMTP: smtp.Quote(a)}}
	}
	return rs
}

func mustDecide(t *testing.T, in Input) *Verdict {
	t.Helper()
	v, err := Decide(in)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
