package ampdp

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"amavisgo/conf"
	"amavisgo/delivery/amavissmtp"
	"amavisgo/internal/testenv"
	"amavisgo/mailid"
	"amavisgo/notify"
	"amavisgo/quarantine"
	"amavisgo/smtp"
	"amavisgo/verdict"
)

// Through a real Postfix: the admin notice about a quarantined EICAR message reaches the
// admin's mailbox, and amavisd-release puts the original into the recipient's mailbox.
func TestReleaseThroughPostfix(t *testing.T) {
	pf := testenv.StartPostfix(t, testenv.PostfixOptions{})
	host, port, _ := net.SplitHostPort(pf.ForwardAddr)
	qdir := t.TempDir()
	c, err := conf.Parse("pf.toml", []byte("myhostname = \"mx.example.com\"\nQUARANTINEDIR = \""+qdir+"\"\n"+
		"quarantine_subdir_levels = 1\nnotify_method = \"smtp:["+host+"]:"+port+"\"\n"+
		"virus_admin = \"postmaster@"+testenv.PostfixDomain+"\"\nauth_required_release = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := &c.Policy
	sender := &amavissmtp.Sender{LocalhostName: "localhost"}
	store := quarantine.NewStore(c, sender)
	id, _, _ := mailid.New(mailid.DefaultBits)
	rcpt := "x@" + testenv.PostfixDomain
	spool := filepath.Join(t.TempDir(), "email.txt")
	orig := "From: bob@sender.example.org\r\nTo: " + rcpt + "\r\nSubject: eicar via postfix\r\nMessage-ID: <pf1@sender.example.org>\r\n\r\n" + eicar + "\r\n"
	os.WriteFile(spool, []byte(orig), 0o600)
	m := &quarantine.Message{MailID: id, LogID: "4711-01", Received: time.Now(), Sender: "bob@sender.example.org",
		Recipients: []string{rcpt}, Blocked: []string{rcpt},
		Fields:        quarantine.Fields(quarantine.Alerts{Viruses: []string{"Eicar-Test-Signature"}}, nil),
		ReceivedField: "Received: from mta.example.com ([127.0.0.1])\n by localhost (mx.example.com [127.0.0.1]) (amavis, port 10024) with ESMTP\n id " + id + " for <" + rcpt + ">; " + RFC2822Date(time.Now()),
		Original:      spool}
	locs, err := store.Quarantine(context.Background(), p, quarantine.Virus, m, m.Blocked)
	if err != nil {
		t.Fatal(err)
	}
	virus := notify.Category{Major: notify.CC_VIRUS}
	nm := &notify.Message{LogID: "4711-01", MailID: id, Sender: m.Sender, Category: virus, MainCategory: virus,
		Recipients: []*verdict.Recipient{{Recipient: smtp.Recipient{Addr: rcpt}, Local: true, Blocked: true, Blocking: virus,
			Destiny: conf.D_DISCARD, Reply: smtp.Reply{Code: 250, Enh: "2.7.0", Text: "Ok, discarded, id=4711-01 - INFECTED: Eicar-Test-Signature"}}},
		Header: []byte(strings.SplitN(orig, "\r\n\r\n", 2)[0] + "\r\n"), Viruses: []string{"Eicar-Test-Signature"},
		Quarantined: []string{locs[0].Name}, ClientAddr: "198.51.100.7", ClientPort: "4567", Received: time.Now()}
	if sent, err := notify.New(c, sender).Admins(context.Background(), p, nm, nil); err != nil || len(sent) != 1 {
		t.Fatal(sent, err)
	}

	srv := &Server{Config: c, Store: store, Sender: sender}
	sock := filepath.Join(t.TempDir(), "amavisd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(context.Background(), conn, p)
		}
	}()
	out := run(t, amavisdRelease(t, "amavisd-release", sock), filepath.Base(locs[0].Name))
	if !strings.HasPrefix(out, "250 2.0.0 from MTA(smtp:["+host+"]:"+port+"): 250 2.0.0 Ok: queued as ") {
		t.Fatalf("amavisd-release printed %q", out)
	}

	var msgs []testenv.MailboxMessage
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if msgs, _ = pf.Messages(); len(msgs) >= 2 {
			break
		}
	}
	var notice, released *testenv.MailboxMessage
	for i := range msgs {
		switch msgs[i].MessageID {
		case "<VA" + id + "@mx.example.com>":
			notice = &msgs[i]
		case "<pf1@sender.example.org>":
			released = &msgs[i]
		}
	}
	if notice == nil || released == nil {
		t.Fatalf("mailbox holds %d messages, want the admin notice and the released mail", len(msgs))
	}
	if s := notice.HeaderValues("Subject"); len(s) != 1 || s[0] != "VIRUS (Eicar-Test-Signature) in mail FROM [198.51.100.7]:4567 <bob@sender.example.org>" {
		t.Errorf("notice Subject %q", s)
	}
	if to := notice.HeaderValues("Delivered-To"); len(to) == 0 || to[0] != "postmaster@"+testenv.PostfixDomain {
		t.Errorf("notice delivered to %q", to)
	}
	if v := released.HeaderValues("Resent-To"); len(v) != 1 || v[0] != "<"+rcpt+">" {
		t.Errorf("Resent-To %q", v)
	}
	for _, f := range []string{"Resent-From", "Resent-Date", "Resent-Message-ID"} {
		if len(released.HeaderValues(f)) != 1 {
			t.Errorf("released mail lacks %s:\n%s", f, released.Header)
		}
	}
	if !strings.Contains(string(released.Body), eicar) || len(released.HeaderValues("X-Quarantine-ID")) != 0 {
		t.Errorf("released mail:\n%s\n%s", released.Header, released.Body)
	}
}
