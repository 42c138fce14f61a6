package testenv

import (
	"io"
	"net"
	"testing"
	"time"
)

// FaultServer is a loopback TCP server for fault injection in place of a scanner or spam
// engine: on each connection it reads what the client sends until the client has been quiet
// for 100 ms or has shut its side, then writes reply and closes. Reading the whole request
// first keeps the close from resetting the connection under a client still writing. With
// reply "" it answers nothing: it reads until the client shuts its side or gives up, and
// closes. It returns its address and stops when the test ends.
func FaultServer(t testing.TB, reply string) string {
	t.Helper()
	return faultServer(t, func(c net.Conn, _ <-chan struct{}) {
		if reply == "" {
			io.Copy(io.Discard, c)
			return
		}
		buf := make([]byte, 64<<10)
		for {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Read(buf); err != nil { // quiet, or the client shut its side
				break
			}
		}
		c.Write([]byte(reply))
	})
}

// HangingServer is a FaultServer that never answers nor closes: a client that shut its side
// still waits, until its own timeout or the end of the test.
func HangingServer(t testing.TB) string {
	t.Helper()
	return faultServer(t, func(c net.Conn, done <-chan struct{}) {
		io.Copy(io.Discard, c)
		<-done
	})
}

func faultServer(t testing.TB, serve func(c net.Conn, done <-chan struct{})) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); close(done) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, done)
			}()
		}
	}()
	return l.Addr().String()
}
