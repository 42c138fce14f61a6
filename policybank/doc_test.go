package policybank

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"amavisgo/conf"
)

// Every TOML example of docs/lookup-tables.md loads as a configuration.
func TestDocExamplesLoad(t *testing.T) {
	doc, err := os.ReadFile("../docs/lookup-tables.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"local_domains", "local_domains.acl"} {
		os.WriteFile(filepath.Join(dir, f), []byte(".example.com\n"), 0o644)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 4 {
		t.Fatalf("%d examples", len(blocks))
	}
	for i, b := range blocks {
		text := strings.ReplaceAll(b[1], "/etc/amavis/", dir+"/")
		if _, err := conf.Parse("example.toml", []byte(text)); err != nil {
			t.Errorf("example %d: %v\n%s", i+1, err, text)
		}
	}
	if _, err := conf.Parse("x.toml", []byte(`local_domains_maps = [".example.com"]`)); err == nil {
		t.Error("the refused example loads")
	}
}
