// Command floorfilter is the benchmark's floor: a content filter that does only the I/O of ours
// for each message, measured like the real filters. Per message it takes the transaction over
// SMTP, writes the message to a file of its own in TEMPBASE, asks clamd to CONTSCAN that
// directory on a new connection (clamd takes one scan per connection), forwards the file to
// the next hop over a connection kept per session (MAIL, RCPT and DATA pipelined) and answers
// only after the next hop has accepted it, as amavis does. A message clamd reports is
// discarded ("250 2.7.0 Ok, discarded"), so the benchmark's EICAR check holds for it.
//
// With -parts it also decodes the message's MIME leaves into parts/ beside the message (Go's
// mime/multipart, base64 and quoted-printable), so that clamd scans the raw message and its
// decoded parts as ours does: the plainest filter with that safety net.
//
// It checks no header or file name, adds no header, keeps no log and no quarantine.
// docs/performance.md reads its figures against ours. Not a filter to run: no limits, no ACL
// beyond the loopback address it is given.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"time"
)

var (
	listen    = flag.String("listen", "127.0.0.1:10024", "address to take mail on (loopback)")
	nextHop   = flag.String("next", "127.0.0.1:10025", "the next hop's SMTP address")
	clamdSock = flag.String("clamd", "/run/clamav/clamd.ctl", "clamd's unix socket")
	tempBase  = flag.String("tempbase", os.TempDir(), "where each session's message directory is made")
	withParts = flag.Bool("parts", false, "also decode the MIME leaves into parts/ for clamd to scan")
)

const timeout = 5 * time.Minute

func main() {
	flag.Parse()
	if host, _, err := net.SplitHostPort(*listen); err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("floorfilter: -listen %q: a loopback address is required", *listen)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			if err := serve(c); err != nil {
				log.Print(err)
			}
		}()
	}
}

// serve runs one inbound session. Each session has one message directory, as each amavis
// child has one, and one connection to the next hop, opened at its first message.
func serve(c net.Conn) error {
	defer c.Close()
	in := &conn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 4<<10)}
	dir, err := os.MkdirTemp(*tempBase, "floor")
	if err != nil {
		in.reply("421 4.3.0 floor: " + err.Error())
		return err
	}
	defer os.RemoveAll(dir)
	var out *conn
	defer func() {
		if out != nil {
			out.c.Close()
		}
	}()
	var from string
	var rcpts []string
	if err := in.reply("220 floor ESMTP"); err != nil {
		return err
	}
	for {
		line, err := in.line()
		if err != nil {
			return err
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			err = in.reply("250-floor\r\n250 PIPELINING")
		case "MAIL":
			from, rcpts = arg, rcpts[:0]
			err = in.reply("250 2.1.0 Ok")
		case "RCPT":
			rcpts = append(rcpts, arg)
			err = in.reply("250 2.1.5 Ok")
		case "RSET":
			from, rcpts = "", rcpts[:0]
			err = in.reply("250 2.0.0 Ok")
		case "QUIT":
			in.reply("221 2.0.0 Bye")
			return nil
		case "DATA":
			if len(rcpts) == 0 {
				err = in.reply("503 5.5.1 Error: need RCPT command")
				break
			}
			if err = in.reply("354 End data with <CR><LF>.<CR><LF>"); err != nil {
				return err
			}
			var answer string
			answer, out, err = message(in, out, dir, from, rcpts)
			if err != nil {
				return err
			}
			err = in.reply(answer)
		default:
			err = in.reply("502 5.5.2 Error: command not recognized")
		}
		if err != nil {
			return err
		}
	}
}

// message takes one message after DATA's 354 and returns the reply to give: it is spooled,
// scanned and forwarded on out (dialled when nil; a connection the next hop has closed fails its
// message with a 451 and is dialled again for the next). An error means the inbound session
// is lost.
func message(in, out *conn, dir, from string, rcpts []string) (string, *conn, error) {
	file := filepath.Join(dir, "email.txt")
	defer os.Remove(file)
	stored, err := spool(in, file)
	if err != nil {
		return "", out, err
	}
	if stored != nil {
		return "451 4.3.0 floor: spool: " + stored.Error(), out, nil
	}
	if *withParts {
		parts := filepath.Join(dir, "parts")
		defer removeParts(parts)
		if err := writeParts(file, parts); err != nil {
			return "451 4.5.0 floor: decoding: " + err.Error(), out, nil
		}
	}
	verdict, err := scan(dir)
	if err != nil {
		return "451 4.5.0 floor: clamd: " + err.Error(), out, nil
	}
	if strings.Contains(verdict, " FOUND") {
		return "250 2.7.0 Ok, discarded, id=floor - INFECTED", out, nil
	}
	if out == nil {
		if out, err = dialNext(); err != nil {
			return "451 4.4.1 floor: next hop: " + err.Error(), nil, nil
		}
	}
	reply, err := forward(out, file, from, rcpts)
	if err != nil {
		out.c.Close()
		return "451 4.4.2 floor: next hop: " + err.Error(), nil, nil
	}
	return reply, out, nil
}

// spool writes the data up to the lone dot to file, dots unstuffed, CRLF kept. The data is read
// to its end whatever happens to the file: stored says why the file is not whole (the client
// gets a 451), lost that the session cannot go on.
func spool(in *conn, file string) (stored, lost error) {
	f, stored := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	var w *bufio.Writer
	if stored == nil {
		defer f.Close()
		w = bufio.NewWriterSize(f, 64<<10)
	}
	atLineStart := true
	for {
		in.c.SetReadDeadline(time.Now().Add(timeout))
		chunk, err := in.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return stored, err
		}
		if atLineStart && chunk[0] == '.' {
			if string(chunk) == ".\r\n" {
				break
			}
			chunk = chunk[1:]
		}
		if stored == nil {
			_, stored = w.Write(chunk)
		}
		atLineStart = err == nil
	}
	if stored == nil {
		stored = w.Flush()
	}
	return stored, nil
}

// writeParts decodes each MIME leaf of the message in file into a file p001, p002, ... of
// the directory parts.
func writeParts(file, parts string) error {
	if err := os.Mkdir(parts, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	msg, err := mail.ReadMessage(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		return err
	}
	n := 0
	return writeLeaves(textproto.MIMEHeader(msg.Header), msg.Body, parts, &n)
}

func writeLeaves(h textproto.MIMEHeader, body io.Reader, parts string, n *int) error {
	media, params, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if strings.HasPrefix(media, "multipart/") && params["boundary"] != "" {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := writeLeaves(p.Header, p, parts, n); err != nil {
				return err
			}
		}
	}
	*n++
	out, err := os.OpenFile(filepath.Join(parts, fmt.Sprintf("p%03d", *n)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	}
	if _, err := io.Copy(out, body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// removeParts empties parts/ after a message; the directory stays for the session's next.
func removeParts(parts string) {
	ents, _ := os.ReadDir(parts)
	for _, e := range ents {
		os.Remove(filepath.Join(parts, e.Name()))
	}
}

// scan asks clamd to CONTSCAN dir and returns its answer.
func scan(dir string) (string, error) {
	c, err := net.DialTimeout("unix", *clamdSock, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "CONTSCAN "+dir+"\n"); err != nil {
		return "", err
	}
	answer, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	if bytes.Contains(answer, []byte(" ERROR")) {
		return "", fmt.Errorf("%s", bytes.TrimSpace(answer))
	}
	return string(answer), nil
}

func dialNext() (*conn, error) {
	c, err := net.DialTimeout("tcp", *nextHop, timeout)
	if err != nil {
		return nil, err
	}
	out := &conn{c: c, r: bufio.NewReaderSize(c, 4<<10), w: bufio.NewWriterSize(c, 64<<10)}
	if _, err := out.expect(220); err != nil {
		c.Close()
		return nil, err
	}
	out.w.WriteString("EHLO floor\r\n")
	if _, err := out.expect(250); err != nil {
		c.Close()
		return nil, err
	}
	return out, nil
}

// forward sends the message in file on out, MAIL, RCPT and DATA in one batch (the next hop is
// smtp-sink or Postfix, which offer PIPELINING), and returns the reply to give the client.
func forward(out *conn, file, from string, rcpts []string) (string, error) {
	out.c.SetDeadline(time.Now().Add(timeout))
	out.w.WriteString("MAIL " + from + "\r\n")
	for _, r := range rcpts {
		out.w.WriteString("RCPT " + r + "\r\n")
	}
	out.w.WriteString("DATA\r\n")
	if _, err := out.expect(250); err != nil {
		return "", err
	}
	for range rcpts {
		if _, err := out.expect(250); err != nil {
			return "", err
		}
	}
	if _, err := out.expect(354); err != nil {
		return "", err
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	atLineStart := true
	for {
		chunk, err := r.ReadSlice('\n')
		if len(chunk) > 0 {
			if atLineStart && chunk[0] == '.' {
				out.w.WriteByte('.')
			}
			out.w.Write(chunk)
			atLineStart = chunk[len(chunk)-1] == '\n'
		}
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	if !atLineStart {
		out.w.WriteString("\r\n")
	}
	out.w.WriteString(".\r\n")
	reply, err := out.expect(250)
	if err != nil {
		return "", err
	}
	return "250 2.0.0 from floor: " + reply, nil
}

// conn is one side of an SMTP dialogue.
type conn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func (c *conn) reply(text string) error {
	c.c.SetWriteDeadline(time.Now().Add(timeout))
	c.w.WriteString(text + "\r\n")
	return c.w.Flush()
}

func (c *conn) line() (string, error) {
	c.c.SetReadDeadline(time.Now().Add(timeout))
	line, err := c.r.ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// expect flushes what was written, reads one reply, possibly of several lines, and returns
// its last line; a code other than want is an error.
func (c *conn) expect(want int) (string, error) {
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	for {
		line, err := c.line()
		if err != nil {
			return "", err
		}
		if len(line) < 4 || line[3] != '-' {
			if !strings.HasPrefix(line, fmt.Sprint(want)) {
				return "", fmt.Errorf("got %q, want %d", line, want)
			}
			return line, nil
		}
	}
}
