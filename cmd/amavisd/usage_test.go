package main

import (
	"flag"
	"os"
	"os/exec"
	"strings"
	"testing"
)

var updateMan = flag.Bool("update", false, "rewrite docs/amavisd.8 from usage.go")

// TestManPage: docs/amavisd.8 is what usage.go generates, so the man page and `amavisd -h` say
// the same; man(1) renders it with every option and verb.
func TestManPage(t *testing.T) {
	const path = "../../docs/amavisd.8"
	if *updateMan {
		if err := os.WriteFile(path, []byte(manPage()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != manPage() {
		t.Fatalf("%s is out of date with usage.go; run: go test ./cmd/amavisd -run TestManPage -update", path)
	}
	help, _ := exec.Command(amavisdBin, "-h").CombinedOutput()
	man, err := exec.Command("man", "-l", "-P", "cat", path).Output()
	if err != nil {
		t.Skipf("man cannot render %s: %v", path, err)
	}
	text := strings.Join(strings.Fields(string(man)), " ")
	for _, o := range cmdOptions {
		if !strings.Contains(string(help), "-"+o.flag+" ") {
			t.Errorf("amavisd -h lacks -%s:\n%s", o.flag, help)
		}
		if !strings.Contains(text, strings.Join(strings.Fields(o.text), " ")) {
			t.Errorf("the man page lacks -%s's text %q", o.flag, o.text)
		}
	}
	for _, v := range verbs {
		if !strings.Contains(string(help), v.name) || !strings.Contains(text, strings.Join(strings.Fields(v.text), " ")) {
			t.Errorf("verb %s: missing from -h or the man page", v.name)
		}
	}
}
