package amavis

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/hdr"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

func rcpt(addr string, d conf.Destiny, reply string, byMTA bool) *verdict.Recipient {
	return &verdict.Recipient{Recipient: smtp.Recipient{AddrSMTP: "<" + addr + ">"}, Destiny: d,
		Reply: smtp.ParseReply(reply), ByMTA: byMTA}
}

const (
	okFwd    = "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 3F1A2B"
	discard  = "250 2.7.0 Ok, discarded, id=12345-03 - INFECTED: Eicar-Test-Signature"
	reject   = "554 5.7.0 Reject, id=12345-01 - INFECTED: Eicar-Test-Signature"
	mtaRej   = "550 5.1.1 id=12345-01 - Rejected by next-hop MTA on relaying, from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 no"
	bounce   = "554 5.7.0 Bounce, id=12345-02 - BANNED: x.exe"
	tempfail = "450 4.7.0 Temporary failure, id=12345-04 - spam"
)

// The aggregation of per-recipient replies into one SMTP reply (one_response_for_all in
// Amavis::rfc2821_2822_Tools).
func TestAggregateReply(t *testing.T) {
	P, D, B, R, T := conf.D_PASS, conf.D_DISCARD, conf.D_BOUNCE, conf.D_REJECT, conf.D_TEMPFAIL
	for _, c := range []struct {
		name string
		rs   []*verdict.Recipient
		want string
	}{
		{"no recipients", nil, "250 2.5.0 Ok, id=12345-01"},
		{"clean", []*verdict.Recipient{rcpt("a", P, okFwd, true), rcpt("b", P, okFwd, true)}, okFwd},
		{"any tempfail wins", []*verdict.Recipient{rcpt("a", P, okFwd, true), rcpt("b", T, tempfail, false), rcpt("c", R, reject, false)}, tempfail},
		{"all discarded", []*verdict.Recipient{rcpt("a", D, discard, false), rcpt("b", D, discard, false)}, discard},
		{"all rejected, MTA's preferred", []*verdict.Recipient{rcpt("a", R, reject, false), rcpt("b", R, mtaRej, true)}, mtaRej},
		{"rejected and discarded", []*verdict.Recipient{rcpt("a", D, discard, false), rcpt("b", R, reject, false)}, reject},
		{"mixed: 1 REJECT", []*verdict.Recipient{rcpt("a", P, okFwd, true), rcpt("b", R, mtaRej, true)}, okFwd + ", but 1 REJECT"},
		{"mixed: all kinds", []*verdict.Recipient{rcpt("a", P, okFwd, true), rcpt("b", R, reject, false), rcpt("c", B, bounce, false),
			rcpt("d", D, discard, false)}, okFwd + ", but 1 REJECT, and 1 BOUNCE, and 1 DISCARD"},
		{"all bounced", []*verdict.Recipient{rcpt("a", B, bounce, false), rcpt("b", B, bounce, false)}, "250 2.5.0 Ok, id=12345-01, BOUNCE"},
		{"bounce and discard, nothing passed", []*verdict.Recipient{rcpt("a", B, bounce, false), rcpt("b", D, discard, false)},
			"250 2.5.0 Ok, id=12345-01, 1 BOUNCE, and 1 DISCARD"},
	} {
		if got := aggregateReply(c.rs, "12345-01", false).String(); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	bs := []*verdict.Recipient{rcpt("a", P, okFwd, true), rcpt("b", B, bounce, false)}
	if got := aggregateReply(bs, "12345-01", true).String(); got != okFwd+", but 1 DISCARD(bounce.suppressed)" {
		t.Errorf("suppressed bounce: %q", got)
	}
}

func TestLMTPReplies(t *testing.T) {
	rs := []*verdict.Recipient{rcpt("a@x", conf.D_PASS, okFwd, true), rcpt("b@x", conf.D_REJECT, mtaRej, true),
		rcpt("c@x", conf.D_BOUNCE, bounce, false), rcpt("d@x", conf.D_TEMPFAIL, tempfail, false)}
	got := lmtpReplies(rs)
	want := []string{okFwd, mtaRej, "250 2.5.0 Ok <c@x>, DSN suppressed_2 (" + bounce + ")", tempfail}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("%d:\n got %q\nwant %q", i, got[i].String(), want[i])
		}
	}
	rs[2].DSN = verdict.DSNSent
	if got := lmtpReplies(rs[2:3])[0].String(); got != "250 2.5.0 Ok <c@x>, DSN was sent ("+bounce+")" {
		t.Errorf("bounced: %q", got)
	}
	rs[2].DSN = verdict.DSNSuppressed
	if got := lmtpReplies(rs[2:3])[0].String(); got != "250 2.5.0 Ok <c@x>, DSN suppressed ("+bounce+")" {
		t.Errorf("bounce suppressed: %q", got)
	}
}

// The Received field is folded where amavis folds it (make_received_header_field in
// Amavis::rfc2821_2822_Tools).
func TestReceivedFolding(t *testing.T) {
	m := &Message{MailID: "CnZaXJZ2eOZf", Proto: "ESMTP",
		RxTime: time.Date(2026, 11, 22, 9, 45, 23, 0, time.UTC),
		Conn:   ConnInfo{PeerIP: "127.0.0.1", LocalIP: "127.0.0.1", LocalPort: "10024", Helo: "mta.example.com"},
		Recips: []*verdict.Recipient{{Recipient: smtp.Recipient{AddrSMTP: "<a@x>"}},
			{Recipient: smtp.Recipient{AddrSMTP: "<b@x>"}}}}
	got := string(hdr.Fold(nil, "Received:", receivedFields(m, "localhost", "mx.example.com"), receivedStyle)) + "\r\n"
	want := "Received: from mta.example.com ([127.0.0.1])\r\n" +
		" by localhost (mx.example.com [127.0.0.1]) (amavis, port 10024) with ESMTP\r\n" +
		" id CnZaXJZ2eOZf; Sun, 22 Nov 2026 09:45:23 +0000 (UTC)\r\n"
	if got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	m.Recips = m.Recips[:1]
	m.Conn = ConnInfo{Helo: ""} // a Unix socket, no HELO
	m.RxTime = time.Date(2026, 11, 2, 9, 45, 23, 0, time.UTC)
	got = string(hdr.Fold(nil, "Received:", receivedFields(m, "localhost", "mx.example.com"), receivedStyle)) + "\r\n"
	want = "Received: from unknown by localhost (amavis, unix socket) with ESMTP\r\n" +
		" id CnZaXJZ2eOZf for <a@x>; Mon,  2 Nov 2026 09:45:23 +0000 (UTC)\r\n"
	if got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
}

func TestHeaderCapture(t *testing.T) {
	msg := "Subject: x\r\nMessage-ID:\r\n <id@example>\r\n\r\nMessage-ID: <body@x>\r\n"
	for step := 1; step <= len(msg); step++ {
		hc := headerCapture{limit: 1 << 10}
		for i := 0; i < len(msg); i += step {
			hc.Write([]byte(msg[i:min(i+step, len(msg))]))
		}
		if got, _ := hdr.Get(hc.buf, "message-id"); got != "<id@example>" || !strings.HasSuffix(string(hc.buf), "<id@example>\r\n") {
			t.Fatalf("step %d: %q in %q", step, got, hc.buf)
		}
	}
}

func TestExpandBanner(t *testing.T) {
	vars := map[string]string{"helo-name": "[127.0.0.1]", "protocol": "ESMTP", "product": "amavis"}
	for in, want := range map[string]string{
		"${helo-name} ${protocol} ${product} service ready": "[127.0.0.1] ESMTP amavis service ready",
		"$product at $helo-name":                            "amavis at [127.0.0.1]",
		"cost $5 ${unknown}":                                "cost $5 ",
	} {
		if got := expandBanner(in, vars); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// %e of the log line: the oldest public IP of the trace (Amavis::UnmangleSender's
// oldest_public_ip_addr_from_received).
func TestOldestPublicIP(t *testing.T) {
	header := []byte("Received: from mx.example.com (mx.example.com [127.0.0.1])\r\n\tby mx.example.com (Postfix) with ESMTP id 1\r\n" +
		"Received: from relay.example.net (relay.example.net [203.0.113.5])\r\n by mx.example.com with ESMTP\r\n" +
		"Received: from laptop ([192.168.1.20]) by relay.example.net\r\n" +
		"Received: from old (unknown [IPv6:2001:db8::7]) by relay.example.net\r\n" +
		"Received: by localhost (no from part [198.51.100.99])\r\n")
	if got := receivedIPs(header); strings.Join(got, ",") != "127.0.0.1,203.0.113.5,192.168.1.20,2001:db8::7," {
		t.Errorf("receivedIPs: %q", got)
	}
	m := &Message{Conn: ConnInfo{PeerIP: "127.0.0.1"}, Client: ClientInfo{Addr: "203.0.113.5"}, Header: header}
	if got := oldestPublicIP(m); got != "2001:db8::7" {
		t.Errorf("oldest: %q", got)
	}
	// The address the receiving MTA saw, in parentheses, beats the client's HELO literal; a
	// comment without an address literal is no TCP-info, and the HELO literal is taken then.
	forged := []byte("Received: from [203.0.113.9] (helo.example.net [198.51.100.23])\r\n\tby mx.example.com (Postfix) with ESMTP id 2\r\n" +
		"Received: from [203.0.113.10] (may be forged) by relay.example.net\r\n" +
		"Received: from [IPv6:2001:db8::5] (unknown [192.0.2.25.2525]) by relay.example.net\r\n")
	if got := receivedIPs(forged); strings.Join(got, ",") != "198.51.100.23,203.0.113.10,192.0.2.25" {
		t.Errorf("receivedIPs of HELO literals: %q", got)
	}
	m = &Message{Conn: ConnInfo{PeerIP: "127.0.0.1"}, Client: ClientInfo{Addr: "127.0.0.1"}, Header: forged[:bytes.Index(forged, []byte("Received: from [203.0.113.10]"))]}
	if got := oldestPublicIP(m); got != "198.51.100.23" {
		t.Errorf("oldest with a HELO literal: %q, want the connecting address 198.51.100.23", got)
	}
	m = &Message{Conn: ConnInfo{PeerIP: "127.0.0.1"}, Client: ClientInfo{Addr: "127.0.0.1"}}
	if got := oldestPublicIP(m); got != "" {
		t.Errorf("no public hop: %q", got)
	}
}

// Bulk, list and automatic mail as amavis tells it (Amavis.pm's collect_some_info).
func TestIsBulk(t *testing.T) {
	for _, tc := range []struct {
		header, sender string
		want           bool
	}{
		{"From: a@x\r\nSubject: hi\r\n", "a@x", false},
		{"From: a@x\r\nList-Id: <list.x>\r\n", "a@x", true},
		{"From: a@x\r\nPrecedence:\r\n  bulk\r\n", "a@x", true},
		{"From: a@x\r\nPrecedence: first-class\r\n", "a@x", false},
		{"Auto-Submitted: no\r\n", "a@x", false},
		{"Auto-Submitted: auto-replied\r\n", "a@x", true},
		{"From: a@x\r\n", "", true},
		{"From: a@x\r\n", "list-bounces@x", true},
		{"From: a@x\r\n", "MAILER-DAEMON@x", true},
	} {
		if got := isBulk([]byte(tc.header), tc.sender); got != tc.want {
			t.Errorf("isBulk(%q, %q) = %v", tc.header, tc.sender, got)
		}
	}
}

func TestHeaderField(t *testing.T) {
	h := []byte("Received: a\r\nMessage-ID:\r\n <m1@x>\r\nreceived : b\r\nSubject: one\r\n two\r\n")
	if got, _ := hdr.Get(h, "message-id"); got != "<m1@x>" {
		t.Errorf("Message-ID %q", got)
	}
	if got, _ := hdr.Get(h, "Subject"); got != "one two" {
		t.Errorf("Subject %q", got)
	}
	if n := hdr.Count(h, "Received"); n != 2 {
		t.Errorf("%d Received fields", n)
	}
}
