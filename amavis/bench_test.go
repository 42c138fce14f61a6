package amavis

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"amavisgo/internal/testenv"
	"amavisgo/verdict"

	"amavisgo/smtp"
	"amavisgo/smtp/smtptest"
)

// msg2k is a typical small message of about 2 KB.
var msg2k = func() string {
	var b strings.Builder
	b.WriteString("From: alice@sender.example.org\r\nTo: x@example.com\r\nSubject: benchmark\r\n")
	b.WriteString("Message-ID: <bench@sender.example.org>\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n\r\n")
	for b.Len() < 2048 {
		b.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n")
	}
	return b.String()
}()

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEndToEnd2K sends 2 KB messages through one SMTP session: spool, header splice,
// forward over the cached next-hop connection, reply. The CPU figure covers the whole test
// process: the client, the daemon and the go-smtp next hop.
func BenchmarkEndToEnd2K(b *testing.B) { benchmarkEndToEnd2K(b, "") }

// BenchmarkEndToEnd2KMetrics is BenchmarkEndToEnd2K with metrics on (metrics_listen set): the
// difference is what counting costs per message.
func BenchmarkEndToEnd2KMetrics(b *testing.B) {
	benchmarkEndToEnd2K(b, fmt.Sprintf("metrics_listen = \"%d\"", testenv.FreePort(b)))
}

func benchmarkEndToEnd2K(b *testing.B, extra string) {
	h := smtptest.Start(b, smtptest.Options{KeepData: 1})
	td := startDaemon(b, h.Addr, "log_level = -1\n"+extra)
	c, r := dial(b, td.addr)
	c.SetDeadline(time.Time{})
	expectPrefix(b, r, "220 ")
	send(b, c, "HELO mta.example.com")
	expectPrefix(b, r, "250 ")
	w := bufio.NewWriter(c)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg2k)))
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// pipelined envelope, as Postfix sends it
		fmt.Fprintf(w, "MAIL FROM:<alice@sender.example.org>\r\nRCPT TO:<x@example.com>\r\nDATA\r\n")
		w.Flush()
		for range 3 {
			if _, err := r.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
		}
		w.WriteString(msg2k)
		w.WriteString(".\r\n")
		w.Flush()
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "250 2.0.0 from MTA") {
			b.Fatalf("%q %v", l, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// BenchmarkProtocolReadPath reads a pipelined envelope and a 2 KB DATA section through the
// session state machine into a discarding handler.
func BenchmarkProtocolReadPath(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		smtp.NewSession(c, &smtp.Config{HeloName: "[127.0.0.1]", Greeting: "x", QuitBanner: "y",
			RcptLimit: 10, Timeout: time.Minute}, discardHandler{}, false).Serve()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n')
	in := "MAIL FROM:<alice@sender.example.org> BODY=8BITMIME SIZE=2048\r\nRCPT TO:<x@example.com> NOTIFY=FAILURE\r\nDATA\r\n"
	b.ReportAllocs()
	b.SetBytes(int64(len(msg2k)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		io.WriteString(c, in)
		for range 3 {
			r.ReadString('\n')
		}
		io.WriteString(c, msg2k+".\r\n")
		r.ReadString('\n')
	}
}

type discardHandler struct{}

func (discardHandler) Data(s *smtp.Session, tx *smtp.Transaction, r *smtp.DataReader) []smtp.Reply {
	io.Copy(io.Discard, r)
	return []smtp.Reply{{Code: 250, Enh: "2.0.0", Text: "Ok"}}
}

// BenchmarkSpool streams a 2 KB DATA section into TEMPBASE/.../email.txt.
func BenchmarkSpool(b *testing.B) {
	d := &Daemon{}
	tmp := b.TempDir()
	wire := msg2k + ".\r\n"
	src := strings.NewReader(wire)
	br := bufio.NewReaderSize(src, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg2k)))
	for i := 0; i < b.N; i++ {
		src.Reset(wire)
		br.Reset(src)
		dir := filepath.Join(tmp, "m")
		os.Mkdir(dir, 0750)
		m := &Message{Dir: dir, File: filepath.Join(dir, "email.txt")}
		if err := d.spool(m, smtp.NewDataReader(br)); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(dir)
	}
}

// scannedEdits are the edits of a clean message's copy: X-Virus-Scanned only.
var scannedEdits = verdict.HeaderEdits{Add: []verdict.Field{{Name: "X-Virus-Scanned", Value: "amavis at example.com"}}}

// BenchmarkHeaderSplice builds the added header block (X-Virus-Scanned and the folded
// Received field) that goes in front of the original bytes.
func BenchmarkHeaderSplice(b *testing.B) {
	td := startDaemon(b, "", "")
	cfg := td.Config()
	m := &Message{cfg: cfg, Policy: &cfg.Policy, MailID: "CnZaXJZ2eOZf", Proto: "ESMTP", RxTime: time.Now(),
		Conn:   ConnInfo{PeerIP: "127.0.0.1", LocalIP: "127.0.0.1", LocalPort: "10024", Helo: "mta.example.com"},
		Recips: []*verdict.Recipient{{Recipient: smtp.Recipient{AddrSMTP: "<x@example.com>"}}}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, _, _ = forwardHeader(m, scannedEdits)
	}
}

// BenchmarkForward2K forwards a spooled 2 KB message over the cached next-hop connection.
func BenchmarkForward2K(b *testing.B) {
	h := smtptest.Start(b, smtptest.Options{KeepData: 1})
	td := startDaemon(b, h.Addr, "log_level = -1")
	cfg := td.Config()
	dir := b.TempDir()
	file := filepath.Join(dir, "email.txt")
	os.WriteFile(file, []byte(msg2k), 0640)
	m := &Message{cfg: cfg, Policy: &cfg.Policy, LogID: "00001-01", MailID: "CnZaXJZ2eOZf", Proto: "ESMTP",
		RxTime: time.Now(), SenderSMTP: "<alice@sender.example.org>", Body: "7BIT", File: file,
		Client: ClientInfo{Addr: "198.51.100.7"},
		Conn:   ConnInfo{PeerIP: "127.0.0.1", LocalIP: "127.0.0.1", LocalPort: "10024", Helo: "mta.example.com"},
		tl:     &taskLog{l: td.Daemon.log, id: "00001-01", level: -1}}
	header, _, _ := forwardHeader(m, scannedEdits)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg2k)))
	for i := 0; i < b.N; i++ {
		rs := []*verdict.Recipient{{Recipient: smtp.Recipient{Addr: "x@example.com", AddrSMTP: "<x@example.com>"}}}
		td.forward(b.Context(), m, cfg.Forward(), header, 0, rs)
		if rs[0].Reply.Code != 250 {
			b.Fatal(rs[0].Reply)
		}
	}
}
