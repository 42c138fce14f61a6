package unpack

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// pe is a minimal Windows PE image: MZ stub, PE signature, COFF header and the start of a
// PE32 optional header; dll sets IMAGE_FILE_DLL.
func pe(dll bool) []byte {
	b := make([]byte, 0x40+4+20+0xe0)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	coff := b[0x44:]
	binary.LittleEndian.PutUint16(coff[0:], 0x14c) // i386
	binary.LittleEndian.PutUint16(coff[16:], 0xe0)
	ch := uint16(0x0102) // executable, 32-bit
	if dll {
		ch |= 0x2000
	}
	binary.LittleEndian.PutUint16(coff[18:], ch)
	opt := coff[20:]
	binary.LittleEndian.PutUint16(opt[0:], 0x10b)
	binary.LittleEndian.PutUint16(opt[68:], 2) // GUI
	return b
}

// TestShortTypes: the types banned rules see (Amavis::Unpackers' determine_file_types), for samples
// that file(1) — which amavis asks — describes as the kind of file the row claims: a wrong sample
// fails the row before our answer is looked at.
func TestShortTypes(t *testing.T) {
	needProg(t, "file")
	fromFile := func(path string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	lit := func(s string) func(t *testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }
	tests := []struct {
		name  string
		data  func(t *testing.T) []byte
		file  string // what file -b says, a regexp
		want  []string
		progs []string
	}{
		{"Windows program", func(*testing.T) []byte { return pe(false) }, `^PE32 executable \(GUI\) .*MS Windows`, []string{"exe", "exe-ms"}, nil},
		{"Windows DLL", func(*testing.T) []byte { return pe(true) }, `^PE32 executable \(DLL\)`, []string{"exe", "dll"}, nil},
		{"DOS program", lit("MZ" + string(make([]byte, 126))), `^MS-DOS executable`, []string{"exe", "exe-ms"}, nil},
		{"ELF program", fromFile("/bin/true"), `^ELF .* executable`, []string{"exe", "exe-unix"}, nil},
		{"ELF library", func(t *testing.T) []byte {
			libs, _ := filepath.Glob("/usr/lib/*/libz.so.1") // zlib: a library without an entry point
			if len(libs) == 0 {
				t.Fatal("no libz.so.1 under /usr/lib")
			}
			return fromFile(libs[0])(t)
		}, `^ELF .*shared object`, []string{"so"}, nil},
		{"zip", func(t *testing.T) []byte { return zipOf(t, map[string][]byte{"a.txt": []byte("a")}) }, `^Zip archive`, []string{"zip"}, nil},
		{"rar", func(*testing.T) []byte { return makeRAR("a.txt", []byte("a"), 0, 0) }, `^RAR archive`, []string{"rar"}, nil},
		{"7z", func(t *testing.T) []byte {
			return inDir(t, "a.txt", []byte("a"), "o.7z", "7z", "a", "-bd", "-bso0", "o.7z", "a.txt")
		}, `^7-zip archive`, []string{"7z"}, []string{"7z"}},
		{"gzip", func(t *testing.T) []byte { return run(t, "", []byte("a"), "gzip", "-c") }, `^gzip compressed`, []string{"gz"}, []string{"gzip"}},
		{"bzip2", func(t *testing.T) []byte { return run(t, "", []byte("a"), "bzip2", "-c") }, `^bzip2 compressed`, []string{"bz2"}, []string{"bzip2"}},
		{"xz", func(t *testing.T) []byte { return run(t, "", []byte("a"), "xz", "-c") }, `^XZ compressed`, []string{"xz"}, []string{"xz"}},
		{"zstd", func(t *testing.T) []byte { return run(t, "", []byte("a"), "zstd", "-q", "-c") }, `^Zstandard compressed`, []string{"zst"}, []string{"zstd"}},
		{"tar", func(t *testing.T) []byte { return hostileTar(t)[:1536] }, `tar archive`, []string{"tar"}, nil},
		{"cab", func(*testing.T) []byte { return makeCAB("a.txt", []byte("a")) }, `^Microsoft Cabinet archive`, []string{"cab"}, nil},
		{"OLE document", func(t *testing.T) []byte { return makeOLE(t, "WordDocument", []byte("a")) }, `^(Composite Document File V2 Document|CDFV2 Microsoft Word)`, []string{"doc", "cdf-ms"}, []string{"7z"}},
		{"TNEF", func(*testing.T) []byte { return makeTNEF("a.txt", []byte("a")) }, `^Transport Neutral Encapsulation Format`, []string{"tnef"}, nil},
		{"PDF", lit("%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"), `^PDF document`, []string{"pdf"}, nil},
		{"RTF", lit("{\\rtf1\\ansi hello}\n"), `^Rich Text Format`, []string{"rtf"}, nil},
		{"HTML", lit("<!DOCTYPE html>\n<html><head><title>x</title></head><body>hi</body></html>\n"), `^HTML document`, []string{"html"}, nil},
		{"ASCII text", lit("Hello,\nplain ASCII text here.\n"), `^ASCII text`, []string{"asc"}, nil},
		{"UTF-8 text", lit("Grüße aus Köln, mit Umlauten.\n"), `^Unicode text, UTF-8 text`, []string{"txt"}, nil},
		{"uuencoded", lit(uuencode("a.exe", []byte("MZ program bytes"))), `^uuencoded`, []string{"uue"}, nil},
		{"PGP message", lit("-----BEGIN PGP MESSAGE-----\n\nhQEMA1234567\n-----END PGP MESSAGE-----\n"), `^PGP message`, []string{"pgp", "pgp.enc"}, nil},
		{"JPEG", lit("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"), `^JPEG image data`, []string{"image", "jpg"}, nil},
		{"PNG", lit("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"), `^PNG image data`, []string{"image", "png"}, nil},
		{"GIF", lit("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), `^GIF image data`, []string{"image", "gif"}, nil},
		{"random data", func(*testing.T) []byte {
			b := make([]byte, 4096)
			rand.New(rand.NewSource(7)).Read(b)
			b[0], b[1] = 0x12, 0x34 // no magic by chance
			return b
		}, `^data$`, []string{"dat"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.progs {
				needProg(t, p)
			}
			data := tc.data(t)
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "sample"), data, 0o644)
			desc := string(bytes.TrimSpace(run(t, dir, nil, "file", "-b", "sample")))
			if !regexp.MustCompile(tc.file).MatchString(desc) {
				t.Fatalf("file(1) says %q of the sample, want %s", desc, tc.file)
			}
			r, _ := unpackMsg(t, debianLimits, withAttachment("sample.bin", "application/octet-stream", data))
			var got *Part
			for _, p := range r.Parts {
				if slices.Contains(p.Names, "sample.bin") {
					got = p
				}
			}
			if got == nil || !slices.Equal(got.ShortTypes, tc.want) {
				t.Errorf("file(1): %q; short types %v, want %v\n%s", desc, got.ShortTypes, tc.want, describe(r))
			}
		})
	}
}
