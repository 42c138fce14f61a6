// Package dsntest reads a delivery status notification the way an RFC 3464 reader does, for
// the tests of the packages that send them.
package dsntest

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// DSN is a multipart/report; report-type=delivery-status as its reader sees it.
type DSN struct {
	Subject, To   string
	Text, Headers string // the human-readable part, the text/rfc822-headers part (LF line ends)
	PerMsg        textproto.MIMEHeader
	PerRcpt       []textproto.MIMEHeader
}

// Read parses data: its three parts in order, and the message/delivery-status body as a
// per-message field group followed by the recipient groups. Anything else fails the test.
func Read(t testing.TB, data []byte) DSN {
	t.Helper()
	e, err := message.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ct, params, _ := e.Header.ContentType()
	if ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %s %v", ct, params)
	}
	d := DSN{Subject: e.Header.Get("Subject"), To: e.Header.Get("To")}
	mr := e.MultipartReader()
	var parts [][]byte
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		pt, _, _ := p.Header.ContentType()
		parts, types = append(parts, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))), append(types, pt)
	}
	// the header section is message/global-headers when it holds UTF-8, as amavis sends it
	if got := strings.Join(types, ","); got != "text/plain,message/delivery-status,text/rfc822-headers" &&
		got != "text/plain,message/delivery-status,message/global-headers" {
		t.Fatalf("DSN parts %v", types)
	}
	d.Text, d.Headers = string(parts[0]), string(parts[2])
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(parts[1])))
	if d.PerMsg, err = tr.ReadMIMEHeader(); err != nil {
		t.Fatalf("per-message fields: %v", err)
	}
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			d.PerRcpt = append(d.PerRcpt, h)
		}
		if err == io.EOF {
			return d
		}
		if err != nil {
			t.Fatalf("recipient fields: %v", err)
		}
	}
}
