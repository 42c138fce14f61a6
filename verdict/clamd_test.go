package verdict

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"

	"amavisgo/internal/testenv"
	"amavisgo/scanners"
	"amavisgo/unpack"
)

// scanMessage spools msg as the daemon does (email.txt, parts/), decodes and scans it.
func scanMessage(t *testing.T, set *scanners.Set, msg string) (*unpack.Result, scanners.Report) {
	t.Helper()
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	if err := os.WriteFile(email, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := unpack.New(unpack.Limits{MaxLevels: 14, MaxFiles: 1500}, nil, nil).Unpack(context.Background(), email, filepath.Join(dir, "parts"))
	if err != nil {
		t.Fatal(err)
	}
	return res, set.Scan(context.Background(), dir)
}

func tarGz(t *testing.T, name string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// EICAR in five wrappings, scanned by a real clamd, decided under each virus destiny: the
// reply, the log category and the edits of a passed copy.
func TestEicarWithClamd(t *testing.T) {
	c := testenv.StartClamd(t)
	set, err := scanners.NewSet([]scanners.Entry{{Name: "ClamAV-clamd", Sockets: []string{c.Socket}, Query: "CONTSCAN {}\n",
		CleanPattern: `\bOK$`, InfectedPattern: `\bFOUND$`, NamesPattern: `^.*?: (?!Infected Archive)(.*) FOUND$`}}, nil, scanners.Options{})
	if err != nil {
		t.Fatal(err)
	}
	messages := map[string]string{
		"plain":      plainHeader + "\n" + eicar + "\n",
		"base64":     withAttachment("application/octet-stream", "eicar.com", []byte(eicar)),
		"zip":        withAttachment("application/zip", "eicar.zip", zipOf(t, "eicar.com", []byte(eicar))),
		"zip-in-zip": withAttachment("application/zip", "outer.zip", zipOf(t, "inner.zip", zipOf(t, "eicar.com", []byte(eicar)))),
		"tar.gz":     withAttachment("application/gzip", "eicar.tar.gz", tarGz(t, "eicar.com", []byte(eicar))),
	}
	cat := "INFECTED (" + c.VirusName + ")"
	for name, msg := range messages {
		res, rep := scanMessage(t, set, msg)
		if !rep.Infected || rep.Failed || len(rep.Viruses) != 1 || rep.Viruses[0] != c.VirusName {
			t.Fatalf("%s: clamd report %+v", name, rep)
		}
		for _, d := range []struct{ conf, reply string }{
			{"", "250 2.7.0 Ok, discarded, id=12345-03 - INFECTED: " + c.VirusName},
			{`final_virus_destiny = "D_BOUNCE"`, "554 5.7.0 Bounce, id=12345-03 - INFECTED: " + c.VirusName},
			{`final_virus_destiny = "D_REJECT"`, "554 5.7.0 Reject, id=12345-03 - INFECTED: " + c.VirusName},
			{`final_virus_destiny = "D_PASS"`, ""},
		} {
			cfg := parseConf(t, d.conf+"\n"+localDomains)
			in := input(cfg, msg)
			in.Unpacked, in.AV = res, rep
			v := mustDecide(t, in)
			for _, r := range v.Recips {
				if text(r.Reply) != d.reply {
					t.Errorf("%s, %q: %s: reply %q, want %q", name, d.conf, r.Addr, text(r.Reply), d.reply)
				}
			}
			if v.LogCategory() != cat {
				t.Errorf("%s: category %q", name, v.LogCategory())
			}
			if d.reply == "" {
				h := v.HeaderEdits(v.Recips[0], "", false)
				if h.SubjectTag != "***INFECTED*** " || h.Add[len(h.Add)-1] != (Field{Name: "X-Amavis-Alert", Value: "INFECTED, message contains virus: " + c.VirusName}) {
					t.Errorf("%s: edits of a passed copy %+v", name, h)
				}
			}
		}
	}
}

// clamd down: with the defaults the message passes as UNCHECKED, tagged for local
// recipients; with virus_scanners_failure_is_fatal it is a 451.
func TestClamdDown(t *testing.T) {
	dead := filepath.Join(t.TempDir(), "no-clamd.sock")
	set, err := scanners.NewSet([]scanners.Entry{{Name: "ClamAV-clamd", Sockets: []string{dead}, Query: "CONTSCAN {}\n",
		CleanPattern: `\bOK$`, InfectedPattern: `\bFOUND$`, NamesPattern: `^.*?: (.*) FOUND$`}}, nil, scanners.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := plainHeader + "\nhello\n"
	res, rep := scanMessage(t, set, msg)
	if !rep.Failed {
		t.Fatalf("report %+v", rep)
	}
	in := input(parseConf(t, localDomains), msg)
	in.Unpacked, in.AV = res, rep
	v := mustDecide(t, in)
	if v.Blocked || v.LogCategory() != "UNCHECKED" || v.HeaderEdits(v.Recips[0], "", false).SubjectTag != "***UNCHECKED*** " ||
		v.HeaderEdits(v.Recips[1], "", false).SubjectTag != "" {
		t.Errorf("clamd down: blocked %v, category %q", v.Blocked, v.LogCategory())
	}
	in.Policy = &parseConf(t, "virus_scanners_failure_is_fatal = true").Policy
	if v := mustDecide(t, in); text(v.Tempfail) != "451 4.5.0 Error in processing, id=12345-03, virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED" {
		t.Errorf("tempfail %q", text(v.Tempfail))
	}
}
