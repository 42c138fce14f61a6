package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a program the bench started, in its own process group so that
// its helpers can be stopped with it.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	once   sync.Once
}

// start runs argv with output to logPath.
func start(name, logPath string, argv ...string) (*process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits; after the grace period the whole process
// group (only processes this program started) gets SIGKILL.
func (p *process) stop(grace time.Duration) {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			syscall.Kill(-p.pid(), syscall.SIGKILL)
			<-p.exited
		}
		// Children left behind by an orderly master would keep ports busy.
		syscall.Kill(-p.pid(), syscall.SIGKILL)
	})
}

// tail returns the end of the process's log, for error messages.
func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitGreeting waits until addr answers with a 220 greeting, the sign that
// a server is ready to take a session.
func waitGreeting(p *process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during start-up:\n%s", p.name, p.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			if strings.HasPrefix(line, "220") {
				io.WriteString(c, "QUIT\r\n")
				c.Close()
				return nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s gave no 220 greeting on %s within %v:\n%s", p.name, addr, timeout, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clamd is a private clamd whose database holds only the EICAR signature.
type clamd struct {
	*process
	socket string
	addr   string
}

// startClamd starts clamd in dir; threads bounds its scanning threads.
func startClamd(dir string, threads int) (*clamd, error) {
	db := filepath.Join(dir, "clamdb")
	if err := os.MkdirAll(db, 0o755); err != nil {
		return nil, err
	}
	ndb := "Eicar-Test-Signature:0:*:" + hex.EncodeToString([]byte(eicar)) + "\n"
	if err := os.WriteFile(filepath.Join(db, "eicar.ndb"), []byte(ndb), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &clamd{socket: filepath.Join(dir, "clamd.sock"), addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	conf := filepath.Join(dir, "clamd.conf")
	// No User line: clamd stays root and can read both daemons' temporary
	// directories, as the Debian clamd (in group amavis) can in production.
	lines := []string{
		"DatabaseDirectory " + db,
		"LocalSocket " + c.socket,
		"FixStaleSocket yes",
		"TCPSocket " + strconv.Itoa(port),
		"TCPAddr 127.0.0.1",
		"Foreground yes",
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"LogClean no",
		"Bytecode no",
		"DetectPUA no",
		"SelfCheck 0",
		"MaxThreads " + strconv.Itoa(threads),
		"MaxConnectionQueueLength 200",
		"StreamMaxLength 25M",
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("clamd")
	if err != nil {
		bin = "/usr/sbin/clamd"
	}
	p, err := start("clamd", filepath.Join(dir, "clamd.out"), bin, "--foreground", "--config-file="+conf)
	if err != nil {
		return nil, err
	}
	c.process = p
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if reply, err := clamdCommand(c.socket, "PING"); err == nil && reply == "PONG" {
			break
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("clamd exited during start-up:\n%s", p.tail())
		default:
		}
		if time.Now().After(deadline) {
			p.stop(5 * time.Second)
			return nil, fmt.Errorf("clamd gave no PONG within 60s:\n%s", p.tail())
		}
	}
	return c, nil
}

func (c *clamd) version() string {
	v, _ := clamdCommand(c.socket, "VERSION")
	return v
}

// clamdCommand sends one command on the unix socket and returns the reply.
func clamdCommand(socket, cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "n"+cmd+"\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// sink is Postfix's smtp-sink as the next hop of both filters and the end
// of the ceiling measurement. It counts the messages it received.
type sink struct {
	*process
	addr string

	mu    sync.Mutex
	count int
}

func startSink(dir string) (*sink, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &sink{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		return nil, fmt.Errorf("smtp-sink (package postfix) not found: %v", err)
	}
	// -c prints "sess=N quit=N mesg=N" counters separated by CR; they go
	// through a pipe to count, and stderr goes to the log.
	f, err := os.Create(filepath.Join(dir, "smtp-sink.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-u", "nobody", "-c", s.addr, "1024")
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting smtp-sink: %v", err)
	}
	s.process = &process{name: "smtp-sink", cmd: cmd, log: f.Name(), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Split(splitCR)
		for sc.Scan() {
			if i := bytes.LastIndex(sc.Bytes(), []byte("mesg=")); i >= 0 {
				if n, err := strconv.Atoi(string(sc.Bytes()[i+5:])); err == nil {
					s.mu.Lock()
					s.count = n
					s.mu.Unlock()
				}
			}
		}
		cmd.Wait()
		f.Close()
		close(s.exited)
	}()
	return s, waitGreeting(s.process, s.addr, 10*time.Second)
}

// messages returns how many messages the sink has received so far.
func (s *sink) messages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// waitMessages waits until the sink has counted at least n messages, and
// returns the count; the counters arrive through a pipe slightly late.
func (s *sink) waitMessages(n int) int {
	deadline := time.Now().Add(2 * time.Second)
	for s.messages() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return s.settled()
}

// settled returns the count once it has not changed for 200 ms (at most
// after 3 s): every message of a finished run has reached the sink, but
// its counter line may still be in the pipe.
func (s *sink) settled() int {
	last, since := s.messages(), time.Now()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		if n := s.messages(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= 200*time.Millisecond {
			break
		}
	}
	return last
}

// splitCR splits smtp-sink's counter output, which ends each line with CR.
func splitCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
