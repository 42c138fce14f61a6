package amavis

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/internal/testenv"
	"amavisgo/quarantine/ampdp"
	"amavisgo/smtp/smtptest"
)

// ampdpDaemon is a daemon whose Unix socket speaks AM.PDP (Debian's AM.PDP-SOCK bank) with
// Debian's banned rules, and a client connection to it.
func ampdpDaemon(t *testing.T, extra string) (*testDaemon, *bufio.Reader, net.Conn) {
	t.Helper()
	rules, err := os.ReadFile("../etc/banned_rules_debian.toml")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "amavisd.sock")
	td := startDaemon(t, "", `unix_socketname = "`+sock+`"
interface_policy = { SOCK = "AM.PDP-SOCK" }
`+extra+`
`+string(rules)+`
[policy_bank."AM.PDP-SOCK"]
protocol = "AM.PDP"
banned_files_lovers_maps = [["acl", ["lover@example.com"]]]
`)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return td, bufio.NewReader(c), c
}

// ask sends one request and returns the response lines, decoded.
func ask(t *testing.T, r *bufio.Reader, c net.Conn, lines ...string) []string {
	t.Helper()
	if _, err := c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	req, _, err := ampdp.ReadRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range req {
		out = append(out, a.Name+"="+a.Value)
	}
	return out
}

// spoolFor writes msg as a client would: TEMPBASE/<name>/email.txt.
func spoolFor(t *testing.T, td *testDaemon, name, msg string) string {
	t.Helper()
	dir := filepath.Join(td.tempbase, name)
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "email.txt"), []byte(msg), 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

func hasLine(lines []string, want string) bool { return slices.Contains(lines, want) }

// A banned program for two recipients, one of whom loves banned files: the response removes
// the other one (delrcpt) and inserts the alert and X-Virus-Scanned for the copy the client
// delivers, topmost last; the client's directory is removed (tempdir_removed_by defaults to
// server), or kept when the client says it removes it.
func TestAMPDPCheckSplitsRecipients(t *testing.T) {
	td, r, c := ampdpDaemon(t, "")
	pe := append([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"), make([]byte, 112)...)
	msg := mimeMessage(`multipart/mixed; boundary="b1"`, "--b1\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"+
		"--b1\r\nContent-Type: application/octet-stream; name=\"setup.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
		wrap76(base64.StdEncoding.EncodeToString(pe))+"--b1--\r\n")
	dir := spoolFor(t, td, "amavis-milter-AbCd1234", msg)
	resp := ask(t, r, c, "request=AM.PDP", "sender=<bob@sender.example.org>", "recipient=<x@example.com>",
		"recipient=<lover@example.com>", "tempdir="+dir, "client_address=192.0.2.7")
	want := []string{
		"version_server=2",
		"log_id=AbCd1234-NN",
		"setreply=250 2.5.0 Ok, id=AbCd1234-NN, continue delivery, but 1 DISCARD",
		"delrcpt=<x@example.com>",
		// folded as amavis folds it
		"insheader=0 X-Amavis-Alert BANNED, message contains\n application/octet-stream,.exe,.exe-ms,setup.exe",
		"insheader=0 X-Virus-Scanned amavis at example.com",
		"return_value=continue",
		"exit_code=0",
	}
	// the log id counts requests: its number is the daemon's
	for i := range resp {
		resp[i] = regexp.MustCompile(`AbCd1234-\d\d`).ReplaceAllString(resp[i], "AbCd1234-NN")
	}
	if !slices.Equal(resp, want) {
		t.Errorf("response:\n%s\nwant:\n%s", strings.Join(resp, "\n"), strings.Join(want, "\n"))
	}
	if !regexp.MustCompile(`\(AbCd1234-\d\d\) Blocked BANNED \(application/octet-stream,\.exe,\.exe-ms,setup\.exe\) \{DiscardedInbound,RelayedTaggedInbound\}, AM\.PDP-SOCK \[192\.0\.2\.7\] \[192\.0\.2\.7\] <bob@sender\.example\.org> -> <x@example\.com>,`).MatchString(td.log.String()) {
		t.Errorf("no Blocked line for x@example.com in the log")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the client's directory %s is still there (%v); the server was to remove it", dir, err)
	}

	kept := spoolFor(t, td, "af0123456789", mimeMessage("text/plain", "hello\r\n"))
	resp = ask(t, r, c, "request=AM.PDP", "sender=<bob@sender.example.org>", "recipient=<x@example.com>",
		"tempdir="+kept, "tempdir_removed_by=client")
	if !hasLine(resp, "return_value=continue") || !hasLine(resp, "exit_code=0") {
		t.Errorf("clean message: %q", resp)
	}
	if _, err := os.Stat(filepath.Join(kept, "email.txt")); err != nil {
		t.Errorf("tempdir_removed_by=client, but the file is gone: %v", err)
	}
}

// The file rules: the directory and the file must be below TEMPBASE or MYHOME, without "..",
// the file a plain one (not a link) that exists, and a directory that holds QUARANTINEDIR is
// refused (the server would remove it). Each refusal is a 450 the client retries, and the log
// says why.
func TestAMPDPFileRules(t *testing.T) {
	td, r, c := ampdpDaemon(t, "")
	good := spoolFor(t, td, "amavis-good", mimeMessage("text/plain", "hello\r\n"))
	link := filepath.Join(td.tempbase, "amavis-link")
	os.Mkdir(link, 0o750)
	if err := os.Symlink("/etc/passwd", filepath.Join(link, "email.txt")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		attrs []string
		why   string
	}{
		{[]string{"tempdir=/etc"}, "Failure: Suspicious temporary directory name '/etc'"},
		{[]string{"tempdir=" + td.tempbase + "/../etc"}, "Failure: Suspicious temporary directory name '" + td.tempbase + "/../etc'"},
		{[]string{"tempdir=" + td.tempbase}, "Failure: Suspicious temporary directory name '" + td.tempbase + "'"},
		{[]string{"tempdir=" + good, "mail_file=/etc/passwd"}, "Failure: suspicious mail_file name '/etc/passwd': not below TEMPBASE or MYHOME"},
		{[]string{"tempdir=" + link}, "Failure: File " + link + "/email.txt is not a plain file"},
		{[]string{"tempdir=" + td.tempbase + "/amavis-missing"}, "Failure: File " + td.tempbase + "/amavis-missing/email.txt does not exist"},
		{[]string{}, "Failure: missing 'tempdir' field"},
	} {
		resp := ask(t, r, c, append([]string{"request=AM.PDP", "sender=<a@example.org>", "recipient=<x@example.com>"}, tc.attrs...)...)
		want := "setreply=450 4.5.0 " + tc.why
		if !hasLine(resp, want) || !hasLine(resp, "return_value=tempfail") || !hasLine(resp, "exit_code=75") {
			t.Errorf("%v: response %q, want %q, tempfail, 75", tc.attrs, resp, want)
		}
	}
	resp := ask(t, r, c, "request=AM.PDP", "sender=<a@example.org>", "tempdir="+good)
	if !hasLine(resp, "setreply=450 4.5.0 Failure: Incomplete request") {
		t.Errorf("no recipient: %q", resp)
	}
	if _, err := os.Stat(filepath.Join(good, "email.txt")); err != nil {
		t.Errorf("a refused request removed the client's file: %v", err)
	}
	if !strings.Contains(td.log.String(), "(!)AM.PDP: File "+link+"/email.txt is not a plain file") {
		t.Errorf("the log does not say why the link was refused")
	}
}

// A directory holding QUARANTINEDIR or TEMPBASE is never taken (Debian's are below MYHOME), so
// that the server cannot be asked to remove the quarantine or every session's spool with it.
func TestAMPDPRefusesQuarantineDir(t *testing.T) {
	cfg := conf.Default()
	cfg.MYHOME, cfg.TEMPBASE, cfg.QUARANTINEDIR = "/var/lib/amavis", "/var/lib/amavis/tmp", "/var/lib/amavis/virusmails"
	for dir, ok := range map[string]bool{
		"/var/lib/amavis/virusmails":   false,
		"/var/lib/amavis/tmp":          false,
		"/var/lib/amavis/tmp/amavis-1": true,
		"/var/lib/amavis/af123":        true,
	} {
		_, err := parseAMPDP(cfg, ampdp.Request{{Name: "recipient", Value: "<x@example.com>"}, {Name: "tempdir", Value: dir}})
		if (err == nil) != ok {
			t.Errorf("tempdir %s: %v, want accepted %v", dir, err, ok)
		}
	}
}

// EICAR for a local recipient who loves viruses: the response changes the Subject in place
// (chgheader, the ***INFECTED*** tag), deletes the incoming X-Virus-Scanned
// (remove_existing_x_scanned_headers) and inserts ours and the alert; the client delivers.
// With delivery_care_of=server we forward it ourselves, and the client is told to discard
// its copy (amavis's "already handled here").
func TestAMPDPHeaderEditsAndServerDelivery(t *testing.T) {
	clamd := testenv.StartClamd(t)
	h := hop(t, smtptest.Options{})
	sock := filepath.Join(t.TempDir(), "amavisd.sock")
	td := startDaemon(t, h.Addr, `unix_socketname = "`+sock+`"
interface_policy = { SOCK = "AM.PDP-SOCK" }
remove_existing_x_scanned_headers = true
virus_lovers_maps = [["acl", ["lover@example.com"]]]
[[av_scanners]]
name = "ClamAV-clamd"
type = "clamd"
sockets = ["`+clamd.Socket+`"]
query = "INSTREAM"
[policy_bank."AM.PDP-SOCK"]
protocol = "AM.PDP"
`)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	msg := "X-Virus-Scanned: by someone else\r\n" + mimeMessage("text/plain", testenv.EICAR+"\r\n")
	dir := spoolFor(t, td, "amavis-milter-Virus001", msg)
	resp := ask(t, r, c, "request=AM.PDP", "sender=<bob@sender.example.org>", "recipient=<lover@example.com>", "tempdir="+dir)
	for _, want := range []string{
		"delheader=1 x-virus-scanned",
		"chgheader=1 subject ***INFECTED*** test",
		"insheader=0 X-Amavis-Alert INFECTED, message contains virus:\n " + clamd.VirusName, // folded at 78
		"insheader=0 X-Virus-Scanned amavis at example.com",
		"return_value=continue",
		"exit_code=0",
	} {
		if !hasLine(resp, want) {
			t.Errorf("response lacks %q:\n%s", want, strings.Join(resp, "\n"))
		}
	}
	if len(h.Msgs()) != 0 {
		t.Errorf("delivery_care_of=client, but we forwarded %d messages", len(h.Msgs()))
	}

	dir = spoolFor(t, td, "amavis-milter-Clean002", mimeMessage("text/plain", "clean\r\n"))
	resp = ask(t, r, c, "request=AM.PDP", "sender=<bob@sender.example.org>", "recipient=<x@example.com>", "tempdir="+dir,
		"delivery_care_of=server")
	if !hasLine(resp, "return_value=discard") || !hasLine(resp, "exit_code=99") || !strings.HasPrefix(strings.Join(resp, "\n"), "version_server=2") {
		t.Errorf("delivery_care_of=server: %q", resp)
	}
	msgs := h.Msgs()
	if len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("X-Virus-Scanned: amavis at example.com\r\n")) ||
		!bytes.Contains(msgs[0].Data, []byte("(amavis, unix socket)")) {
		t.Errorf("delivery_care_of=server: the next hop got %d messages: %+v", len(msgs), msgs)
	}
}

// A Unix socket another daemon still answers on is not taken over (Debian's Perl amavisd
// listens on the same path); one left by a daemon that is gone is replaced.
func TestUnixSocketInUse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "amavisd.sock")
	other, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Parse("t.toml", []byte("MYHOME = \""+t.TempDir()+"\"\ninet_socket_port = \"127.0.0.1:0\"\nunix_socketname = \""+sock+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, NewWriterLog(&syncBuffer{}, "mx.example.com", NoOverride))
	if err := d.Listen(); err == nil || !strings.Contains(err.Error(), "another daemon listens there") {
		t.Errorf("Listen with the socket in use: %v", err)
	}
	if c, err := net.Dial("unix", sock); err != nil {
		t.Errorf("the other daemon lost its socket: %v", err)
	} else {
		c.Close()
	}
	// gone without removing its socket file
	other.(*net.UnixListener).SetUnlinkOnClose(false)
	other.Close()
	d = New(cfg, NewWriterLog(&syncBuffer{}, "mx.example.com", NoOverride))
	if err := d.Listen(); err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	d.closeListeners()
}

// AM.PDP content checks on an inet socket whose policy bank says protocol = "AM.PDP", as on
// the Unix socket.
func TestAMPDPOnInetSocket(t *testing.T) {
	port := testenv.FreePort(t)
	td := startDaemon(t, "", fmt.Sprintf(`inet_socket_port = ["127.0.0.1:0", "127.0.0.1:%d"]
interface_policy = { "%d" = "AMPDP-INET" }
[policy_bank.AMPDP-INET]
protocol = "AM.PDP"
`, port, port))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	dir := spoolFor(t, td, "amavis-inet1", mimeMessage("text/plain", "hello\r\n"))
	resp := ask(t, bufio.NewReader(c), c, "request=AM.PDP", "sender=<a@example.org>", "recipient=<x@example.com>",
		"tempdir="+dir, "client_address=198.51.100.7")
	if !hasLine(resp, "return_value=continue") || !hasLine(resp, "exit_code=0") {
		t.Errorf("response %q", resp)
	}
	if !strings.Contains(td.log.String(), "Passed CLEAN {RelayedInbound}, AMPDP-INET [198.51.100.7] [198.51.100.7] <a@example.org> -> <x@example.com>") {
		t.Errorf("no Passed line of the AMPDP-INET bank:\n%s", td.log.String())
	}
}
