package unpack

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMissingProgram: a format whose program is missing is logged once at start-up, and its
// parts are left as they are for the scanners.
// unpackCAB unpacks, with u, a message with a cabinet holding EICAR.
func unpackCAB(t *testing.T, u *Unpacker) *Result {
	t.Helper()
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	os.WriteFile(email, withAttachment("x.cab", "application/vnd.ms-cab-compressed", makeCAB("eicar.com", []byte(eicar))), 0o600)
	r, err := u.Unpack(context.Background(), email, filepath.Join(dir, "parts"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMissingProgram(t *testing.T) {
	var logged []string
	u := New(debianLimits, []string{t.TempDir()}, func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) })
	if !strings.Contains(strings.Join(logged, "\n"), "No decoder for cab: none of cabextract found") {
		t.Errorf("start-up log %q", logged)
	}
	if u.Programs()["cab"] != "" || u.Programs()["zip"] != "internal" {
		t.Errorf("Programs() = %v", u.Programs())
	}
	n := len(logged)
	r := unpackCAB(t, u)
	if len(logged) != n {
		t.Errorf("logged again per message: %q", logged[n:])
	}
	var cab *Part
	for _, p := range r.Parts {
		if len(p.ShortTypes) > 0 && p.ShortTypes[0] == "cab" {
			cab = p
		}
	}
	if cab == nil || cab.Path == "" || len(cab.Children) != 0 {
		t.Fatalf("the cabinet should stay as it is\n%s", describe(r))
	}
}

// TestExternalQuota: what an external program extracts counts against the quota too.
func TestExternalQuota(t *testing.T) {
	needProg(t, "cabextract")
	big := make([]byte, 300<<10)
	rand.New(rand.NewSource(1)).Read(big)
	lim := Limits{MinExpansionFactor: 1, MaxExpansionFactor: 1}
	r, parts := unpackMsg(t, lim, withAttachment("x.cab", "application/octet-stream", makeCAB("big.bin", big)))
	if !strings.HasPrefix(r.Hold, "Exceeded storage quota ") || !strings.Contains(r.Hold, " by cabextract; ") {
		t.Fatalf("hold %q\n%s", r.Hold, describe(r))
	}
	assertOnlyParts(t, parts)
}

// TestSelfExtracting: archives appended to a program are unpacked, the program is kept.
func TestSelfExtracting(t *testing.T) {
	stub := append([]byte("MZ"), make([]byte, 4094)...)
	for name, arc := range map[string][]byte{
		"zip": zipOf(t, map[string][]byte{"e.com": []byte(eicar)}),
		"rar": makeRAR("e.com", []byte(eicar), 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := unpackMsg(t, debianLimits, withAttachment("setup.exe", "application/octet-stream", append(stub, arc...)))
			if len(fileWith(t, r, eicar)) != 1 {
				t.Fatalf("member not extracted\n%s", describe(r))
			}
			exe := r.Parts[len(r.Parts)-1].Parent
			if exe.Path == "" || exe.ShortTypes[0] != "exe" {
				t.Errorf("the program should be kept\n%s", describe(r))
			}
		})
	}
}

// TestTNEFLongName: the long file name of a winmail.dat attachment (MAPI properties) is a
// declared name next to the 8.3 title, as the tnef program shows it.
func TestTNEFLongName(t *testing.T) {
	data := makeTNEFLong("INVOIC~1.EXE", "invoice.pdf.exe", []byte(eicar))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "winmail.dat"), data, 0o644)
	if got := string(run(t, dir, nil, "tnef", "-t", "-f", "winmail.dat")); !strings.Contains(got, "invoice.pdf.exe") {
		t.Fatalf("tnef -t: %q", got)
	}
	r, _ := unpackMsg(t, debianLimits, withAttachment("winmail.dat", "application/ms-tnef", data))
	got := fileWith(t, r, eicar)
	if len(got) != 1 || strings.Join(got[0].Names, ",") != "INVOIC~1.EXE,invoice.pdf.exe" {
		t.Fatalf("names\n%s", describe(r))
	}
}

// TestExternalTimeLimit: a decoder program that never finishes is stopped at the time limit,
// together with what it started, and its part is left as it is for the scanners.
func TestExternalTimeLimit(t *testing.T) {
	bin := t.TempDir()
	// both hand their output to a child that outlives them unless the whole group is killed
	for _, prog := range []string{"uncompress", "cabextract"} {
		if err := os.WriteFile(filepath.Join(bin, prog), []byte("#!/bin/sh\nsleep 60\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	defer func(d time.Duration) { externalTimeout = d }(externalTimeout)
	externalTimeout = 300 * time.Millisecond
	u := New(debianLimits, []string{bin, "/usr/bin", "/bin"}, nil)
	for name, data := range map[string][]byte{"x.Z": makeZ([]byte(eicar)), "x.cab": makeCAB("eicar.com", []byte(eicar))} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			email := filepath.Join(dir, "email.txt")
			os.WriteFile(email, withAttachment(name, "application/octet-stream", data), 0o600)
			start := time.Now()
			r, err := u.Unpack(context.Background(), email, filepath.Join(dir, "parts"))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v; the time limit is %v", took, externalTimeout)
			}
			if err != nil || r.Hold != "" {
				t.Fatalf("Unpack: %v, hold %q", err, r.Hold)
			}
			var part *Part
			for _, p := range r.Parts {
				if slices.Contains(p.Names, name) {
					part = p
				}
			}
			if part == nil || part.Path == "" {
				t.Errorf("the part should stay as it is\n%s", describe(r))
			}
			assertOnlyParts(t, filepath.Join(dir, "parts"))
		})
	}
}

// An external decoder runs with its data limited to externalMemoryLimit, from its
// first instruction on: a decompressor that a hostile archive asks for gigabytes fails on that
// member instead of taking the machine's memory. The "cabextract" here reports the limit it got
// as the member it extracts.
func TestExternalMemoryLimit(t *testing.T) {
	bin := t.TempDir()
	script := "#!/bin/sh\nulimit -d > limit.txt\n"
	if err := os.WriteFile(filepath.Join(bin, "cabextract"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	u := New(debianLimits, []string{bin}, nil)
	r := unpackCAB(t, u)
	want := fmt.Sprintf("%d\n", externalMemoryLimit>>10)
	for _, p := range r.Parts {
		if slices.Contains(p.Names, "limit.txt") {
			if b, _ := os.ReadFile(p.Path); string(b) != want {
				t.Errorf("the decoder ran with ulimit -d %q, want %q", b, want)
			}
			return
		}
	}
	t.Fatalf("no member limit.txt\n%s", describe(r))
}
