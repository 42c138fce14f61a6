package amavis

import (
	"bufio"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	"amavisgo/smtp/smtptest"
)

// Forwarding trouble is explained at level 0 as Debian's amavisd-new 2.13 explains it (its
// lines for the same cases, with our error texts): the failed connection, the negative (or
// missing) answer to the final dot, and the "<mail_id> FWD" summary; the recipient refused by
// the next hop under SMTP's 250 is bounced ({BouncedInbound,...}) and its sender gets a DSN.
func TestForwardingTroubleLogged(t *testing.T) {
	body := "From: a@sender.example.org\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <3@x>\r\nSubject: t\r\n\r\nbody\r\n"
	mailID := regexp.MustCompile(`mail_id: ([A-Za-z0-9_-]{12})`)
	dt := regexp.MustCompile(`, dt: \d+\.\d+ (ms|s)$`)
	for _, tc := range []struct {
		name    string
		refused bool
		opts    smtptest.Options
		rcpts   []string
		want    []string // the log lines, less the main ones and those of level 1 and more
		actions string
		msgs    int // taken by the next hop: the message, a DSN
	}{
		{name: "refused", refused: true, rcpts: []string{"y@example.com"}, want: []string{
			"(PID-NN) (!)connect to [127.0.0.1]:10025 failed, attempt #1: Can't connect to socket [127.0.0.1]:10025: Connection refused",
			"(PID-NN) (!)MAILID FWD from <a@sender.example.org> -> <y@example.com>,  451 4.5.0 From MTA() during fwd-connect (All attempts (1) failed connecting to smtp:[127.0.0.1]:10025): id=PID-NN",
		}, actions: "{TempFailedInbound}"},
		{name: "451 to the dot", opts: smtptest.Options{DataCode: 451}, rcpts: []string{"y@example.com", "z@example.com"}, want: []string{
			"(PID-NN) Negative SMTP response to data-dot (<y@example.com>, etc.): 451 4.3.0 Error: test failure after DATA, dt: N",
			"(PID-NN) (!)MAILID FWD from <a@sender.example.org> -> <y@example.com>,<z@example.com>, BODY=7BIT 451 4.3.0 from MTA(smtp:[127.0.0.1]:10025): 451 4.3.0 Error: test failure after DATA",
		}, actions: "{TempFailedInbound}"},
		{name: "no answer to the dot", opts: smtptest.Options{DropAfterData: true}, rcpts: []string{"y@example.com"}, want: []string{
			"(PID-NN) No SMTP response to data-dot (<y@example.com>), dt: N",
			"(PID-NN) (!)MAILID FWD from <a@sender.example.org> -> <y@example.com>, BODY=7BIT 451 4.5.0 from MTA(smtp:[127.0.0.1]:10025): No resp. to data-dot",
		}, actions: "{TempFailedInbound}"},
		{name: "550 for one", opts: smtptest.Options{RcptCode: map[string]int{"reject@example.com": 550}},
			rcpts: []string{"y@example.com", "reject@example.com"}, want: []string{
				"(PID-NN) (!)MAILID FWD from <a@sender.example.org> -> <y@example.com>,<reject@example.com>, BODY=7BIT 550 5.1.1 from MTA(smtp:[127.0.0.1]:10025): 550 5.1.1 <reject@example.com>: Recipient address rejected: test",
			}, actions: "{BouncedInbound,RelayedInbound}", msgs: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := ""
			var h *smtptest.NextHop
			if !tc.refused {
				h = hop(t, tc.opts)
				addr = h.Addr
			}
			td := startDaemon(t, addr, "")
			sendMessage(t, td, false, "a@sender.example.org", tc.rcpts, body)
			waitFor(t, "main log line", func() bool { return len(mainLogLines(td.log.String())) > 0 })
			main := mainLogLines(td.log.String())
			id := mailID.FindStringSubmatch(main[0])[1]
			for _, l := range main {
				if !strings.Contains(l, "MTA-BLOCKED "+tc.actions+", ") {
					t.Errorf("main log line %q, want %s", l, tc.actions)
				}
			}
			var got []string
			for _, l := range logLines(td) {
				if strings.Contains(l, "FWD from") || strings.Contains(l, "data-dot") || strings.Contains(l, "connect to") {
					got = append(got, dt.ReplaceAllString(strings.ReplaceAll(l, id, "MAILID"), ", dt: N"))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("log lines\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(tc.want, "\n "))
			}
			if h != nil {
				if n := len(h.Msgs()); n != tc.msgs {
					t.Errorf("%d messages at the next hop, want %d", n, tc.msgs)
				}
			}
		})
	}
}

// faultyHop is a hand-written next hop for faults smtptest cannot give: it refuses DATA with
// 451 ("data451"), or accepts DATA and hangs up after the first bytes of the message ("drop").
func faultyHop(t *testing.T, mode string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				io.WriteString(c, "220 fake ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"):
						io.WriteString(c, "250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
					case cmd == "DATA" && mode == "data451":
						io.WriteString(c, "451 4.3.0 data busy\r\n")
					case cmd == "DATA":
						io.WriteString(c, "354 go\r\n")
						r.Read(make([]byte, 100))
						return
					case cmd == "QUIT":
						io.WriteString(c, "221 bye\r\n")
						return
					default:
						io.WriteString(c, "250 2.0.0 Ok\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A next hop that refuses DATA, and one that hangs up in the middle of the message: amavis's
// "Negative SMTP resp. to DATA" and "aborting SMTP session" (Amavis::Out::SMTP), then the FWD
// summary.
func TestForwardingAbortLogged(t *testing.T) {
	small := "From: a@sender.example.org\r\nDate: Fri, 4 Dec 2026 05:00:00 +0000\r\nMessage-ID: <3@x>\r\nSubject: t\r\n\r\nbody\r\n"
	big := small + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 100000) // 8 MB: more than socket buffers hold
	for _, tc := range []struct {
		mode, body string
		want       []string // line prefixes
	}{
		{"data451", small, []string{
			"(PID-NN) Negative SMTP resp. to DATA: 451 4.3.0 data busy",
			"(PID-NN) (!)MAILID FWD from <a@sender.example.org> -> <y@example.com>, BODY=7BIT 451 4.3.0 from MTA(smtp:[127.0.0.1]:10025): 451 4.3.0 data busy",
		}},
		{"drop", big, []string{
			"(PID-NN) (!)mail_via_smtp: NOTICE: aborting SMTP session, fwd-data-",
			"(PID-NN) (!)MAILID FWD from <a@sender.example.org> -> <y@example.com>, BODY=7BIT 451 4.5.0 From MTA(smtp:[127.0.0.1]:10025) during fwd-data-",
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			td := startDaemon(t, faultyHop(t, tc.mode), "")
			sendMessage(t, td, false, "a@sender.example.org", []string{"y@example.com"}, tc.body)
			waitFor(t, "main log line", func() bool { return len(mainLogLines(td.log.String())) > 0 })
			id := regexp.MustCompile(`mail_id: ([A-Za-z0-9_-]{12})`).FindStringSubmatch(mainLogLines(td.log.String())[0])[1]
			var got []string
			for _, l := range logLines(td) {
				if strings.Contains(l, "FWD from") || strings.Contains(l, "Negative") || strings.Contains(l, "aborting") {
					got = append(got, strings.ReplaceAll(l, id, "MAILID"))
				}
			}
			ok := len(got) == len(tc.want)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.HasPrefix(got[i], tc.want[i])
			}
			if !ok {
				t.Errorf("log lines\n %s\nwant lines starting\n %s", strings.Join(got, "\n "), strings.Join(tc.want, "\n "))
			}
		})
	}
}
