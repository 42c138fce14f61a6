package sidebyside

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

const (
	sender = "sender@example.org"
	rcpt   = "rcpt@example.com"
	// refused is a recipient the next hops refuse at RCPT with 550
	refused = "refused@example.com"
)

// message is a small message with one text part and, when att is not "", one attachment.
func message(subject, text, attName, attType, attCTE, att string) string {
	h := "From: Sender <" + sender + ">\r\nTo: <" + rcpt + ">\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.org>\r\nDate: Fri, 04 Dec 2026 05:00:00 +0000\r\nMIME-Version: 1.0\r\n"
	if attName == "" {
		return h + "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + crlf(text)
	}
	return h + "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n" + crlf(text) +
		"\r\n--b1\r\nContent-Type: " + attType + "; name=\"" + attName + "\"\r\nContent-Disposition: attachment; filename=\"" + attName +
		"\"\r\nContent-Transfer-Encoding: " + attCTE + "\r\n\r\n" + crlf(att) + "\r\n--b1--\r\n"
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func b64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	return out.String() + s + "\n"
}

func zipped(name string, data []byte) []byte {
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, _ := w.Create(name)
	f.Write(data)
	w.Close()
	return b.Bytes()
}

func gzipped(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func qp(data []byte) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.String()
}

// eicarWrappings are the five ways the EICAR string travels.
func eicarWrappings() map[string]string {
	e := []byte(testenv.EICAR)
	return map[string]string{
		"eicar-body": message("eicar body", testenv.EICAR+"\n", "", "", "", ""),
		"eicar-b64":  message("eicar base64", "see attachment\n", "eicar.txt", "application/octet-stream", "base64", b64(e)),
		"eicar-qp":   message("eicar qp", "see attachment\n", "eicar.txt", "text/plain", "quoted-printable", qp(e)),
		"eicar-zip":  message("eicar zip", "see attachment\n", "eicar.zip", "application/zip", "base64", b64(zipped("eicar.txt", e))),
		"eicar-gz":   message("eicar gzip", "see attachment\n", "eicar.txt.gz", "application/gzip", "base64", b64(gzipped(e))),
	}
}

// outcome is what one side did with one message.
type outcome struct {
	transcript []string          // our client's commands and the replies
	nexthop    []string          // what reached the next hop: commands and data
	quarantine map[string]string // new quarantine files by normalised name
	log        []string          // new log lines
	release    string            // amavisd-release's output, for the release case
	ids        map[string]string // mail_id / log id values to normalise
}

// send runs one SMTP transaction with XFORWARD as Postfix would, recording the replies.
func send(t *testing.T, addr, msg string, rcpts []string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(120 * time.Second))
	r := bufio.NewReader(conn)
	var tr []string
	reply := func() {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				tr = append(tr, "ERROR "+err.Error())
				return
			}
			tr = append(tr, "S: "+strings.TrimRight(l, "\r\n"))
			if len(l) < 4 || l[3] != '-' {
				return
			}
		}
	}
	cmd := func(c string) {
		tr = append(tr, "C: "+c)
		fmt.Fprintf(conn, "%s\r\n", c)
		reply()
	}
	reply()
	cmd("EHLO localhost")
	cmd("XFORWARD NAME=client.example.org ADDR=192.0.2.10 PORT=41234 PROTO=ESMTP HELO=client.example.org SOURCE=REMOTE")
	cmd("XFORWARD IDENT=4QUEUEID1")
	cmd("MAIL FROM:<" + sender + "> BODY=8BITMIME SIZE=" + fmt.Sprint(len(msg)) + " ENVID=env-1")
	for _, r := range rcpts {
		cmd("RCPT TO:<" + r + "> NOTIFY=FAILURE ORCPT=rfc822;" + r)
	}
	cmd("DATA")
	conn.Write([]byte(msg + ".\r\n"))
	tr = append(tr, "C: <message>")
	reply()
	cmd("QUIT")
	return tr
}

// run sends msg to one side and collects the outcome.
func (sd *side) run(t *testing.T, msg string, rcpts []string) *outcome {
	t.Helper()
	linesBefore := len(sd.next.Lines())
	logBefore := sd.logSize()
	qBefore := quarantineFiles(sd.home)
	o := &outcome{ids: map[string]string{}, quarantine: map[string]string{}}
	o.transcript = send(t, sd.addr, msg, rcpts)
	o.log = sd.waitLogSettled(logBefore)
	o.nexthop = sd.next.Lines()[linesBefore:]
	for name, body := range quarantineFiles(sd.home) {
		if _, ok := qBefore[name]; !ok {
			o.quarantine[name] = body
		}
	}
	o.collectIDs()
	return o
}

// waitLogSettled waits until the log has the message's main line and grew no more for a
// moment (notices and DSNs are logged around it).
func (sd *side) waitLogSettled(from int) []string {
	deadline := time.Now().Add(30 * time.Second)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		n := sd.logSize()
		if n != last {
			last, since = n, time.Now()
		}
		l := strings.Join(sd.logLines(from), "\n")
		if regexp.MustCompile(`(Passed|Blocked) `).MatchString(l) && time.Since(since) > 300*time.Millisecond {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sd.logLines(from)
}

func quarantineFiles(home string) map[string]string {
	out := map[string]string{}
	filepath.Walk(filepath.Join(home, "virusmails"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	return out
}

var (
	reMailID = regexp.MustCompile(`mail_id: ([A-Za-z0-9_+-]{12})`)
	reLogID  = regexp.MustCompile(`^\(([0-9a-z]+-[0-9a-z]+(?:-\d+)?)\) `)
	reRelID  = regexp.MustCompile(`\(rel-([A-Za-z0-9_+-]{12})\)`)
)

func (o *outcome) collectIDs() {
	for _, l := range o.log {
		if m := reMailID.FindStringSubmatch(l); m != nil {
			o.ids[m[1]] = "MAILID"
		}
		if m := reLogID.FindStringSubmatch(l); m != nil {
			o.ids[m[1]] = "LOGID"
		}
		for i, m := range reRelID.FindAllStringSubmatch(l, -1) {
			if _, ok := o.ids[m[1]]; !ok {
				o.ids[m[1]] = fmt.Sprintf("RELID%d", len(o.ids)+i)
			}
		}
	}
}

// release asks the side's AM.PDP server, through Debian's amavisd-release, to release the
// quarantined file name (relative to QUARANTINEDIR).
func (sd *side) release(t *testing.T, args ...string) string {
	t.Helper()
	prog := testenv.RequireProgram(t, "amavisd-release", "/usr/sbin/amavisd-release")
	src, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	const line = "$socketname = '/var/lib/amavis/amavisd.sock';"
	script := filepath.Join(t.TempDir(), "amavisd-release")
	os.WriteFile(script, bytes.Replace(src, []byte(line), []byte("$socketname = '"+sd.sock+"';"), 1), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, script, args...).CombinedOutput()
	return string(out)
}

// ampdp sends one raw AM.PDP request (attribute lines) to the side's socket and returns the
// response's lines.
func (sd *side) ampdp(t *testing.T, req string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sd.sock, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprint(c, req+"\n")
	r := bufio.NewReader(c)
	var out strings.Builder
	for {
		l, err := r.ReadString('\n')
		if err != nil || strings.TrimRight(l, "\r\n") == "" {
			return out.String()
		}
		out.WriteString(strings.TrimRight(l, "\r\n") + "\n")
	}
}

// normalise replaces what legitimately differs between two runs: ids, times, ports, MIME
// boundaries, the process id in log ids.
func normalise(s string, ids map[string]string, ports []string) string {
	for _, m := range regexp.MustCompile(`boundary="([^"]+)"`).FindAllStringSubmatch(s, -1) {
		s = strings.ReplaceAll(s, m[1], "BOUNDARY")
	}
	keys := make([]string, 0, len(ids))
	for k := range ids {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, ids[k])
	}
	s = regexp.MustCompile(`/\S*?/sbs\d+/home/`).ReplaceAllString(s, "MYHOME/")
	// the next hop numbers what it queues: the order of notices and messages, an aspect of
	// its own, shows in them
	s = regexp.MustCompile(`SINKQ\d+`).ReplaceAllString(s, "SINKQ")
	for _, p := range ports {
		s = regexp.MustCompile(`\b`+p+`\b`).ReplaceAllString(s, "PORT")
	}
	// amavis writes MAIL and RCPT parameters in no fixed order (a Perl hash)
	s = regexp.MustCompile(`(?m)^((?:MAIL FROM|RCPT TO):<[^>]*>) (.*)$`).ReplaceAllStringFunc(s, func(l string) string {
		cmd, params, _ := strings.Cut(l, "> ")
		p := strings.Fields(params)
		sort.Strings(p)
		return cmd + "> " + strings.Join(p, " ")
	})
	// the ENVID of a message we originate: its own new mail_id and the time
	s = regexp.MustCompile(`ENVID=AM\.[A-Za-z0-9_+-]+\.\d{8}T\d{6}Z@`).ReplaceAllString(s, "ENVID=AM.NEWID.TIME@")
	s = regexp.MustCompile(`\d\d:\d\d:\d\d`).ReplaceAllString(s, "HH:MM:SS")
	s = regexp.MustCompile(`\b\d+ ms\b`).ReplaceAllString(s, "N ms")
	s = regexp.MustCompile(`\b\d+-\d\d(-\d+)?\b`).ReplaceAllString(s, "LOGID")
	s = regexp.MustCompile(`(^|[^A-Za-z0-9_+-])[A-Za-z0-9_+-]{12}([^A-Za-z0-9_+-]|$)`).ReplaceAllStringFunc(s, func(m string) string {
		core := strings.Trim(m, "<>@ ;,.:/()[]\"'\t=")
		if len(core) == 12 && strings.ContainsAny(core, "0123456789") && strings.ToLower(core) != core && strings.ToUpper(core) != core {
			return strings.Replace(m, core, "MAILID", 1)
		}
		return m
	})
	// Perl's own error texts name its source line
	s = regexp.MustCompile(`( |%20)at(?: |%20)/usr/share/perl5/\S+?(?: |%20)line(?: |%20)\d+(?:,(?: |%20)<\w+>(?: |%20)line(?: |%20)\d+)?\.`).ReplaceAllString(s, "")
	// a single part's MIME fields come in no fixed order from MIME::Tools (a Perl hash)
	s = regexp.MustCompile(`(?m)^Message-ID: .*\n((?:Content-(?:Type|Transfer-Encoding|Disposition): .*\n){3})`).ReplaceAllStringFunc(s, func(m string) string {
		lines := strings.SplitAfter(m, "\n")
		body := lines[1:4]
		sort.Strings(body)
		return lines[0] + strings.Join(body, "")
	})
	// the quarantine subdirectory is the mail_id's first character (Amavis::Out::Local)
	s = regexp.MustCompile(`\b[A-Za-z0-9]/(virus|banned|spam|badh)-MAILID`).ReplaceAllString(s, "S/$1-MAILID")
	return s
}
