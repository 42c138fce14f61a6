package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeShowsContribSnippets: README's "Postfix integration" section
// shows the files the harness runs, line for line.
func TestReadmeShowsContribSnippets(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Postfix integration\n")
	if !ok {
		t.Fatal(`README.md has no "## Postfix integration" section`)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	for _, name := range []string{"main.cf", "master.cf.lmtp", "master.cf.smtp", "master.cf.reinject", "master.cf.proxy"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "contrib", "postfix", name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(section, strings.TrimRight(string(b), "\n")) {
			t.Errorf("README's Postfix integration section does not show contrib/postfix/%s as it is", name)
		}
	}
}
