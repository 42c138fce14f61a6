package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/notify/template"
)

// requireFile reads a file of Debian's amavisd-new package: a failure in CI, a skip elsewhere.
func requireFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("amavisd-new is not installed: %v", err)
	}
	return string(b)
}

// Every macro that amavis's own notification templates (the __DATA__ sections of Amavis.pm
// that init fills notify_*_templ from) and Debian's en_US templates call is one we provide,
// and none of them expands to nothing merely for being unknown: each template passes the
// check a site's template gets at start.
func TestAmavisTemplatesUseKnownMacros(t *testing.T) {
	c, _ := conf.Parse("t.toml", []byte("myhostname = \"mx.example.com\"\n"))
	n := New(c, nil)
	src := requireFile(t, "/usr/share/perl5/Amavis.pm")
	sections := strings.Split(src, "__DATA__\n")
	// after the code: the three log templates, then the notification templates in the order
	// sender, virus sender, virus admin, virus recipients, spam sender, spam admin, release,
	// report, auto-response
	names := []string{"notify_sender_templ", "notify_virus_sender_templ", "notify_virus_admin_templ",
		"notify_virus_recips_templ", "notify_spam_sender_templ", "notify_spam_admin_templ",
		"notify_release_templ", "notify_report_templ", "notify_autoresp_templ"}
	if len(sections) < 4+len(names) {
		t.Fatalf("Amavis.pm has %d __DATA__ sections", len(sections))
	}
	for i, name := range names {
		if _, err := template.ParseFile("Amavis.pm:"+name, sections[4+i], n.knownMacro); err != nil {
			t.Error(err)
		}
	}
	files, _ := filepath.Glob("/etc/amavis/en_US/template-*.txt")
	if len(files) < 6 {
		requireFile(t, "/etc/amavis/en_US/template-dsn.txt")
	}
	for _, f := range files {
		if _, err := template.ParseFile(f, requireFile(t, f), n.knownMacro); err != nil {
			t.Error(err)
		}
	}
}

// A site template calling a macro amavis does not have stops the daemon at start (Check),
// naming the file and line, rather than expanding to nothing in every notice.
func TestUnknownMacroFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site-admin.txt")
	os.WriteFile(site, []byte("Subject: virus\n\nFrom: [:header_field|From]\nSender: [:header_feild|Sender]\n"), 0o644)
	c, err := conf.Parse("t.toml", []byte("myhostname = \"mx.example.com\"\nnotify_virus_admin_templ = \""+site+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = New(c, nil).Check()
	if err == nil || !strings.Contains(err.Error(), site+`:4: unknown macro "header_feild"`) {
		t.Errorf("Check: %v, want %s:4: unknown macro \"header_feild\"", err, site)
	}
	c, _ = conf.Parse("t.toml", []byte("myhostname = \"mx.example.com\"\n"))
	if err := New(c, nil).Check(); err != nil {
		t.Errorf("the built-in templates: %v", err)
	}
}

// header_field and %j as amavis's macro_header_field and get_header_field2 give them: the
// first field of the name unless an index says otherwise, a limit cutting with "[...]",
// message ids without their comments, folded lines joined keeping their blank.
func TestHeaderFieldMacro(t *testing.T) {
	c, _ := conf.Parse("t.toml", []byte("myhostname = \"mx.example.com\"\n"))
	n := New(c, nil)
	m := eicar(&c.Policy, conf.D_DISCARD)
	m.Header = []byte("Subject: once\nSubject: twice\n\tfolded\nMessage-ID: (comment) <m1@x>\nReferences: <r1@x> (c)\n <r2@x>\n")
	tm := template.Parse("%j|[:header_field|Subject]|[:header_field|Subject||1]|[:header_field|Subject||-1]|" +
		"[:header_field|Subject|8|1]|%m|[:header_field|References]|[:header_field_octets|Subject]")
	got, err := tm.Expand(n.macros(m, "", nil, false))
	if err != nil {
		t.Fatal(err)
	}
	if want := "once|once|twice\tfolded|twice\tfolded|twi[...]|<m1@x>|<r1@x> <r2@x>|once"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// amavis's hdr RFC 2047-encodes the text of Subject, From, To and the like, and leaves other
// fields, a message id say, as they are: an encoded word in In-Reply-To would be no id.
func TestComposeEncodesOnlyTextFields(t *testing.T) {
	msg := compose("Subject: caf\u00e9\nIn-Reply-To: <caf\u00e9@x>\n\ntext\n", nil, "", nil)
	for _, want := range []string{"\nSubject: =?utf-8?q?caf=C3=A9?=\n", "\nIn-Reply-To: <caf\u00e9@x>\n"} {
		if !strings.Contains(msg, want) {
			t.Errorf("composed message lacks %q:\n%s", want, msg)
		}
	}
}
