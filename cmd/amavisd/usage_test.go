package main

import (
	"amavisgo/amavis"
	"flag"
	"fmt"
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

// manPage is amavisd(8) in roff, from the same tables as usage.
func manPage() string {
	var b strings.Builder
	esc := func(s string) string {
		s = strings.ReplaceAll(s, `\`, `\e`)
		s = strings.ReplaceAll(s, "-", `\-`)
		if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
			s = `\&` + s
		}
		return s
	}
	fmt.Fprintf(&b, ".\\\" Generated from cmd/amavisd/usage.go: go test ./cmd/amavisd -run TestManPage -update\n")
	fmt.Fprintf(&b, ".TH AMAVISD 8 %q amavisgo \"System Manager's Manual\"\n", amavis.VersionDate)
	b.WriteString(".nh\n.ad l\n") // no hyphenation: paths and setting names stay whole
	b.WriteString(".SH NAME\namavisd \\- amavisgo, an amavisd\\-new compatible content filter for Postfix\n")
	b.WriteString(".SH SYNOPSIS\n.B amavisd\n")
	for _, o := range cmdOptions {
		if o.arg == "" {
			fmt.Fprintf(&b, "[\\fB\\-%s\\fR]\n", o.flag)
		} else {
			fmt.Fprintf(&b, "[\\fB\\-%s\\fR \\fI%s\\fR]\n", o.flag, o.arg)
		}
	}
	b.WriteString("[\\fIVERB\\fR]\n")
	b.WriteString(".SH DESCRIPTION\n" + esc("amavisd checks mail for Postfix as amavisd-new does: Postfix hands each "+
		"message over SMTP or LMTP (content_filter), or amavisd-milter and amavisd-submit ask over AM.PDP; "+
		"the message is decoded, scanned by clamd or command-line virus scanners, checked for banned files "+
		"and bad headers, quarantined and reported as the policy says, and passed back to Postfix through "+
		"forward_method. The configuration is one TOML file whose keys are amavis's variable names.") + "\n")
	b.WriteString(".SH OPTIONS\n")
	for _, o := range cmdOptions {
		if o.arg == "" {
			fmt.Fprintf(&b, ".TP\n.B \\-%s\n", o.flag)
		} else {
			fmt.Fprintf(&b, ".TP\n.BI \\-%s \" %s\"\n", o.flag, o.arg)
		}
		b.WriteString(esc(o.text) + "\n")
	}
	b.WriteString(".SH VERBS\n")
	for _, v := range verbs {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", v.name, esc(v.text))
	}
	b.WriteString(".SH SIGNALS\n.TP\n.B SIGHUP\n" + esc("reload: the configuration file is read again and LOGFILE reopened (logrotate).") + "\n" +
		".TP\n.BR SIGTERM \", \" SIGINT\n" + esc("shut down: listeners close, idle sessions get 421, messages in flight finish within child_timeout.") + "\n")
	b.WriteString(".SH FILES\n.TP\n.I " + esc(defaultConfFile) + "\n" + esc("the configuration.") + "\n" +
		".TP\n.I " + esc("/var/lib/amavis/amavisd.sock") + "\n" +
		esc("the AM.PDP socket of the bundled configuration, where amavisd-release, amavisd-milter and amavisd-submit find the daemon.") + "\n" +
		".TP\n.I " + esc("/var/lib/amavis/tmp") + "\n" + esc("TEMPBASE: one directory per message while it is checked.") + "\n")
	b.WriteString(".SH SEE ALSO\n.BR amavisd\\-release (1),\n.BR amavisd\\-milter (8),\n.BR amavisd\\-submit (1),\n" +
		".BR postfix (1),\n.BR clamd (8)\n")
	return b.String()
}
