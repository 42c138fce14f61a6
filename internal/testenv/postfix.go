package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// PostfixHostname is the private Postfix's myhostname; mail to any address
// @PostfixHostname, @localhost or @PostfixDomain ends up in the mailbox file.
const (
	PostfixHostname = "mx.amavisgo.test"
	PostfixDomain   = "example.com"
)

// PostfixOptions says how the private Postfix is wired to the content filter.
type PostfixOptions struct {
	// FilterPort is the port of the content filter under test:
	// content_filter = amavisfeed:[127.0.0.1]:FilterPort. 0 leaves
	// content_filter out, so mail goes straight to the mailbox.
	FilterPort int
	// Transport is "lmtp" (default) or "smtp": which contrib master.cf
	// variant defines amavisfeed.
	Transport string
	// MaxProc is amavisfeed's maxproc (the daemon's max_servers); default 2.
	MaxProc int
	// ForwardPort is the port of the re-injection smtpd; 0 picks a free one.
	ForwardPort int
	// MainCF lines are appended to main.cf (later settings win).
	MainCF []string
	// ProxyFilterPort, when not 0, makes the submission smtpd a before-queue filter
	// (contrib/postfix/master.cf.proxy) with smtpd_proxy_filter = [127.0.0.1]:ProxyFilterPort;
	// FilterPort is then 0.
	ProxyFilterPort int
}

// Postfix is a private Postfix instance started for a test (Postfix 3.7 of
// Debian 12 and later). It coexists with a system Postfix and with other
// private instances: everything that carries state or a lock is its own
// (queue_directory with the pid file and the public/private sockets,
// data_directory with master.lock, maillog_file through its own postlog
// service), it listens only on free 127.0.0.1 ports (inet_interfaces =
// 127.0.0.1), and it is not listed in the default main.cf's
// multi_instance_directories, so postmulti and `postfix stop` of the system
// instance leave it alone. Its daemons run as the system's mail_owner
// (postfix) with setgid_group postdrop, which is why starting it needs root.
type Postfix struct {
	Dir         string // everything of this instance lives below Dir
	ConfigDir   string // main.cf and master.cf (postfix -c ConfigDir)
	SMTPAddr    string // the smtpd clients submit to; it has the content_filter
	ForwardAddr string // the re-injection smtpd (content_filter=), 127.0.0.1:port
	Mailbox     string // every local recipient is delivered into this mbox file
	LogFile     string // Postfix's maillog_file

	bin     string // the postfix command
	postq   string // the postqueue command
	kick    string // the postkick command
	stopped bool
}

// postfixStartTimeout bounds the wait for the smtpds to greet; a start
// takes 0.3 s on an idle machine, 2 s on a busy one.
const postfixStartTimeout = 20 * time.Second

// StartPostfix builds main.cf and master.cf from the repository's
// contrib/postfix snippets plus the base services, starts the instance with
// `postfix -c DIR start` and stops it when the test ends. It needs root (the
// instance's daemons run as the system's mail_owner "postfix").
func StartPostfix(t testing.TB, opt PostfixOptions) *Postfix {
	t.Helper()
	bin := RequireProgram(t, "postfix", "/usr/sbin/postfix")
	postq := RequireProgram(t, "postqueue", "/usr/sbin/postqueue")
	kick := RequireProgram(t, "postkick", "/usr/sbin/postkick")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testenv: a private Postfix needs root")
		}
		t.Skipf("testenv: a private Postfix needs root; skipping")
	}
	if opt.Transport == "" {
		opt.Transport = "lmtp"
	}
	if opt.MaxProc == 0 {
		opt.MaxProc = 2
	}

	// A short directory of our own: t.TempDir() is mode 0700 and deep, but
	// local(8) writes the mailbox as nobody and unix socket paths are short.
	dir, err := os.MkdirTemp("", "postfix")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p := &Postfix{
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "etc"),
		Mailbox:   filepath.Join(dir, "mail", "mailbox"),
		LogFile:   filepath.Join(dir, "maillog"),
		bin:       bin,
		postq:     postq,
		kick:      kick,
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("postfix maillog (tail):\n%s", readTail(p.LogFile))
		}
		os.RemoveAll(dir)
	})
	if err := p.prepareDirs(); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	// Ports are found by listening on :0 and closing; another process may
	// take one before master binds it, so a failed start is retried.
	for attempt := 1; ; attempt++ {
		err = p.start(opt)
		if err == nil {
			return p
		}
		if attempt == 3 {
			t.Fatalf("testenv: starting postfix: %v\nmaillog:\n%s", err, readTail(p.LogFile))
		}
		p.Stop()
		p.stopped = false
	}
}

func (p *Postfix) prepareDirs() error {
	if err := os.Chmod(p.Dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"etc", "spool", "data", "mail"} {
		if err := os.Mkdir(filepath.Join(p.Dir, d), 0o755); err != nil {
			return err
		}
	}
	owner, err := lookupIDs("postfix")
	if err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(p.Dir, "data"), owner[0], owner[1]); err != nil {
		return err
	}
	// The queue's subdirectories as post-install creates them.
	grp, err := user.LookupGroup("postdrop")
	if err != nil {
		return err
	}
	postdrop, _ := strconv.Atoi(grp.Gid)
	for _, q := range []struct {
		name string
		mode os.FileMode
		uid  int
		gid  int
	}{
		{"active", 0o700, owner[0], 0}, {"bounce", 0o700, owner[0], 0}, {"corrupt", 0o700, owner[0], 0},
		{"defer", 0o700, owner[0], 0}, {"deferred", 0o700, owner[0], 0}, {"flush", 0o700, owner[0], 0},
		{"hold", 0o700, owner[0], 0}, {"incoming", 0o700, owner[0], 0}, {"private", 0o700, owner[0], 0},
		{"saved", 0o700, owner[0], 0}, {"trace", 0o700, owner[0], 0}, {"pid", 0o755, 0, 0},
		{"maildrop", 0o730, owner[0], postdrop}, {"public", 0o710, owner[0], postdrop},
	} {
		d := filepath.Join(p.Dir, "spool", q.name)
		if err := os.Mkdir(d, q.mode); err != nil {
			return err
		}
		// Mkdir applies the umask.
		if err := os.Chmod(d, q.mode); err != nil {
			return err
		}
		if err := os.Chown(d, q.uid, q.gid); err != nil {
			return err
		}
	}
	// local(8) delivers to a file named in an alias with default_privs.
	nobody, err := lookupIDs("nobody")
	if err != nil {
		return err
	}
	return os.Chown(filepath.Join(p.Dir, "mail"), nobody[0], nobody[1])
}

func lookupIDs(name string) ([2]int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return [2]int{}, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return [2]int{uid, gid}, nil
}

func (p *Postfix) start(opt PostfixOptions) error {
	smtpPort, err := freePort()
	if err != nil {
		return err
	}
	fwdPort := opt.ForwardPort
	if fwdPort == 0 {
		if fwdPort, err = freePort(); err != nil {
			return err
		}
	}
	p.SMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(smtpPort))
	p.ForwardAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(fwdPort))

	mainCF, masterCF, err := PostfixConfig(p.Dir, opt, smtpPort, fwdPort)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "main.cf"), []byte(mainCF), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "master.cf"), []byte(masterCF), 0o644); err != nil {
		return err
	}
	// With the queue made by prepareDirs, the start script's integrity checks (post-install
	// create-missing, check-warn: 2-3 s of shell per start) only inspect a
	// directory nobody else uses; the quick-start flag, which
	// `postfix quick-stop` leaves behind, makes the script skip them once.
	if err := os.WriteFile(filepath.Join(p.Dir, "spool", "quick-start"), nil, 0o644); err != nil {
		return err
	}
	// Output goes to a file, not a pipe: the start script leaves a
	// postsuper running in the background that would hold a pipe open.
	outPath := filepath.Join(p.Dir, "postfix-start.out")
	out, err := os.Create(outPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, "-c", p.ConfigDir, "start")
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	out.Close()
	if err != nil {
		return fmt.Errorf("postfix start: %v: %s", err, readTail(outPath))
	}
	deadline := time.Now().Add(postfixStartTimeout)
	for _, addr := range []string{p.SMTPAddr, p.ForwardAddr} {
		for {
			if line, err := Greeting(addr); err == nil && strings.HasPrefix(line, "220 ") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no 220 greeting on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Greeting connects to an SMTP server at addr and returns its greeting line.
func Greeting(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	conn.Write([]byte("QUIT\r\n"))
	return line, err
}

// PostfixConfig returns main.cf and master.cf for an instance rooted at dir:
// the base settings and services of a small mail system, then the
// contrib/postfix snippets with the test's ports and maxproc substituted
// (contrib/postfix/README.md lists what is substituted).
func PostfixConfig(dir string, opt PostfixOptions, smtpPort, fwdPort int) (mainCF, masterCF string, err error) {
	contrib, err := contribDir()
	if err != nil {
		return "", "", err
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(contrib, name))
		return string(b), err
	}
	var m strings.Builder
	fmt.Fprintf(&m, `# private test instance generated by internal/testenv/postfix.go
compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = %[2]s
mydomain = amavisgo.test
myorigin = $myhostname
mydestination = $myhostname, localhost, %[3]s
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
biff = no
# Every local recipient is an alias of the one mailbox file.
alias_maps = static:%[1]s/mail/mailbox
alias_database =
owner_request_special = no
local_recipient_maps =
mailbox_size_limit = 0
# Deferred mail waits for the test's flush, so "stays queued" is observable.
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
`, dir, PostfixHostname, PostfixDomain)
	if opt.FilterPort != 0 {
		s, err := read("main.cf")
		if err != nil {
			return "", "", err
		}
		s, err = replaceOnce(s, "[127.0.0.1]:10024", fmt.Sprintf("[127.0.0.1]:%d", opt.FilterPort))
		if err != nil {
			return "", "", fmt.Errorf("contrib/postfix/main.cf: %w", err)
		}
		m.WriteString(s)
	}
	for _, l := range opt.MainCF {
		m.WriteString(l + "\n")
	}

	submission := fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd\n", smtpPort)
	if opt.ProxyFilterPort != 0 {
		proxy, err := read("master.cf.proxy")
		if err != nil {
			return "", "", err
		}
		if proxy, err = replaceOnce(proxy, "\nsmtp      inet  ", fmt.Sprintf("\n127.0.0.1:%d inet  ", smtpPort)); err != nil {
			return "", "", fmt.Errorf("contrib/postfix/master.cf.proxy: %w", err)
		}
		if submission, err = replaceOnce(proxy, "[127.0.0.1]:10024", fmt.Sprintf("[127.0.0.1]:%d", opt.ProxyFilterPort)); err != nil {
			return "", "", fmt.Errorf("contrib/postfix/master.cf.proxy: %w", err)
		}
	}
	var ms strings.Builder
	fmt.Fprintf(&ms, `# private test instance generated by internal/testenv/postfix.go
%s
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, strings.TrimRight(submission, "\n"))
	var feed string
	switch opt.Transport {
	case "lmtp":
		feed, err = read("master.cf.lmtp")
	case "smtp":
		feed, err = read("master.cf.smtp")
	default:
		err = fmt.Errorf("unknown amavisfeed transport %q", opt.Transport)
	}
	if err != nil {
		return "", "", err
	}
	if feed, err = setMaxproc(feed, "amavisfeed", opt.MaxProc); err != nil {
		return "", "", fmt.Errorf("contrib/postfix/master.cf.%s: %w", opt.Transport, err)
	}
	ms.WriteString(feed)
	reinject, err := read("master.cf.reinject")
	if err != nil {
		return "", "", err
	}
	if reinject, err = replaceOnce(reinject, "\n127.0.0.1:10025 ", fmt.Sprintf("\n127.0.0.1:%d ", fwdPort)); err != nil {
		return "", "", fmt.Errorf("contrib/postfix/master.cf.reinject: %w", err)
	}
	ms.WriteString(reinject)
	return m.String(), ms.String(), nil
}

// contribDir finds contrib/postfix by walking up from the working
// directory (go test runs in the package directory).
func contribDir() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		c := filepath.Join(d, "contrib", "postfix")
		if fi, err := os.Stat(filepath.Join(c, "main.cf")); err == nil && !fi.IsDir() {
			return c, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("contrib/postfix not found above the working directory")
		}
		d = parent
	}
}

func replaceOnce(s, old, new string) (string, error) {
	if n := strings.Count(s, old); n != 1 {
		return "", fmt.Errorf("%q occurs %d times, want exactly once", old, n)
	}
	return strings.Replace(s, old, new, 1), nil
}

// setMaxproc sets the 7th column of the master.cf entry named service.
func setMaxproc(cf, service string, maxproc int) (string, error) {
	lines := strings.Split(cf, "\n")
	found := 0
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) < 8 || f[0] != service || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		f[6] = strconv.Itoa(maxproc)
		lines[i] = strings.Join(f, " ")
		found++
	}
	if found != 1 {
		return "", fmt.Errorf("service %s defined %d times, want exactly once", service, found)
	}
	return strings.Join(lines, "\n"), nil
}

// Stop stops the instance and waits until master has exited. It may be
// called more than once. It signals master itself, as `postfix stop` does,
// without that script's one-second polling; after 10 s the whole process
// group gets SIGKILL.
func (p *Postfix) Stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	pid := p.masterPID()
	if pid <= 0 || syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(-pid, syscall.SIGKILL)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *Postfix) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.Dir, "spool", "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Reload makes master re-read main.cf and master.cf (`postfix reload`).
func (p *Postfix) Reload() error {
	if out, err := exec.Command(p.bin, "-c", p.ConfigDir, "reload").CombinedOutput(); err != nil {
		return fmt.Errorf("postfix reload: %v: %s", err, out)
	}
	return nil
}

// SetReinject takes the re-injection smtpd out of master.cf (up=false) or
// puts it back, reloads, and waits until its port refuses or greets: on
// reload master stops a removed service's processes and closes its socket.
func (p *Postfix) SetReinject(t testing.TB, up bool) {
	t.Helper()
	path := filepath.Join(p.ConfigDir, "master.cf")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	const off = "#reinject-off# "
	lines := strings.Split(string(b), "\n")
	in := false
	for i, l := range lines {
		raw := strings.TrimPrefix(l, off)
		if strings.HasPrefix(raw, p.ForwardAddr+" ") {
			in = true
		} else if raw == "" || (raw[0] != ' ' && raw[0] != '\t') {
			in = false
		}
		if in {
			if up {
				lines[i] = raw
			} else {
				lines[i] = off + raw
			}
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := p.Reload(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	deadline := time.Now().Add(postfixStartTimeout)
	for {
		line, err := Greeting(p.ForwardAddr)
		if up && err == nil && strings.HasPrefix(line, "220 ") {
			return
		}
		var opErr *net.OpError
		if !up && errors.As(err, &opErr) && opErr.Op == "dial" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: re-injection smtpd %s still %s after reload (%q, %v)", p.ForwardAddr, map[bool]string{true: "down", false: "up"}[up], line, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Submit sends one message to the instance's smtpd from 127.0.0.1 and
// returns the queue id from Postfix's "250 2.0.0 Ok: queued as ID".
func (p *Postfix) Submit(from string, to []string, msg []byte) (string, error) {
	return p.SubmitFrom("127.0.0.1", from, to, msg)
}

// SubmitFrom is Submit from the loopback address clientIP (any of
// 127.0.0.0/8), so that the original client differs from the address
// Postfix itself uses towards the content filter.
func (p *Postfix) SubmitFrom(clientIP, from string, to []string, msg []byte) (string, error) {
	return sendSMTP(clientIP, p.SMTPAddr, from, to, msg)
}

// sendSMTP is a plain SMTP transaction without STARTTLS (go-smtp's
// SendMail insists on it) and returns the queue id from the DATA reply.
func sendSMTP(clientIP, addr, from string, to []string, msg []byte) (string, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return "", err
	}
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	c.Quit()
	_, id, ok := strings.Cut(resp.StatusText, "queued as ")
	if !ok {
		return "", fmt.Errorf("unexpected reply to DATA: %q", resp.StatusText)
	}
	return strings.TrimSpace(id), nil
}

// MailboxMessage is one message of the mailbox file, as local(8) wrote it.
type MailboxMessage struct {
	FromLine  string // the mbox "From sender date" line
	Header    string // the header block, lines end in "\n"
	Body      []byte // the body as stored: local(8) writes body lines "From ..." as ">From ..."
	MessageID string // the Message-ID field's value, "" if none
}

// HeaderValues returns the unfolded values of all fields named name.
func (m MailboxMessage) HeaderValues(name string) []string {
	var vals []string
	var cur *string
	for _, l := range strings.Split(m.Header, "\n") {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && cur != nil {
			*cur = strings.TrimSpace(*cur + " " + strings.TrimSpace(l))
			continue
		}
		cur = nil
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(k, name) {
			vals = append(vals, strings.TrimSpace(v))
			cur = &vals[len(vals)-1]
		}
	}
	return vals
}

// Messages reads the mailbox file under the same fcntl lock local(8) takes,
// so a message being written is never seen half. A missing file is an
// empty mailbox.
func (p *Postfix) Messages() ([]MailboxMessage, error) {
	f, err := os.Open(p.Mailbox)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, err
	}
	return ParseMbox(buf.Bytes())
}

// ParseMbox splits an mbox file as Postfix's local(8) writes it: each
// message starts with a "From " line and ends with an empty line, and body
// lines starting with "From " are quoted as ">From " (mboxo: not reversible,
// so the body is returned as stored).
func ParseMbox(b []byte) ([]MailboxMessage, error) {
	var msgs []MailboxMessage
	if len(b) == 0 {
		return nil, nil
	}
	if !bytes.HasPrefix(b, []byte("From ")) {
		return nil, errors.New("mbox does not start with a From line")
	}
	for len(b) > 0 {
		end := bytes.Index(b, []byte("\n\nFrom "))
		var chunk []byte
		if end < 0 {
			chunk, b = b, nil
		} else {
			chunk, b = b[:end+2], b[end+2:]
		}
		fromLine, rest, _ := bytes.Cut(chunk, []byte("\n"))
		hdr, body, _ := bytes.Cut(rest, []byte("\n\n"))
		body = bytes.TrimSuffix(body, []byte("\n"))
		m := MailboxMessage{
			FromLine: string(fromLine),
			Header:   string(hdr) + "\n",
			Body:     body,
		}
		if ids := m.HeaderValues("Message-ID"); len(ids) > 0 {
			m.MessageID = ids[0]
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// MessageIDCounts counts the mailbox's messages by Message-ID.
func (p *Postfix) MessageIDCounts() (map[string]int, error) {
	msgs, err := p.Messages()
	if err != nil {
		return nil, err
	}
	n := make(map[string]int, len(msgs))
	for _, m := range msgs {
		n[m.MessageID]++
	}
	return n, nil
}

// WaitMessages waits until the mailbox holds at least n messages and
// returns them; it fails the test after timeout. It polls the maillog for
// local(8)'s "delivered to file" lines and reads the mailbox only when
// there are enough: a reader holding the mailbox lock makes local(8) wait
// deliver_lock_delay (1 s) before it tries again.
func (p *Postfix) WaitMessages(t testing.TB, n int, timeout time.Duration) []MailboxMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for kicked := time.Now(); ; p.kickQmgrEvery(&kicked) {
		if strings.Count(p.Log(), "status=sent (delivered to file: ") >= n {
			msgs, err := p.Messages()
			if err != nil {
				t.Fatalf("testenv: reading mailbox: %v", err)
			}
			if len(msgs) >= n {
				return msgs
			}
		}
		if time.Now().After(deadline) {
			msgs, _ := p.Messages()
			t.Fatalf("testenv: %d of %d messages in the mailbox after %v\nqueue: %s\nmaillog:\n%s",
				len(msgs), n, timeout, p.queueSummary(), readTail(p.LogFile))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// QueuedMessage is one message of `postqueue -j` (Postfix 3.1+ JSON lines).
type QueuedMessage struct {
	QueueName   string `json:"queue_name"` // active, deferred, hold, incoming, maildrop
	QueueID     string `json:"queue_id"`
	ArrivalTime int64  `json:"arrival_time"`
	MessageSize int64  `json:"message_size"`
	Sender      string `json:"sender"`
	Recipients  []struct {
		Address     string `json:"address"`
		DelayReason string `json:"delay_reason"`
	} `json:"recipients"`
}

// Queue lists the instance's queue with `postqueue -j`.
func (p *Postfix) Queue() ([]QueuedMessage, error) {
	cmd := exec.Command(p.postq, "-c", p.ConfigDir, "-j")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("postqueue -j: %v: %s", err, stderr.Bytes())
	}
	return ParseQueueJSON(out)
}

// ParseQueueJSON parses the output of `postqueue -j`: one JSON object per line.
func ParseQueueJSON(out []byte) ([]QueuedMessage, error) {
	var q []QueuedMessage
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m QueuedMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("postqueue -j line %q: %w", line, err)
		}
		q = append(q, m)
	}
	return q, nil
}

// WaitQueued polls the queue until the message with queueID is in the named
// queue (e.g. "deferred") and returns it; it fails the test after timeout.
func (p *Postfix) WaitQueued(t testing.TB, queueID, queueName string, timeout time.Duration) QueuedMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for kicked := time.Now(); ; p.kickQmgrEvery(&kicked) {
		q, err := p.Queue()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		for _, m := range q {
			if m.QueueID == queueID && m.QueueName == queueName {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s not in the %s queue after %v\nqueue: %s\nmaillog:\n%s",
				queueID, queueName, timeout, p.queueSummary(), readTail(p.LogFile))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kickQmgrEvery asks the queue manager, every 2 s of a wait, to scan the incoming queue,
// which starts one if none runs. After a reload the old qmgr may exit with messages it had
// just moved to the active queue; the next qmgr, which puts them back, would otherwise only
// start with the next mail or the 300 s wakeup (seen once: two messages active for 20 s).
// Deferred mail is not touched: that takes a flush.
func (p *Postfix) kickQmgrEvery(last *time.Time) {
	if time.Since(*last) < 2*time.Second {
		return
	}
	*last = time.Now()
	exec.Command(p.kick, "-c", p.ConfigDir, "public", "qmgr", "I").Run()
}

func (p *Postfix) queueSummary() string {
	q, err := p.Queue()
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, m := range q {
		fmt.Fprintf(&b, "%s %s", m.QueueID, m.QueueName)
		for _, r := range m.Recipients {
			fmt.Fprintf(&b, " <%s> %s", r.Address, r.DelayReason)
		}
		b.WriteString("; ")
	}
	if b.Len() == 0 {
		return "empty"
	}
	return b.String()
}

// Flush asks Postfix to deliver all queued mail now (`postqueue -f`), which
// also ends the "dead destination" throttling after connection failures.
func (p *Postfix) Flush() error {
	if out, err := exec.Command(p.postq, "-c", p.ConfigDir, "-f").CombinedOutput(); err != nil {
		return fmt.Errorf("postqueue -f: %v: %s", err, out)
	}
	return nil
}

// Log returns Postfix's whole maillog_file.
func (p *Postfix) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(b)
}

// WaitLog polls the maillog until a line matches re and returns that line;
// it fails the test after timeout.
func (p *Postfix) WaitLog(t testing.TB, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(p.Log(), "\n") {
			if re.MatchString(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: no maillog line matches %s after %v\nmaillog:\n%s", re, timeout, readTail(p.LogFile))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
