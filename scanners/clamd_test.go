package scanners

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"amavisgo/internal/testenv"
)

// debianClamd is Debian's clamd entry (15-av_scanners) pointed at our clamd.
func debianClamd(socket string) Entry {
	return Entry{
		Name:            "ClamAV-clamd",
		Sockets:         []string{socket},
		Query:           "CONTSCAN {}\n",
		CleanPattern:    `\bOK$`,
		InfectedPattern: `\bFOUND$`,
		NamesPattern:    `^.*?: (?!Infected Archive)(.*) FOUND$`,
	}
}

func TestClamdMessages(t *testing.T) {
	c := testenv.StartClamd(t)
	entries := map[string]Entry{
		"CONTSCAN unix (Debian entry)": debianClamd(c.Socket),
		"MULTISCAN tcp":                {Name: "clamd-multi", Sockets: []string{c.TCPAddr}, Query: "MULTISCAN {}"},
		"INSTREAM tcp":                 {Name: "clamd-stream", Sockets: []string{c.TCPAddr}, Query: "INSTREAM"},
		"amavis clamd: prefix, unix":   {Name: "clamd-stream", Sockets: []string{"clamd:" + c.Socket}, Query: "*"},
		"default query, unix":          {Name: "clamd-auto", Sockets: []string{c.Socket}},
	}
	for ename, e := range entries {
		set, err := NewSet([]Entry{e}, nil, Options{})
		if err != nil {
			t.Fatalf("%s: %v", ename, err)
		}
		for _, mc := range messageCases(t) {
			t.Run(ename+"/"+mc.name, func(t *testing.T) {
				rep := set.Scan(context.Background(), msgDir(t, mc.files))
				if rep.Failed || len(rep.Engines) != 1 || rep.Engines[0].Err != nil {
					t.Fatalf("scan failed: %+v", rep)
				}
				if len(mc.infected) == 0 {
					if rep.Infected || rep.Viruses != nil || rep.Detectors != nil {
						t.Errorf("clean message reported %+v", rep)
					}
					// CONTSCAN/MULTISCAN name the directory, INSTREAM the raw message.
					if rep.Output != ".: OK\n" && rep.Output != "email.txt: OK\n" {
						t.Errorf("clean Output = %q", rep.Output)
					}
					return
				}
				if !rep.Infected || !slices.Equal(rep.Viruses, []string{c.VirusName}) || !slices.Equal(rep.Detectors, []string{e.Name}) {
					t.Errorf("got Infected=%v Viruses=%q Detectors=%q, want %q by %q", rep.Infected, rep.Viruses, rep.Detectors, c.VirusName, e.Name)
				}
				if got, want := sortedLines(rep.Output), foundLines(mc.infected, c.VirusName); got != want {
					t.Errorf("Output:\n%s\nwant:\n%s", got, want)
				}
			})
		}
	}
}

func TestClamdPingVersion(t *testing.T) {
	c := testenv.StartClamd(t)
	for _, addr := range []string{c.Socket, c.TCPAddr} {
		cl, err := NewClamd([]string{addr})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := cl.Ping(ctx); err != nil {
			t.Errorf("%s: Ping: %v", addr, err)
		}
		if v, err := cl.Version(ctx); err != nil || v != c.Version {
			t.Errorf("%s: Version = %q, %v; want %q", addr, v, err, c.Version)
		}
		line, err := cl.InStream(ctx, strings.NewReader(testenv.EICAR))
		if want := "stream: " + c.VirusName + " FOUND"; err != nil || line != want {
			t.Errorf("%s: InStream = %q, %v; want %q", addr, line, err, want)
		}
		cancel()
	}
}

func TestClamdInstreamSizeLimit(t *testing.T) {
	c := testenv.StartClamd(t, "StreamMaxLength 1K")
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	cl, _ := NewClamd([]string{c.TCPAddr})
	_, err := cl.InStream(context.Background(), bytes.NewReader(big))
	if !errors.Is(err, ErrClamdReply) || !strings.Contains(err.Error(), "INSTREAM size limit exceeded") {
		t.Fatalf("err = %v; want clamd's INSTREAM size limit exceeded", err)
	}

	set, _ := NewSet([]Entry{{Name: "clamd", Sockets: []string{c.TCPAddr}, Query: "INSTREAM"}}, nil, Options{})
	rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"email.txt": big}))
	if !rep.Failed || rep.FailReason != FailAllFailed || !strings.Contains(rep.Engines[0].Err.Error(), "INSTREAM size limit exceeded") {
		t.Errorf("Scan = %+v; want failure naming the size limit", rep)
	}
}

// deadAddr is a loopback port nobody listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestClamdDeadlineOnHungServer(t *testing.T) {
	hung := testenv.FaultServer(t, "")
	for _, query := range []string{"CONTSCAN {}", "INSTREAM"} {
		set, _ := NewSet([]Entry{{Name: "hung", Sockets: []string{hung}, Query: query, Timeout: 300 * time.Millisecond}}, nil, Options{})
		dir := msgDir(t, map[string][]byte{"email.txt": []byte("Subject: x\n\nhello\n")})
		start := time.Now()
		rep := set.Scan(context.Background(), dir)
		took := time.Since(start)
		if !rep.Failed || !errors.Is(rep.Engines[0].Err, context.DeadlineExceeded) {
			t.Errorf("%s: Scan = %+v; want a deadline failure", query, rep)
		}
		if took < 300*time.Millisecond || took > 1500*time.Millisecond {
			t.Errorf("%s: scan took %v; want the 300ms deadline to end it", query, took)
		}
	}

	cl, _ := NewClamd([]string{hung})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := cl.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping on a hung clamd: %v; want DeadlineExceeded", err)
	}
}

func TestClamdPoolFailover(t *testing.T) {
	c := testenv.StartClamd(t)
	deadUnix := filepath.Join(t.TempDir(), "nothing.sock")
	for _, pool := range [][]string{
		{deadAddr(t), c.TCPAddr},
		{deadUnix, c.Socket},
		{testenv.FaultServer(t, ""), c.TCPAddr}, // the first answers never: its share of the deadline ends
	} {
		set, _ := NewSet([]Entry{{Name: "pool", Sockets: pool, Query: "INSTREAM", Timeout: 2 * time.Second}}, nil, Options{})
		for i := range 3 { // rotation starts at each address in turn
			rep := set.Scan(context.Background(), msgDir(t, map[string][]byte{"parts/p001": []byte(testenv.EICAR)}))
			if rep.Failed || !slices.Equal(rep.Viruses, []string{c.VirusName}) {
				t.Errorf("pool %q, scan %d: %+v", pool, i, rep)
			}
		}
	}
	// Every address dead: the error names each.
	cl, _ := NewClamd([]string{deadAddr(t), deadUnix})
	err := cl.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), deadUnix) {
		t.Errorf("Ping on dead pool: %v", err)
	}
}

func TestClamdStopped(t *testing.T) {
	c := testenv.StartClamd(t)
	set, _ := NewSet([]Entry{debianClamd(c.Socket)}, nil, Options{})
	dir := msgDir(t, map[string][]byte{"parts/p001": []byte(testenv.EICAR)})
	if rep := set.Scan(context.Background(), dir); !rep.Infected {
		t.Fatalf("before stop: %+v", rep)
	}
	c.Stop()
	rep := set.Scan(context.Background(), dir)
	if !rep.Failed || rep.Infected || rep.FailReason != "AV: ALL VIRUS SCANNERS FAILED" {
		t.Fatalf("after stop: %+v", rep)
	}
	// virus_scanners_failure_is_fatal: the MTA gets a tempfail.
	if got, want := rep.TempfailReply("12345-01").String(), "451 4.5.0 Error in processing, id=12345-01, virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED"; got != want {
		t.Errorf("TempfailReply = %q, want %q", got, want)
	}
}

// FuzzClamdReply feeds arbitrary bytes as clamd's reply through the reply
// reader, the INSTREAM verdict and Debian's patterns.
func FuzzClamdReply(f *testing.F) {
	for _, s := range []string{
		"stream: OK\x00", "stream: Eicar-Test-Signature.UNOFFICIAL FOUND\x00",
		"INSTREAM size limit exceeded. ERROR\x00", "/t/p001: Eicar FOUND\x00/t/p002: Infected Archive FOUND\x00",
		"PONG\n", "", "\x00\x00\n", "/t: lstat() failed: No such file or directory. ERROR\x00",
	} {
		f.Add([]byte(s))
	}
	en, err := newEngine(debianClamd("/x"), false, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		server, client := net.Pipe()
		go func() {
			server.Write(reply)
			server.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		client.SetDeadline(time.Now().Add(time.Second))
		lines, err := readReply(ctx, client)
		client.Close()
		if err != nil {
			return
		}
		for _, l := range lines {
			if l == "" || strings.ContainsAny(l, "\x00\n") {
				t.Fatalf("reply line %q", l)
			}
		}
		if v, err := streamVerdict(lines); err == nil && !strings.HasPrefix(v, "stream: ") {
			t.Fatalf("verdict %q", v)
		}
		o, err := en.judge(joinLines(lines), -1)
		if err == nil && o.infected && len(o.names) == 0 {
			t.Fatalf("infected without names: %q", lines)
		}
	})
}
