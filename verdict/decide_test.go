package verdict

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"amavisgo/conf"
	"amavisgo/policybank"
	"amavisgo/scanners"
	"amavisgo/smtp"
)

const localDomains = "[[local_domains_maps]]\nacl = [\".example.com\"]\n"

func TestVirusDestinies(t *testing.T) {
	msg := withAttachment("application/octet-stream", "eicar.com", []byte(eicar))
	for _, tc := range []struct {
		name, conf string
		blocked    bool
		destiny    conf.Destiny
		reply      string
	}{
		{"default discards", "", true, conf.D_DISCARD,
			"250 2.7.0 Ok, discarded, id=12345-03 - INFECTED: Eicar-Test-Signature"},
		{"D_BOUNCE", `final_virus_destiny = "D_BOUNCE"`, true, conf.D_BOUNCE,
			"554 5.7.0 Bounce, id=12345-03 - INFECTED: Eicar-Test-Signature"},
		{"D_REJECT", `final_virus_destiny = "D_REJECT"`, true, conf.D_REJECT,
			"554 5.7.0 Reject, id=12345-03 - INFECTED: Eicar-Test-Signature"},
		{"D_TEMPFAIL", `final_virus_destiny = "D_TEMPFAIL"`, true, conf.D_TEMPFAIL,
			"450 4.7.0 Temporary failure, id=12345-03 - INFECTED: Eicar-Test-Signature"},
		{"soft_bounce turns a discard into 450", "soft_bounce = true", true, conf.D_DISCARD,
			"450 4.7.0 Ok, discarded (soft_bounce), id=12345-03 - INFECTED: Eicar-Test-Signature"},
		{"soft_bounce turns a reject into 450", "soft_bounce = true\nfinal_virus_destiny = -3", true, conf.D_REJECT,
			"450 4.7.0 Reject (soft_bounce), id=12345-03 - INFECTED: Eicar-Test-Signature"},
		{"D_PASS delivers", `final_virus_destiny = "D_PASS"`, false, conf.D_PASS, ""},
		{"virus lovers get it", `virus_lovers_maps = [true]`, false, conf.D_PASS, ""},
		{"bypass_virus_checks_maps", `bypass_virus_checks_maps = [true]`, false, conf.D_PASS, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseConf(t, tc.conf+"\n"+localDomains)
			in := input(cfg, msg)
			in.Unpacked = decode(t, msg)
			in.AV = infected("Eicar-Test-Signature")
			v := mustDecide(t, in)
			for _, r := range v.Recips {
				if r.Blocked != tc.blocked || r.Destiny != tc.destiny || text(r.Reply) != tc.reply {
					t.Errorf("%s: blocked=%v destiny=%v reply %q; want %v %v %q", r.Addr, r.Blocked, r.Destiny, text(r.Reply), tc.blocked, tc.destiny, tc.reply)
				}
				if r.DSNSuppress != "INFECTED" {
					t.Errorf("%s: DSN suppress %q, want INFECTED (every virus fakes its sender by default)", r.Addr, r.DSNSuppress)
				}
			}
			if got := v.LogCategory(); got != "INFECTED (Eicar-Test-Signature)" {
				t.Errorf("log category %q", got)
			}
		})
	}
}

// A virus lover among other recipients: each gets its own decision.
func TestMixedRecipients(t *testing.T) {
	cfg := parseConf(t, "[[virus_lovers_maps]]\nacl = [\"lover@example.com\"]\n"+localDomains)
	msg := withAttachment("application/octet-stream", "eicar.com", []byte(eicar))
	in := input(cfg, msg)
	in.Recipients = recips("b@example.com", "lover@example.com")
	in.Unpacked = decode(t, msg)
	in.AV = infected("Eicar-Test-Signature")
	v := mustDecide(t, in)
	if !v.Recips[0].Blocked || v.Recips[1].Blocked || !v.Blocked || v.Blocking != (CCat{CC_VIRUS, 0}) {
		t.Fatalf("blocked: %v %v, message %v %v", v.Recips[0].Blocked, v.Recips[1].Blocked, v.Blocked, v.Blocking)
	}
	h := v.HeaderEdits(v.Recips[1], "n8rZJ2zBYamo", true)
	want := []Field{
		{Name: "X-Quarantine-ID", Value: "<n8rZJ2zBYamo>"},
		{Name: "X-Virus-Scanned", Value: "amavis at !change-mydomain-variable!.example.com"},
		{Name: "X-Amavis-Alert", Value: "INFECTED, message contains virus: Eicar-Test-Signature"},
	}
	if !reflect.DeepEqual(h.Add, want) || h.SubjectTag != "***INFECTED*** " || !h.Tagged {
		t.Errorf("edits for the lover: %+v", h)
	}
	if got := TagSubject(" test", h.SubjectTag); got != " ***INFECTED*** test" {
		t.Errorf("subject %q", got)
	}
}

func TestBanned(t *testing.T) {
	exeZip := zipOf(t, "run.exe", pe)
	for _, tc := range []struct {
		name, conf string
		msg        string
		reason     string // %F; "" when not banned
	}{
		{"an .exe attachment", "", withAttachment("application/octet-stream", "run.exe", pe),
			"application/octet-stream,.exe,.exe-ms,run.exe"},
		{"a double extension", "", withAttachment("application/octet-stream", "invoice.pdf.exe", []byte("%PDF-1.4 not really\n")),
			"application/octet-stream,.pdf,invoice.pdf.exe"},
		{"an .exe in a zip", "", withAttachment("application/zip", "files.zip", exeZip),
			".exe,.exe-ms,run.exe"},
		{"a Windows program named .txt", "", withAttachment("application/octet-stream", "readme.txt", pe),
			"application/octet-stream,.exe,.exe-ms,readme.txt"},
		{"an application/x-msdownload part", "", withAttachment("application/x-msdownload", "setup.bin", []byte("just text\n")),
			"application/x-msdownload,.asc,setup.bin"},
		{"a CLSID name", "", withAttachment("application/octet-stream", "x.{00020C01-0000-0000-C000-000000000046}", []byte("text\n")),
			"application/octet-stream,.asc,x.{00020C01-0000-0000-C000-000000000046}"},
		{"a harmless attachment", "", withAttachment("application/pdf", "invoice.pdf", []byte("%PDF-1.4\n")), ""},
		{"an allow rule for zip contents comes first", "", withAttachment("application/zip", "files.zip", exeZip), ""},
		{"bypass_banned_checks_maps", "bypass_banned_checks_maps = [true]", withAttachment("application/octet-stream", "run.exe", pe), ""},
		{"banned_files_lovers_maps", "banned_files_lovers_maps = [true]", withAttachment("application/octet-stream", "run.exe", pe), "passes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := debianConf(t, tc.conf+"\n"+localDomains)
			if strings.HasPrefix(tc.name, "an allow rule") {
				cfg = parseConf(t, localDomains+"\n[banned_rules]\nDEFAULT = [[\"qr'^\\\\.(zip|rar)$'\", false], \"(?i)\\\\.exe$\"]\n")
			}
			in := input(cfg, tc.msg)
			in.Unpacked = decode(t, tc.msg)
			v := mustDecide(t, in)
			r := v.Recips[0]
			switch tc.reason {
			case "":
				if r.Blocked || len(r.Banned) > 0 {
					t.Fatalf("banned: %+v", r.Banned)
				}
			case "passes":
				if r.Blocked || r.BannedReason == "" {
					t.Fatalf("a lover must get banned mail: blocked %v, reason %q", r.Blocked, r.BannedReason)
				}
				h := v.HeaderEdits(r, "", false)
				if h.Add[len(h.Add)-1] != (Field{Name: "X-Amavis-Alert", Value: "BANNED, message contains " + r.BannedReason}) {
					t.Errorf("edits %+v", h.Add)
				}
			default:
				if r.BannedReason != tc.reason {
					t.Errorf("%%F = %q, want %q (path %q)", r.BannedReason, tc.reason, r.Banned[0].Path)
				}
				wantReply := "250 2.7.0 Ok, discarded, id=12345-03 - BANNED: " + tc.reason
				if !r.Blocked || text(r.Reply) != wantReply {
					t.Errorf("reply %q, want %q", text(r.Reply), wantReply)
				}
				if got := v.LogCategory(); got != "BANNED ("+tc.reason+")" {
					t.Errorf("log category %q", got)
				}
			}
		})
	}
}

func TestNoBannedRulesBanNothing(t *testing.T) {
	cfg := parseConf(t, "")
	msg := withAttachment("application/x-msdownload", "run.exe", pe)
	in := input(cfg, msg)
	in.Unpacked = decode(t, msg)
	v := mustDecide(t, in)
	if v.Blocked || v.Recips[0].BannedReason != "" || v.LogCategory() != "CLEAN" {
		t.Errorf("banned without rules: %+v", v.Recips[0])
	}
	if len(v.Notes) != 0 {
		t.Errorf("DEFAULT without rules is not an unknown name: %q", v.Notes)
	}
}

func TestBannedPathAndRuleNames(t *testing.T) {
	cfg := parseConf(t, `[[banned_filename_maps]]
hash = { "b@example.com" = "EXE, NOSUCH" }
[[banned_filename_maps]]
constant = "DEFAULT"
[banned_rules]
EXE = ['(?#executables)(?i)\.exe$']
DEFAULT = [['.', false]]
`)
	msg := withAttachment("application/zip", "files.zip", zipOf(t, "run.exe", pe))
	in := input(cfg, msg)
	in.Unpacked = decode(t, msg)
	v := mustDecide(t, in)
	b, c := v.Recips[0], v.Recips[1]
	if c.Blocked || !b.Blocked {
		t.Fatalf("b blocked %v, c blocked %v", b.Blocked, c.Blocked)
	}
	if b.BannedReason != "executables:.exe,.exe-ms,run.exe" {
		t.Errorf("%%F = %q", b.BannedReason)
	}
	if got := b.Banned[0].Path; got != "multipart/mixed | application/zip,.zip,files.zip | .exe,.exe-ms,run.exe" {
		t.Errorf("path %q", got)
	}
	if !reflect.DeepEqual(v.Notes, []string{"INFO: unknown banned table name NOSUCH, recip=b@example.com"}) {
		t.Errorf("notes %q", v.Notes)
	}
}

func TestUnchecked(t *testing.T) {
	msg := plainHeader + "\nhello\n"
	failed := scanners.Report{Failed: true, FailReason: scanners.FailAllFailed}
	t.Run("clamd down: passes, tagged for local recipients", func(t *testing.T) {
		cfg := parseConf(t, localDomains)
		in := input(cfg, msg)
		in.Unpacked = decode(t, msg)
		in.AV = failed
		v := mustDecide(t, in)
		if v.Blocked || text(v.Tempfail) != "" || v.LogCategory() != "UNCHECKED" {
			t.Fatalf("blocked %v tempfail %q category %q", v.Blocked, text(v.Tempfail), v.LogCategory())
		}
		local, remote := v.HeaderEdits(v.Recips[0], "", false), v.HeaderEdits(v.Recips[1], "", false)
		if local.SubjectTag != "***UNCHECKED*** " || remote.SubjectTag != "" {
			t.Errorf("subject tags %q %q", local.SubjectTag, remote.SubjectTag)
		}
		if got := TagSubject(" ***UNCHECKED*** test", local.SubjectTag); got != " ***UNCHECKED*** test" {
			t.Errorf("an existing tag must not double: %q", got)
		}
	})
	t.Run("virus_scanners_failure_is_fatal", func(t *testing.T) {
		cfg := parseConf(t, "virus_scanners_failure_is_fatal = true\n")
		in := input(cfg, msg)
		in.AV = failed
		v := mustDecide(t, in)
		if text(v.Tempfail) != "451 4.5.0 Error in processing, id=12345-03, virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED" {
			t.Errorf("tempfail %q", text(v.Tempfail))
		}
	})
	t.Run("final_unchecked_destiny D_REJECT", func(t *testing.T) {
		cfg := parseConf(t, `final_unchecked_destiny = "D_REJECT"`)
		in := input(cfg, msg)
		in.AV = failed
		v := mustDecide(t, in)
		if r := v.Recips[0]; text(r.Reply) != "554 5.7.0 Reject, id=12345-03 - UNCHECKED" {
			t.Errorf("reply %q", text(r.Reply))
		}
	})
	t.Run("over limits: hold", func(t *testing.T) {
		cfg := parseConf(t, localDomains)
		deep := withAttachment("application/zip", "a.zip", zipOf(t, "b.zip", zipOf(t, "c.txt", []byte("x"))))
		in := input(cfg, deep)
		in.Unpacked = decode(t, deep)
		in.Unpacked.Hold = "Maximum decoding depth (2) exceeded"
		v := mustDecide(t, in)
		if !v.Recips[0].CCats.Has(CC_UNCHECKED, 2) || v.LogCategory() != "UNCHECKED" {
			t.Errorf("ccats %v, category %q", v.Recips[0].CCats, v.LogCategory())
		}
		h := v.HeaderEdits(v.Recips[0], "", false)
		if h.Add[0] != (Field{Name: "X-Amavis-Hold", Value: "Maximum decoding depth (2) exceeded"}) || h.Delete[0] != "X-Amavis-Hold" {
			t.Errorf("edits %+v", h)
		}
	})
}

func TestBadHeaderDecisions(t *testing.T) {
	noDate := "From: a@example.net\nSubject: test\n"
	for _, tc := range []struct {
		name, conf, sender string
		bulk               bool
		reply              string
	}{
		{"default passes", "", "a@example.net", false, ""},
		{"D_REJECT", `final_bad_header_destiny = "D_REJECT"`, "a@example.net", false,
			"554 5.6.0 Reject, id=12345-03 - BAD HEADER"},
		{"D_BOUNCE", `final_bad_header_destiny = "D_BOUNCE"`, "a@example.net", false,
			"554 5.6.0 Bounce, id=12345-03 - BAD HEADER"},
		{"D_BOUNCE has mercy on the null sender", `final_bad_header_destiny = "D_BOUNCE"`, "", false, ""},
		{"D_BOUNCE has mercy on bulk mail", `final_bad_header_destiny = "D_BOUNCE"`, "a@example.net", true, ""},
		{"lovers", "final_bad_header_destiny = \"D_REJECT\"\nbad_header_lovers_maps = [true]", "a@example.net", false, ""},
		{"bypass", "final_bad_header_destiny = \"D_REJECT\"\nbypass_header_checks_maps = [true]", "a@example.net", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseConf(t, tc.conf)
			in := input(cfg, noDate)
			in.Header, in.Sender, in.Bulk = []byte(noDate), tc.sender, tc.bulk
			v := mustDecide(t, in)
			r := v.Recips[0]
			if text(r.Reply) != tc.reply {
				t.Errorf("reply %q, want %q", text(r.Reply), tc.reply)
			}
			if tc.name == "bypass" {
				if v.BadHeaders != nil {
					t.Errorf("checked although every recipient bypasses: %q", v.BadHeaders)
				}
				return
			}
			if got := v.LogCategory(); tc.reply == "" && got != "BAD-HEADER-7" || tc.reply != "" && got != "BAD-HEADER-0" {
				t.Errorf("log category %q", got)
			}
			if tc.reply == "" && tc.name != "lovers" {
				h := v.HeaderEdits(r, "", false)
				if h.Add[len(h.Add)-1] != (Field{Name: "X-Amavis-Alert", Value: `BAD HEADER SECTION, Missing required header field: "Date"`}) {
					t.Errorf("edits %+v", h.Add)
				}
			}
		})
	}
}

// A MIME error is a bad header, worded as Amavis::Unpackers::MIME words MIME::Parser's errors.
func TestMIMEErrorIsBadHeader(t *testing.T) {
	cfg := parseConf(t, "")
	in := input(cfg, plainHeader)
	in.Header = []byte(plainHeader)
	res := decode(t, plainHeader+"\nx\n")
	res.MIMEErrors = []string{"multipart boundary not found"}
	in.Unpacked = res
	v := mustDecide(t, in)
	if !v.Recips[0].CCats.Has(CC_BADH, 1) || !reflect.DeepEqual(v.BadHeaders, []string{"MIME error: error: multipart boundary not found"}) {
		t.Errorf("ccats %v, findings %q", v.Recips[0].CCats, v.BadHeaders)
	}
}

func TestOversized(t *testing.T) {
	cfg := parseConf(t, "[[message_size_limit_maps]]\nhash = { \"b@example.com\" = 1000 }\n")
	in := input(cfg, plainHeader)
	in.Size = 70000 // over the 64 KiB floor
	v := mustDecide(t, in)
	if r := v.Recips[0]; text(r.Reply) != "552 5.3.4 Bounce, id=12345-03 - Message size exceeds recipient's size limit" || r.OverLimit != 65536 {
		t.Errorf("reply %q limit %d", text(r.Reply), r.OverLimit)
	}
	if v.Recips[1].Blocked || v.LogCategory() != "OVERSIZED" {
		t.Errorf("the other recipient has no limit; category %q", v.LogCategory())
	}
	in.Size = 60000
	if v := mustDecide(t, in); v.Blocked {
		t.Error("below the 64 KiB floor nothing is oversized")
	}
}

func TestCleanPasses(t *testing.T) {
	cfg := parseConf(t, localDomains)
	msg := plainHeader + "\nhello\n"
	in := input(cfg, msg)
	in.Unpacked = decode(t, msg)
	v := mustDecide(t, in)
	if v.Blocked || v.LogCategory() != "CLEAN" || !reflect.DeepEqual(v.CCats, CCats{{CC_CLEAN, 0}}) {
		t.Fatalf("clean: %+v", v)
	}
	h := v.HeaderEdits(v.Recips[0], "mailid", true)
	want := HeaderEdits{Delete: []string{"X-Amavis-Hold"}, Add: []Field{
		{Name: "X-Quarantine-ID", Value: "<mailid>"},
		{Name: "X-Virus-Scanned", Value: "amavis at !change-mydomain-variable!.example.com"},
	}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("edits %+v", h)
	}
	if r := v.HeaderEdits(v.Recips[1], "mailid", true); len(r.Add) != 1 || h.Key() != r.Key() {
		t.Errorf("a remote recipient gets no X-Quarantine-ID, in the same cluster: %+v", r)
	}
}

// Decide fills in the records it is given, RCPT data kept, and the verdict's Recips are those
// records; deciding them again starts from their RCPT data alone.
func TestDecideFillsTheRecords(t *testing.T) {
	cfg := parseConf(t, localDomains)
	msg := plainHeader + "\nhello\n"
	in := input(cfg, msg)
	in.Recipients[0].Notify, in.Recipients[0].ORCPT = []string{"FAILURE"}, "rfc822;b@example.com"
	in.AV = infected("Eicar-Test-Signature")
	v := mustDecide(t, in)
	r := in.Recipients[0]
	if v.Recips[0] != r || v.Recips[1] != in.Recipients[1] {
		t.Fatal("the verdict's recipients are not the records it was given")
	}
	if !r.Blocked || text(r.Reply) != "250 2.7.0 Ok, discarded, id=12345-03 - INFECTED: Eicar-Test-Signature" ||
		r.AddrSMTP != "<b@example.com>" || r.ORCPT != "rfc822;b@example.com" || len(r.Notify) != 1 {
		t.Fatalf("infected: %+v", *r)
	}
	in.AV = scanners.Report{}
	v = mustDecide(t, in)
	if v.Blocked || r.Blocked || r.Reply != (smtp.Reply{}) || r.Destiny != conf.D_PASS || v.LogCategory() != "CLEAN" ||
		r.ORCPT != "rfc822;b@example.com" {
		t.Errorf("decided again, clean: %+v", *r)
	}
}

func TestHeaderFieldsPolicy(t *testing.T) {
	cfg := parseConf(t, `X_HEADER_LINE = "Debian amavis at example.com"
remove_existing_x_scanned_headers = true
allowed_added_header_fields = { "X-Amavis-Alert" = false }
[[bypass_virus_checks_maps]]
acl = ["c@remote.example"]
`+localDomains)
	msg := withAttachment("application/octet-stream", "eicar.com", []byte(eicar))
	in := input(cfg, msg)
	in.AV = infected("Eicar-Test-Signature")
	v := mustDecide(t, in)
	h := v.HeaderEdits(v.Recips[1], "", false) // bypasses virus checks: passes untouched
	if !reflect.DeepEqual(h, HeaderEdits{Delete: []string{"X-Amavis-Hold", "X-Virus-Scanned"}}) {
		t.Errorf("edits %+v", h)
	}
	cfg2 := parseConf(t, "final_virus_destiny = \"D_PASS\"\nallowed_added_header_fields = { \"X-Amavis-Alert\" = false }\n"+localDomains)
	in = input(cfg2, msg)
	in.AV = infected("Eicar-Test-Signature")
	v = mustDecide(t, in)
	h = v.HeaderEdits(v.Recips[0], "", false)
	for _, f := range h.Add {
		if f.Name == "X-Amavis-Alert" {
			t.Errorf("X-Amavis-Alert is disabled: %+v", h.Add)
		}
	}
}

func TestPlan(t *testing.T) {
	cfg := parseConf(t, `bypass_spam_checks_maps = [true]
banned_filename_maps = []
[[bypass_virus_checks_maps]]
acl = [".example.com"]
`)
	got := Plan(&cfg.Policy, recips("b@example.com", "c@remote.example"))
	if got != (Checks{Virus: true, Header: true, Decode: true}) {
		t.Errorf("plan %+v", got)
	}
	got = Plan(&cfg.Policy, recips("b@example.com"))
	if got != (Checks{Header: true}) {
		t.Errorf("plan %+v", got)
	}
}

// A bank chosen by port and client changes what the verdict does: ORIGINATING rejects
// viruses and names its own X-Virus-Scanned line; the log directions follow originating.
func TestBankSettingsApply(t *testing.T) {
	cfg := parseConf(t, `interface_policy = { "10026" = "ORIGINATING" }
[policy_bank.ORIGINATING]
originating = true
final_virus_destiny = "D_REJECT"
X_HEADER_LINE = "amavis at example.com (outgoing)"
[policy_bank.MYNETS]
`+localDomains)
	msg := withAttachment("application/octet-stream", "eicar.com", []byte(eicar))
	for _, tc := range []struct {
		port, client, path, reply, xline, action string
	}{
		{"10024", "198.51.100.7", "", "250 2.7.0 Ok, discarded, id=12345-03 - INFECTED: Eicar-Test-Signature",
			"amavis at !change-mydomain-variable!.example.com", "DiscardedInbound"},
		{"10024", "10.1.2.3", "MYNETS", "250 2.7.0 Ok, discarded, id=12345-03 - INFECTED: Eicar-Test-Signature",
			"amavis at !change-mydomain-variable!.example.com", "DiscardedInternal"},
		{"10026", "198.51.100.7", "ORIGINATING", "554 5.7.0 Reject, id=12345-03 - INFECTED: Eicar-Test-Signature",
			"amavis at example.com (outgoing)", "RejectedInternal"},
	} {
		p, err := policybank.ForSocket(cfg, tc.port)
		if err == nil {
			p, err = policybank.ForClient(cfg, p, netip.MustParseAddr(tc.client))
		}
		if err != nil {
			t.Fatal(err)
		}
		in := input(cfg, msg)
		in.Policy = p
		in.AV = infected("Eicar-Test-Signature")
		v := mustDecide(t, in)
		r := v.Recips[0]
		if p.PolicyBankPath != tc.path || text(r.Reply) != tc.reply {
			t.Errorf("%s from %s: bank %q reply %q", tc.port, tc.client, p.PolicyBankPath, text(r.Reply))
		}
		if a := ActionWord(r, p.Originating); a != tc.action {
			t.Errorf("%s from %s: action %q, want %q", tc.port, tc.client, a, tc.action)
		}
		in.AV = scanners.Report{}
		v = mustDecide(t, in)
		if h := v.HeaderEdits(v.Recips[0], "", false); h.Add[0] != (Field{Name: "X-Virus-Scanned", Value: tc.xline}) {
			t.Errorf("%s from %s: edits %+v", tc.port, tc.client, h.Add)
		}
	}
}
