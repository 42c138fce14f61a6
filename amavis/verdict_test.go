package amavis

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"amavisgo/internal/testenv"
	"amavisgo/notify/dsntest"
	"amavisgo/smtp/smtptest"
)

// The virus payloads of issue "Verdicts": EICAR plain, base64, in a zip, in a zip in a zip,
// in a tar.gz.
func eicarMessages(t *testing.T) map[string]string {
	zipOf := func(name string, data []byte) []byte {
		var b bytes.Buffer
		w := zip.NewWriter(&b)
		f, _ := w.Create(name)
		f.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "eicar.com", Mode: 0644, Size: int64(len(testenv.EICAR))})
	tw.Write([]byte(testenv.EICAR))
	tw.Close()
	gz.Close()
	attach := func(name, ctype string, data []byte) string {
		return mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
			"--b1\r\nContent-Type: "+ctype+"; name=\""+name+"\"\r\nContent-Transfer-Encoding: base64\r\n"+
			"Content-Disposition: attachment; filename=\""+name+"\"\r\n\r\n"+
			wrap76(base64.StdEncoding.EncodeToString(data))+"--b1--\r\n")
	}
	inner := zipOf("eicar.com", []byte(testenv.EICAR))
	return map[string]string{
		"plain":      mimeMessage("text/plain", testenv.EICAR+"\r\n"),
		"base64":     attach("eicar.com", "application/octet-stream", []byte(testenv.EICAR)),
		"zip":        attach("eicar.zip", "application/zip", inner),
		"zip-in-zip": attach("outer.zip", "application/zip", zipOf("inner.zip", inner)),
		"tar.gz":     attach("eicar.tar.gz", "application/gzip", tgz.Bytes()),
	}
}

func mimeMessage(ctype, body string) string {
	return "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n" +
		"Subject: test\r\nMessage-ID: <v1@sender.example.org>\r\nMIME-Version: 1.0\r\nContent-Type: " + ctype + "\r\n\r\n" + body
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

// Every destiny of a virus, for every payload, over SMTP and LMTP, against a real clamd:
// the reply, what reaches the next hop, the quarantine file and the main log line.
func TestVirusDestinies(t *testing.T) {
	clamd := testenv.StartClamd(t)
	virus := clamd.VirusName
	msgs := eicarMessages(t)
	scanner := fmt.Sprintf(`
[[av_scanners]]
name = "ClamAV-clamd"
type = "clamd"
sockets = [%q]
query = "CONTSCAN {}\n"
clean_pattern = '\bOK$'
infected_pattern = '\bFOUND$'
names_pattern = '^.*?: (?!Infected Archive)(.*) FOUND$'
`, clamd.Socket)
	for _, tc := range []struct {
		destiny   string // "" = the default
		smtpReply string
		lmtpReply string
		forwarded bool
		logStart  string
	}{
		{"", "250 2.7.0 Ok, discarded, id=PID-NN - INFECTED: " + virus,
			"250 2.7.0 Ok, discarded, id=PID-NN - INFECTED: " + virus, false,
			"Blocked INFECTED (" + virus + ") {DiscardedInbound,Quarantined}"},
		{"D_REJECT", "554 5.7.0 Reject, id=PID-NN - INFECTED: " + virus,
			"554 5.7.0 Reject, id=PID-NN - INFECTED: " + virus, false,
			"Blocked INFECTED (" + virus + ") {RejectedInbound,Quarantined}"},
		{"D_BOUNCE", "250 2.5.0 Ok, id=PID-NN, DISCARD(bounce.suppressed)",
			"250 2.5.0 Ok <x@example.com>, DSN suppressed (554 5.7.0 Bounce, id=PID-NN - INFECTED: " + virus + ")", false,
			"Blocked INFECTED (" + virus + ") {NoBounceInbound,Quarantined}"},
		{"D_PASS", "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001",
			"250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001", true,
			"Passed INFECTED (" + virus + ") {RelayedTaggedInbound,Quarantined}"},
	} {
		name := tc.destiny
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			extra := scanner
			if tc.destiny != "" {
				extra = "final_virus_destiny = \"" + tc.destiny + "\"\n" + extra
			}
			for _, lmtp := range []bool{false, true} {
				for _, payload := range []string{"plain", "base64", "zip", "zip-in-zip", "tar.gz"} {
					h := hop(t, smtptest.Options{})
					qdir := t.TempDir()
					td := startDaemon(t, h.Addr, "QUARANTINEDIR = \""+qdir+"\"\n"+extra)
					want := tc.smtpReply
					if lmtp {
						want = tc.lmtpReply
					}
					got := sendMessage(t, td, lmtp, "bob@sender.example.org", []string{"x@example.com"}, msgs[payload])
					if got[0] != want {
						t.Errorf("%s lmtp=%v: reply\n got %q\nwant %q", payload, lmtp, got[0], want)
					}
					waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
					line := mainLogLines(td.log.String())[0]
					files, _ := filepath.Glob(filepath.Join(qdir, "virus-*"))
					if len(files) != 1 {
						t.Fatalf("%s lmtp=%v: quarantine holds %v", payload, lmtp, files)
					}
					// The whole main log line in the shape of amavis's $log_short_templ
					// (Amavis.pm): the peer, sender and recipient, the quarantine name, Message-ID,
					// mail_id, size and, for a passed message, the next hop's queue id.
					mailID := strings.TrimPrefix(filepath.Base(files[0]), "virus-")
					queued := ""
					if tc.forwarded {
						queued = ", queued_as: SINKQ0001"
					}
					shape := regexp.MustCompile(`^\(\d{5}-\d{2}\) ` + regexp.QuoteMeta(tc.logStart) + `, \[127\.0\.0\.1\] ` +
						`<bob@sender\.example\.org> -> <x@example\.com>, quarantine: virus-` + mailID +
						`, Message-ID: <v1@sender\.example\.org>, mail_id: ` + mailID + `, Hits: -, size: ` +
						strconv.Itoa(len(msgs[payload])) + regexp.QuoteMeta(queued) + `, \d+ ms$`)
					if !shape.MatchString(line) {
						t.Errorf("%s lmtp=%v: log line\n %q\ndoes not match\n %s", payload, lmtp, line, shape)
					}
					stored, _ := os.ReadFile(files[0])
					// folded before the name when longer than 78 columns, as amavis's hdr folds it
					alert := "X-Amavis-Alert: INFECTED, message contains virus: " + virus
					if len(alert) > 78 {
						alert = "X-Amavis-Alert: INFECTED, message contains virus:\n " + virus
					}
					if !bytes.Contains(stored, []byte(alert+"\n")) ||
						!bytes.Contains(stored, []byte("\nX-Quarantine-ID: <"+strings.TrimPrefix(filepath.Base(files[0]), "virus-")+">\n")) {
						t.Errorf("%s: quarantine file lacks the alert or the id:\n%s", payload, stored[:min(len(stored), 600)])
					}
					msgsAtHop := h.Msgs()
					if tc.forwarded {
						if len(msgsAtHop) != 1 {
							t.Fatalf("%s lmtp=%v: next hop got %d messages, want the passed one", payload, lmtp, len(msgsAtHop))
						}
						// As Amavis::Out::EditHeader writes them: our fields on top in amavis's
						// order, then our Received, then the original header with the Subject
						// tagged in place.
						data := strings.ReplaceAll(string(msgsAtHop[0].Data), "\r\n ", " ") // unfolded
						with := "ESMTP"
						if lmtp {
							with = "LMTP"
						}
						top := regexp.MustCompile(`^X-Quarantine-ID: <` + mailID + `>\r\nX-Virus-Scanned: amavis at example\.com\r\n` +
							`X-Amavis-Alert: INFECTED, message contains virus: ` + regexp.QuoteMeta(virus) + `\r\n` +
							`Received: from mta\.example\.com \(\[127\.0\.0\.1\]\) by localhost \(mx\.example\.com \[127\.0\.0\.1\]\) ` +
							`\(amavis, port ` + td.port + `\) with ` + with + ` id ` + mailID + ` for <x@example\.com>; [^\r]+ \([A-Za-z0-9+-]+\)\r\n` +
							`From: bob@sender\.example\.org\r\nTo: x@example\.com\r\nDate: [^\r]+\r\nSubject: \*\*\*INFECTED\*\*\* test\r\n`)
						if !top.MatchString(data) {
							t.Errorf("%s lmtp=%v: the passed copy does not start as\n%s\nit is:\n%s", payload, lmtp, top, data)
						}
					} else if len(msgsAtHop) != 0 {
						t.Errorf("%s lmtp=%v: next hop got %d messages, want none", payload, lmtp, len(msgsAtHop))
					}
				}
			}
		})
	}
}

// A virus lover and an ordinary recipient of the same EICAR message: amavis splits them.
// The lover gets the tagged copy, the other is discarded or rejected; SMTP gets one reply
// that says "but 1 DISCARD|REJECT", LMTP one reply per recipient; the log has a Passed line
// for the lover and a Blocked line for the other. The action words go by the reply the client
// got (Amavis.pm): under SMTP's 250 the rejected recipient was not rejected but bounced, here
// with the DSN suppressed (NoBounce); LMTP rejects it itself.
func TestVirusLoverSplit(t *testing.T) {
	clamd := testenv.StartClamd(t)
	virus := clamd.VirusName
	msg := eicarMessages(t)["zip"]
	const fwd = "250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as SINKQ0001"
	for _, tc := range []struct {
		destiny, smtp, lmtpX, blockedSMTP, blockedLMTP string
	}{
		{"D_DISCARD", fwd + ", but 1 DISCARD", "250 2.7.0 Ok, discarded, id=PID-NN - INFECTED: " + virus, "DiscardedInbound", "DiscardedInbound"},
		{"D_REJECT", fwd + ", but 1 REJECT", "554 5.7.0 Reject, id=PID-NN - INFECTED: " + virus, "NoBounceInbound", "RejectedInbound"},
	} {
		for _, lmtp := range []bool{false, true} {
			h := hop(t, smtptest.Options{})
			td := startDaemon(t, h.Addr, fmt.Sprintf(`final_virus_destiny = %q
virus_lovers_maps = [["acl", ["lover@example.com"]]]
[[av_scanners]]
name = "clamd"
type = "clamd"
sockets = [%q]
`, tc.destiny, clamd.Socket))
			got := sendMessage(t, td, lmtp, "bob@sender.example.org", []string{"x@example.com", "lover@example.com"}, msg)
			want := []string{tc.smtp}
			if lmtp {
				want = []string{tc.lmtpX, fwd}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s lmtp=%v: replies\n got %q\nwant %q", tc.destiny, lmtp, got, want)
			}
			var toLover int
			for _, m := range h.Msgs() {
				if strings.Join(m.Rcpts, ",") == "lover@example.com" {
					toLover++
					if !strings.Contains(string(m.Data), "\r\nSubject: ***INFECTED*** test\r\n") {
						t.Errorf("%s lmtp=%v: the lover's copy is not tagged", tc.destiny, lmtp)
					}
				}
			}
			// No DSN either: amavis's default has every virus fake its sender.
			if n := len(h.Msgs()); toLover != 1 || n != 1 {
				t.Errorf("%s lmtp=%v: %d messages at the next hop, %d for the lover; want only the lover's", tc.destiny, lmtp, n, toLover)
			}
			waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 2 })
			lines := mainLogLines(td.log.String())
			blocked := tc.blockedSMTP
			if lmtp {
				blocked = tc.blockedLMTP
			}
			actions := "{" + blocked + ",RelayedTaggedInbound}"
			if !strings.Contains(lines[0], ") Passed INFECTED ("+virus+") "+actions+", [127.0.0.1] <bob@sender.example.org> -> <lover@example.com>, ") ||
				!strings.Contains(lines[1], ") Blocked INFECTED ("+virus+") "+actions+", [127.0.0.1] <bob@sender.example.org> -> <x@example.com>, ") {
				t.Errorf("%s lmtp=%v: log lines\n %s", tc.destiny, lmtp, strings.Join(lines, "\n "))
			}
		}
	}
}

// pe is the start of a Windows program, enough for the file type to say so.
var pe = append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), bytes.Repeat([]byte{0}, 112)...)

// Banned files with Debian's classic rule set, through the daemon: the reply and log line
// carry amavis's %F description of the banned part.
func TestBannedDebianRules(t *testing.T) {
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	f, _ := zw.Create("run.exe")
	f.Write(pe)
	zw.Close()
	attach := func(name, ctype string, data []byte) string {
		return mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
			"--b1\r\nContent-Type: "+ctype+"; name=\""+name+"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			wrap76(base64.StdEncoding.EncodeToString(data))+"--b1--\r\n")
	}
	for _, tc := range []struct {
		name, msg, reason string
	}{
		{"exe attachment", attach("setup.exe", "application/octet-stream", pe), "application/octet-stream,.exe,.exe-ms,setup.exe"},
		{"double extension", attach("invoice.pdf.exe", "application/octet-stream", []byte("%PDF-1.4 not really\n")), "application/octet-stream,.pdf,invoice.pdf.exe"},
		{"exe in a zip", attach("files.zip", "application/zip", zipped.Bytes()), ".exe,.exe-ms,run.exe"},
		{"program named .txt", attach("readme.txt", "text/plain", pe), "text/plain,.exe,.exe-ms,readme.txt"},
		{"msdownload type", attach("data.bin", "application/x-msdownload", []byte("just data\n")), "application/x-msdownload,.asc,data.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hop(t, smtptest.Options{})
			td := startDaemon(t, h.Addr, string(rules))
			got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, tc.msg)
			want := "250 2.7.0 Ok, discarded, id=PID-NN - BANNED: " + tc.reason
			if got[0] != want {
				t.Errorf("reply\n got %q\nwant %q", got[0], want)
			}
			waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
			if l := mainLogLines(td.log.String())[0]; !strings.Contains(l, "Blocked BANNED ("+tc.reason+") {DiscardedInbound}") {
				t.Errorf("log line %q", l)
			}
			if n := len(h.Msgs()); n != 0 {
				t.Errorf("the next hop got %d messages", n)
			}
		})
	}
	t.Run("no rules, nothing banned", func(t *testing.T) {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, "")
		got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, attach("setup.exe", "application/octet-stream", pe))
		if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") || len(h.Msgs()) != 1 {
			t.Errorf("reply %q, %d messages at the next hop", got[0], len(h.Msgs()))
		}
	})
}

// clamd down: with the defaults the message passes as UNCHECKED with the subject tag for a
// local recipient; with virus_scanners_failure_is_fatal it is a 451 and nothing is forwarded.
func TestScannerDown(t *testing.T) {
	clamd := testenv.StartClamd(t)
	clamd.Stop()
	scanner := fmt.Sprintf("[[av_scanners]]\nname = \"ClamAV-clamd\"\ntype = \"clamd\"\nsockets = [%q]\nquery = \"CONTSCAN {}\\n\"\n", clamd.Socket)
	msg := mimeMessage("text/plain", "hello\r\n")
	t.Run("defaults", func(t *testing.T) {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, scanner)
		got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, msg)
		if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
			t.Errorf("reply %q", got[0])
		}
		msgs := h.Msgs()
		if len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "\r\nSubject: ***UNCHECKED*** test\r\n") {
			t.Fatalf("next hop: %d messages, want one with the UNCHECKED tag", len(msgs))
		}
		waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
		if l := mainLogLines(td.log.String())[0]; !strings.Contains(l, "Passed UNCHECKED {RelayedTaggedInbound}") {
			t.Errorf("log line %q", l)
		}
	})
	// The subject tag is for local recipients only: a remote co-recipient gets a copy of
	// its own without it.
	t.Run("local and remote", func(t *testing.T) {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, scanner)
		got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com", "y@remote.example.net"}, msg)
		if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
			t.Errorf("reply %q", got[0])
		}
		tagged := map[string]bool{}
		for _, m := range h.Msgs() {
			for _, r := range m.Rcpts {
				tagged[r] = strings.Contains(string(m.Data), "\r\nSubject: ***UNCHECKED*** test\r\n")
				if !strings.Contains(string(m.Data), "\r\nSubject: ") {
					t.Errorf("the copy for %s lost its Subject", r)
				}
			}
		}
		if len(tagged) != 2 || !tagged["x@example.com"] || tagged["y@remote.example.net"] {
			t.Errorf("subject tagged per recipient: %v, want x@example.com only", tagged)
		}
		waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
		if l := mainLogLines(td.log.String())[0]; !strings.Contains(l, "Passed UNCHECKED {RelayedTaggedInbound,RelayedOpenRelay}") {
			t.Errorf("log line %q", l)
		}
	})
	t.Run("fatal", func(t *testing.T) {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, "virus_scanners_failure_is_fatal = true\n"+scanner)
		for _, lmtp := range []bool{false, true} {
			got := sendMessage(t, td, lmtp, "bob@sender.example.org", []string{"x@example.com"}, msg)
			want := "451 4.5.0 Error in processing, id=PID-NN, virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED"
			if got[0] != want {
				t.Errorf("lmtp=%v reply\n got %q\nwant %q", lmtp, got[0], want)
			}
		}
		if n := len(h.Msgs()); n != 0 {
			t.Errorf("the next hop got %d messages", n)
		}
	})
}

// A message over a decoding limit (nested deeper than MAXLEVELS, or a gzip bomb that
// exhausts the expansion quota) is UNCHECKED (over limits): it passes with the X-Amavis-Hold
// reason, any X-Amavis-Hold it brought removed, and the subject tag for the local recipient.
func TestDecodingLimitHold(t *testing.T) {
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	f, _ := zw.Create("inner.zip")
	var inner bytes.Buffer
	iw := zip.NewWriter(&inner)
	g, _ := iw.Create("c.txt")
	g.Write([]byte("nothing\n"))
	iw.Close()
	f.Write(inner.Bytes())
	zw.Close()
	var bomb bytes.Buffer // 16 MiB of zeros in about 16 KiB
	gw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 16 {
		gw.Write(zeros)
	}
	gw.Close()
	for _, tc := range []struct {
		name, config, file, ctype string
		content                   []byte
		hold                      string
	}{
		{"depth", "MAXLEVELS = 2\n", "a.zip", "application/zip", zipped.Bytes(),
			"X-Amavis-Hold: Maximum decoding depth (2) exceeded\r\n"},
		{"quota", "MIN_EXPANSION_QUOTA = 1048576\nMAX_EXPANSION_QUOTA = 10485760\n", "zeros.gz", "application/gzip", bomb.Bytes(),
			"X-Amavis-Hold: Exceeded storage quota 10485760 bytes by "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hop(t, smtptest.Options{})
			td := startDaemon(t, h.Addr, tc.config)
			msg := "X-Amavis-Hold: forged\r\n" + mimeMessage("multipart/mixed; boundary=\"b1\"", "--b1\r\nContent-Type: text/plain\r\n\r\nsee\r\n"+
				"--b1\r\nContent-Type: "+tc.ctype+"; name=\""+tc.file+"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
				wrap76(base64.StdEncoding.EncodeToString(tc.content))+"--b1--\r\n")
			got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, msg)
			if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
				t.Fatalf("reply %q", got[0])
			}
			msgs := h.Msgs()
			if len(msgs) != 1 {
				t.Fatalf("%d messages at the next hop", len(msgs))
			}
			data := strings.ReplaceAll(string(msgs[0].Data), "\r\n ", " ")
			if strings.Count(data, "X-Amavis-Hold: ") != 1 || !strings.Contains(data, tc.hold) ||
				!strings.Contains(data, "\r\nSubject: ***UNCHECKED*** test\r\n") {
				t.Errorf("the passed copy lacks the hold reason %q or the tag, or kept the forged field:\n%.2000s", tc.hold, data)
			}
			waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
			if l := mainLogLines(td.log.String())[0]; !strings.Contains(l, ") Passed UNCHECKED {RelayedTaggedInbound}, ") {
				t.Errorf("log line %q", l)
			}
		})
	}
}

// A quarantine that cannot be written tempfails the message (the MTA keeps it); once the
// directory is usable the retry is quarantined and discarded.
func TestQuarantineFailureTempfails(t *testing.T) {
	clamd := testenv.StartClamd(t)
	qdir := filepath.Join(t.TempDir(), "virusmails")
	// Permissions do not stop root: a file where the directory should be does.
	if err := os.WriteFile(qdir, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	h := hop(t, smtptest.Options{})
	td := startDaemon(t, h.Addr, fmt.Sprintf("QUARANTINEDIR = %q\n[[av_scanners]]\nname = \"clamd\"\ntype = \"clamd\"\nsockets = [%q]\n", qdir, clamd.Socket))
	msg := eicarMessages(t)["plain"]
	for _, lmtp := range []bool{false, true} {
		got := sendMessage(t, td, lmtp, "bob@sender.example.org", []string{"x@example.com"}, msg)
		if want := "451 4.5.0 Error in processing, id=PID-NN, quar+notif FAILED: temporarily unable to quarantine"; got[0] != want {
			t.Errorf("lmtp=%v\n got %q\nwant %q", lmtp, got[0], want)
		}
	}
	if n := len(h.Msgs()); n != 0 {
		t.Errorf("the next hop got %d messages", n)
	}
	os.Remove(qdir)
	os.Mkdir(qdir, 0o750)
	got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, msg)
	if !strings.HasPrefix(got[0], "250 2.7.0 Ok, discarded, id=PID-NN - INFECTED: ") {
		t.Errorf("retry: %q", got[0])
	}
	if files, _ := filepath.Glob(filepath.Join(qdir, "virus-*")); len(files) != 1 {
		t.Errorf("quarantine after the retry: %v", files)
	}
}

// D_BOUNCE for a virus that does not fake its sender, over SMTP and LMTP: the reply says a
// DSN was sent, and the sender gets one that an RFC 3464 reader takes apart: a
// multipart/report of a text, the delivery-status fields (per message, then one group per
// recipient) and the original header.
func TestVirusBounceSendsDSN(t *testing.T) {
	clamd := testenv.StartClamd(t)
	virus := clamd.VirusName
	for _, lmtp := range []bool{false, true} {
		h := hop(t, smtptest.Options{})
		td := startDaemon(t, h.Addr, fmt.Sprintf(`final_virus_destiny = "D_BOUNCE"
viruses_that_fake_sender_maps = [['(?i)eicar', false], ['.', true]]
[[av_scanners]]
name = "clamd"
type = "clamd"
sockets = [%q]
`, clamd.Socket))
		got := sendMessage(t, td, lmtp, "bob@sender.example.org", []string{"x@example.com"}, eicarMessages(t)["zip"])
		want := "250 2.5.0 Ok, id=PID-NN, BOUNCE"
		if lmtp {
			want = "250 2.5.0 Ok <x@example.com>, DSN was sent (554 5.7.0 Bounce, id=PID-NN - INFECTED: " + virus + ")"
		}
		if got[0] != want {
			t.Errorf("lmtp=%v: reply\n got %q\nwant %q", lmtp, got[0], want)
		}
		msgs := h.Msgs()
		if len(msgs) != 1 || msgs[0].From != "" || strings.Join(msgs[0].Rcpts, ",") != "bob@sender.example.org" {
			t.Fatalf("lmtp=%v: next hop: %d messages, want one DSN from <> to the sender", lmtp, len(msgs))
		}
		waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
		line := mainLogLines(td.log.String())[0]
		if !strings.Contains(line, ") Blocked INFECTED ("+virus+") {BouncedInbound}, ") {
			t.Errorf("lmtp=%v: log line %q", lmtp, line)
		}
		logID := line[1:strings.Index(line, ")")]
		mailID := regexp.MustCompile(`mail_id: ([A-Za-z0-9_-]{12}),`).FindStringSubmatch(line)
		if mailID == nil {
			t.Fatalf("no mail_id in %q", line)
		}

		r := dsntest.Read(t, msgs[0].Data)
		if r.Subject != "VIRUS in message apparently from you ("+virus+")" || r.To != "<bob@sender.example.org>" {
			t.Errorf("lmtp=%v: DSN Subject %q To %q", lmtp, r.Subject, r.To)
		}
		if !strings.Contains(r.Text, virus) {
			t.Errorf("lmtp=%v: the DSN's text does not name the virus:\n%s", lmtp, r.Text)
		}
		if v := r.PerMsg.Get("Reporting-MTA"); v != "dns; mx.example.com" {
			t.Errorf("lmtp=%v: Reporting-MTA %q", lmtp, v)
		}
		if len(r.PerRcpt) != 1 {
			t.Fatalf("lmtp=%v: %d recipient groups, want 1", lmtp, len(r.PerRcpt))
		}
		for name, want := range map[string]string{
			"Final-Recipient": "rfc822;x@example.com", "Action": "failed", "Status": "5.7.0",
			// amavis's multi-line reply, "554-5.7.0 ... INFECTED:" and "554 5.7.0 <virus>", unfolded
			"Diagnostic-Code": "smtp; 554-5.7.0 Bounce, id=" + logID + " - INFECTED: 554 5.7.0 " + virus,
			"Final-Log-Id":    logID + "/" + mailID[1],
		} {
			if got := r.PerRcpt[0].Get(name); got != want {
				t.Errorf("lmtp=%v: %s: %q, want %q", lmtp, name, got, want)
			}
		}
		if !strings.Contains(r.Headers, "\nMessage-ID: <v1@sender.example.org>\n") || strings.Contains(r.Headers, "\n\n") {
			t.Errorf("lmtp=%v: attached header:\n%s", lmtp, r.Headers)
		}
	}
}

// Bad headers through the daemon: each passes (final_bad_header_destiny D_PASS) with amavis's
// category in the log and the X-Amavis-Alert of the first finding (shown unfolded here).
func TestBadHeaders(t *testing.T) {
	const good = "From: bob@sender.example.org\r\nTo: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\n"
	const alert = "BAD HEADER SECTION, "
	for _, tc := range []struct {
		name, header, category, alert string
	}{
		{"8-bit in a header", good + "Subject: gr\xfc\xdfe\r\n", "BAD-HEADER-2", alert + `Non-encoded non-ASCII data (and not UTF-8) (char FC hex): Subject: gr\x{FC}\x{DF}e`},
		{"valid UTF-8", good + "Subject: gr\xc3\xbc\xc3\x9fe\r\n", "CLEAN", ""},
		{"missing Date and From", "To: x@example.com\r\nSubject: s\r\n", "BAD-HEADER-7", alert + `Missing required header field: "Date"`},
		{"missing From", "To: x@example.com\r\nDate: Sun, 22 Nov 2026 09:45:23 +0000\r\nSubject: s\r\n", "BAD-HEADER-7", alert + `Missing required header field: "From"`},
		{"duplicate Subject", good + "Subject: one\r\nSubject: two\r\n", "BAD-HEADER-8", alert + `Duplicate header field: "Subject"`},
		{"1000+ character line", good + "Subject: " + strings.Repeat("x", 1000) + "\r\n", "BAD-HEADER-5", alert + "Header line longer than 998 characters: Subject: " + strings.Repeat("x", 41) + "[...]"},
		// The NUL itself does not go out in the alert.
		{"control character", good + "Subject: a\x00b\r\n", "BAD-HEADER-3", alert + "Improper use of control character (char 00 hex): Subject: a b"},
		{"whitespace-only continuation", good + "Subject: a\r\n  \r\n b\r\n", "BAD-HEADER-4", alert + "Improper folded header field made up entirely of whitespace (char 20 20 hex): Subject: a   b"}, // line ends dropped, as amavis wraps it
		{"syntax error", good + "Bad Field Name: x\r\n", "BAD-HEADER-6", alert + "Invalid header field syntax: Bad Field Name: x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hop(t, smtptest.Options{})
			td := startDaemon(t, h.Addr, "")
			got := sendMessage(t, td, false, "bob@sender.example.org", []string{"x@example.com"}, tc.header+"\r\nbody\r\n")
			if !strings.HasPrefix(got[0], "250 2.0.0 from MTA(") {
				t.Fatalf("reply %q", got[0])
			}
			waitFor(t, "log", func() bool { return len(mainLogLines(td.log.String())) == 1 })
			if l := mainLogLines(td.log.String())[0]; !strings.Contains(l, ") Passed "+tc.category+" {RelayedInbound}, ") {
				t.Errorf("log line %q, want category %s", l, tc.category)
			}
			data := strings.ReplaceAll(string(h.Msgs()[0].Data), "\r\n ", " ") // unfolded
			var alerts []string
			for _, l := range strings.Split(data, "\r\n") {
				if v, ok := strings.CutPrefix(l, "X-Amavis-Alert: "); ok {
					alerts = append(alerts, v)
				}
			}
			want := []string{tc.alert}
			if tc.alert == "" {
				want = nil
			}
			if !slices.Equal(alerts, want) {
				t.Errorf("X-Amavis-Alert %q, want %q", alerts, want)
			}
		})
	}
}

// A declared SIZE over a recipient's message_size_limit_maps limit is refused at RCPT, logged
// "SMTP REJECT 'RCPT TO': ..." (after HELO) and not as a client's error (Amavis::In::SMTP).
func TestDeclaredSizeOverLimit(t *testing.T) {
	td := startDaemon(t, "", "message_size_limit_maps = [70000]")
	c, r := dial(t, td.addr)
	expectPrefix(t, r, "220 ")
	send(t, c, "HELO mta.example.com")
	expectPrefix(t, r, "250 ")
	send(t, c, "MAIL FROM:<a@sender.example.org> SIZE=100000", "RCPT TO:<x@example.com>")
	expectPrefix(t, r, "250 2.1.0")
	expect(t, r, "552 5.3.4 Declared message size (100000 B) exceeds size limit for recipient <x@example.com>")
	send(t, c, "RSET", "MAIL FROM:<a@sender.example.org> SIZE=60000", "RCPT TO:<x@example.com>")
	expectPrefix(t, r, "250 2.0.0 Ok RSET")
	expectPrefix(t, r, "250 2.1.0")
	expect(t, r, "250 2.1.5 Recipient <x@example.com> OK")
	want := "(PID-NN) SMTP REJECT 'RCPT TO': 552 5.3.4 Declared message size (100000 B) exceeds size limit for recipient <x@example.com>"
	waitFor(t, "the REJECT line", func() bool { return slices.Contains(logLines(td), want) })
	if strings.Contains(td.log.String(), "smtp_resp:") {
		t.Errorf("the refusal was logged as a client error:\n%s", td.log.String())
	}
}
