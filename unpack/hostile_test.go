package unpack

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An absolute target that hostile members name; it must never come into existence.
const absTarget = "/tmp/amavisgo-unpack-hostile-target"

func hostileTar(t testing.TB) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "../../escape.txt", Typeflag: tar.TypeReg}, "dotdot")
	add(&tar.Header{Name: absTarget, Typeflag: tar.TypeReg}, "absolute")
	add(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: filepath.Dir(absTarget)}, "")
	add(&tar.Header{Name: "link/" + filepath.Base(absTarget), Typeflag: tar.TypeReg}, "through link")
	add(&tar.Header{Name: "hard", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}, "")
	add(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, "")
	add(&tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}, "")
	tw.Close()
	return b.Bytes()
}

func hostileZip(t *testing.T) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("../../escape.txt")
	w.Write([]byte("dotdot"))
	w, _ = zw.Create(absTarget)
	w.Write([]byte("absolute"))
	h := &zip.FileHeader{Name: "link"}
	h.SetMode(fs.ModeSymlink | 0o777)
	w, _ = zw.CreateHeader(h)
	w.Write([]byte(filepath.Dir(absTarget)))
	w, _ = zw.Create(`..\..\win.txt`)
	w.Write([]byte("backslash"))
	zw.Close()
	return b.Bytes()
}

// TestHostileNames: no member name, link or device can create or reach anything outside
// parts/; names are metadata, links and devices are recorded as L and S without a file.
func TestHostileNames(t *testing.T) {
	cases := []struct {
		name  string
		progs []string
		data  func(t *testing.T) []byte
		attrs string // attributes that must appear on members
	}{
		{"tar", nil, func(t *testing.T) []byte { return hostileTar(t) }, "LS"},
		{"zip", nil, hostileZip, "L"},
		{"rar dotdot", nil, func(t *testing.T) []byte {
			return makeRAR("../../escape.txt", []byte("dotdot"), 0, 0)
		}, ""},
		{"rar symlink", nil, func(t *testing.T) []byte {
			return makeRAR("link", []byte(absTarget), 0, 0o120777)
		}, "L"},
		{"cpio", []string{"cpio"}, func(t *testing.T) []byte {
			dir := t.TempDir()
			os.Symlink(filepath.Dir(absTarget), filepath.Join(dir, "link"))
			os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
			return run(t, dir, []byte("link\nf\n"), "cpio", "--quiet", "-o", "-H", "newc")
		}, "L"},
		{"7z", []string{"7z"}, func(t *testing.T) []byte {
			dir := t.TempDir()
			os.Symlink(filepath.Dir(absTarget), filepath.Join(dir, "link"))
			run(t, dir, nil, "7z", "a", "-snl", "-bd", "-bso0", "o.7z", "link")
			b, _ := os.ReadFile(filepath.Join(dir, "o.7z"))
			return b
		}, "L"},
		{"cab via cabextract", []string{"cabextract"}, func(t *testing.T) []byte {
			return makeCAB(`..\..\escape.txt`, []byte("dotdot"))
		}, ""},
		{"cab absolute", []string{"cabextract"}, func(t *testing.T) []byte {
			return makeCAB(absTarget, []byte("absolute"))
		}, ""},
		{"arj dotdot", []string{"arj"}, func(t *testing.T) []byte {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
			os.WriteFile(filepath.Join(dir, "escape.txt"), []byte("dotdot"), 0o644)
			run(t, filepath.Join(dir, "a", "b"), nil, "arj", "a", "-jf", "o.arj", "../../escape.txt") // -jf keeps the path
			if got := string(run(t, filepath.Join(dir, "a", "b"), nil, "arj", "v", "o.arj")); !strings.Contains(got, "../../escape.txt") {
				t.Fatalf("arj did not store the path: %s", got)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "a", "b", "o.arj"))
			return b
		}, ""},
		{"lha via 7z", []string{"7z"}, func(t *testing.T) []byte {
			return makeLHA("../../escape.txt", []byte("dotdot"))
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.progs {
				needProg(t, p)
			}
			os.Remove(absTarget)
			r, parts := unpackMsg(t, debianLimits, withAttachment("evil.bin", "application/octet-stream", tc.data(t)))
			top := filepath.Dir(parts)
			ents, _ := os.ReadDir(top)
			for _, e := range ents {
				if e.Name() != "email.txt" && e.Name() != "parts" {
					t.Errorf("created outside parts/: %s", e.Name())
				}
			}
			for _, p := range []string{absTarget, filepath.Join(top, "..", "escape.txt"), filepath.Join(parts, "..", "..", "escape.txt")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s exists", p)
				}
			}
			assertOnlyParts(t, parts)
			attrs := ""
			for _, p := range r.Parts {
				attrs += p.Attrs
				for _, n := range p.Names {
					if p.Type == "" && strings.ContainsAny(n, `/\`) {
						t.Errorf("member name with a path: %q", n)
					}
				}
			}
			for _, a := range tc.attrs {
				if !strings.ContainsRune(attrs, a) {
					t.Errorf("no member marked %c\n%s", a, describe(r))
				}
			}
			if len(fileWith(t, r, "dotdot"))+len(fileWith(t, r, "absolute"))+len(fileWith(t, r, "x")) == 0 && tc.attrs == "" {
				t.Errorf("the member was not extracted at all\n%s", describe(r))
			}
		})
	}
}
