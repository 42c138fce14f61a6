package sqldb

import (
	"os"
	"sync"
	"testing"

	"amavisgo/internal/testenv"
)

// One PostgreSQL and one MariaDB for the package's tests, started on first use.
var (
	servers   = map[string]*testenv.SQLServer{}
	serversMu sync.Mutex
)

func server(t *testing.T, kind string) *testenv.SQLServer {
	t.Helper()
	serversMu.Lock()
	defer serversMu.Unlock()
	if s := servers[kind]; s != nil {
		return s
	}
	start := testenv.StartPostgres
	if kind == "mysql" {
		start = testenv.StartMariaDB
	}
	s, err := start()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	servers[kind] = s
	return s
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range servers {
		s.Stop()
	}
	os.Exit(code)
}
