package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
)

// Ports for servers a test configures before they bind (Postfix, clamd, the daemon under test)
// come from below the kernel's ephemeral range (32768-60999 by default), from a block of this
// process's own. A port the kernel gives to a bind on :0 or to an outgoing connection can then
// never be one that a test picked and has not bound yet, and the test processes that go test
// runs in parallel take different blocks. Each port is checked free before it is handed out.
const (
	portRangeLow  = 20000
	portBlockSize = 400
	portBlocks    = 30 // 20000-31999
)

var nextPort struct {
	sync.Mutex
	n int
}

// FreePort returns a loopback TCP port that is free and that this test process has not
// handed out recently.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}

func freePort() (int, error) {
	nextPort.Lock()
	defer nextPort.Unlock()
	base := portRangeLow + os.Getpid()%portBlocks*portBlockSize
	for range portBlockSize {
		port := base + nextPort.n%portBlockSize
		nextPort.n++
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use: by a server of this process, or of another in the same block
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free loopback port in this process's block")
}
