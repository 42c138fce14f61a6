package unpack

// Fuzz targets (run one at a time, e.g. go test ./unpack -run '^$' -fuzz '^FuzzMIME$' -fuzztime 60s):
// FuzzMIME (the MIME walker and everything below it), FuzzArchive (every decoder on one part),
// FuzzCpio, FuzzAr, FuzzRPM, FuzzTNEF, FuzzUU, FuzzTransferEncodings, FuzzParams, FuzzDetect.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzLimits keep a fuzz iteration small.
var fuzzLimits = Limits{MaxLevels: 6, MaxFiles: 200, MinExpansionQuota: 1 << 20, MaxExpansionQuota: 4 << 20}

// checkResult asserts what must hold for any input: parts/ holds only our pNNN files, each part
// with a file has one of its size, and the tree is consistent.
func checkResult(t *testing.T, r *Result, parts string) {
	ents, err := os.ReadDir(parts)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), "p") {
			t.Fatalf("unexpected entry %q in parts/", e.Name())
		}
		files[e.Name()] = true
	}
	for _, p := range r.Parts {
		if p == r.Root {
			continue
		}
		if p.Parent == nil || p.Depth != p.Parent.Depth+1 {
			t.Fatalf("%s: bad parent/depth", p.Name)
		}
		if p.Path != "" && filepath.Dir(p.Path) == parts {
			fi, err := os.Stat(p.Path)
			if err != nil || fi.Size() != p.Size || !files[p.Name] {
				t.Fatalf("%s: file and part disagree (%v)", p.Name, err)
			}
		}
	}
}

func FuzzMIME(f *testing.F) {
	f.Add(plain2K())
	f.Add(withAttachment("a.zip", "application/zip", zipOf(f, map[string][]byte{"e.com": []byte(eicar)})))
	f.Add([]byte(hdr + "Content-Type: multipart/mixed; boundary=a=b\n\n--a=b\n\n" + uuencode("x", []byte("hi")) + "\n--a=b--\n"))
	f.Add([]byte(hdr + "Content-Type: multipart/digest; boundary=\"d\"; boundary=e\n\n--d\n\nSubject: x\nContent-Type: message/rfc822\n\nFrom: y\n\nz\n--d\n"))
	f.Add([]byte(hdr + "Content-Type: text/plain; name*0*=utf-8''%E2; name*1=\"x\"\nContent-Transfer-Encoding: quoted-printable\n\n=E2=82=AC=\n"))
	u := New(fuzzLimits, nil, nil)
	f.Fuzz(func(t *testing.T, msg []byte) {
		dir := t.TempDir()
		email := filepath.Join(dir, "email.txt")
		os.WriteFile(email, msg, 0o600)
		parts := filepath.Join(dir, "parts")
		r, err := u.Unpack(context.Background(), email, parts)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, r, parts)
	})
}

// fuzzPart runs the decoders on data as the only MIME part of a message.
func fuzzPart(t *testing.T, u *Unpacker, data []byte) {
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	var b bytes.Buffer
	b.WriteString("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")
	b.WriteString(base64.StdEncoding.EncodeToString(data))
	os.WriteFile(email, b.Bytes(), 0o600)
	parts := filepath.Join(dir, "parts")
	r, err := u.Unpack(context.Background(), email, parts)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, r, parts)
}

// FuzzArchive feeds every decoder (libraries included) through the tier loop and limits.
func FuzzArchive(f *testing.F) {
	f.Add(zipOf(f, map[string][]byte{"e.com": []byte(eicar)}))
	f.Add(makeRAR("e.com", []byte(eicar), 0, 0))
	f.Add(makeRAR("l", []byte("/etc"), 0, 0o120777))
	f.Add(makeTNEF("e.com", []byte(eicar)))
	f.Add(makeZ([]byte(eicar)))
	f.Add(hostileTar(f))
	f.Add(manyMembers(f, 3))
	u := New(fuzzLimits, nil, nil)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzPart(t, u, data) })
}

// fuzzDecoder runs one of our parsers directly on data.
func fuzzDecoder(f *testing.F, d decodeFunc, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	u := New(fuzzLimits, nil, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "in")
		os.WriteFile(path, data, 0o600)
		parts := filepath.Join(dir, "parts")
		os.Mkdir(parts, 0o750)
		root := &Part{}
		j := &job{u: u, ctx: context.Background(), dir: parts, res: &Result{Root: root}, avail: 1 << 20, rem: 1 << 20}
		p := &Part{Path: path, Size: int64(len(data)), Parent: root, Depth: 1}
		root.Children = []*Part{p}
		if _, err := d(j, p); err != nil {
			var de decodeError
			var h holdError
			if !errors.As(err, &de) && !errors.As(err, &h) {
				t.Fatalf("internal error on hostile input: %v", err)
			}
		}
		j.collect()
		checkResult(t, j.res, parts)
	})
}

func FuzzCpio(f *testing.F) {
	fuzzDecoder(f, decodeCpio, []byte("070701"+strings.Repeat("0", 104)), []byte("070707"+strings.Repeat("0", 70)),
		[]byte("\xc7\x71"+strings.Repeat("\x00", 24)))
}

func FuzzAr(f *testing.F) {
	fuzzDecoder(f, decodeAr, []byte("!<arch>\n//                                              8         `\nlongname/\n/0              0           0     0     644     3         `\nabc\n"),
		[]byte("!<arch>\n#1/5            0           0     0     644     8         `\nnamedata"))
}

func FuzzRPM(f *testing.F) {
	lead := make([]byte, 96)
	h := []byte("\x8e\xad\xe8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	fuzzDecoder(f, decodeRPM, append(append(append(lead, h...), h...), "payload"...))
}

func FuzzTNEF(f *testing.F) {
	fuzzDecoder(f, decodeTNEF, makeTNEF("a.exe", []byte("MZ")), makeTNEFLong("A~1.EXE", "a long.exe", []byte("MZ")))
}

func FuzzUU(f *testing.F) {
	f.Add([]byte(uuencode("a.exe", []byte(eicar))))
	f.Add([]byte("text\nbegin 644 x\n#86)C\n`\nend\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, blk := range findUU(b, 10) {
			if len(blk.data) > len(b) {
				t.Fatal("decoded more than the input")
			}
		}
		decodeUU(b)
	})
}

func FuzzTransferEncodings(f *testing.F) {
	f.Add([]byte("aGVsbG8gd29ybGQ=\r\n"))
	f.Add([]byte("soft=\r\nbreak=3D=zz"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		n, err := decodeBase64To(&out, b)
		if err != nil || n != out.Len() || n > len(b) {
			t.Fatalf("base64: n=%d len=%d err=%v", n, out.Len(), err)
		}
		// where the strict decoder accepts clean input, we agree with it
		if want, err := base64.StdEncoding.DecodeString(string(b)); err == nil && !bytes.Equal(want, out.Bytes()) {
			t.Fatalf("base64 differs from the library on clean input")
		}
		out.Reset()
		if n, err := decodeQPTo(&out, b); err != nil || n > len(b) {
			t.Fatalf("qp: n=%d err=%v", n, err)
		}
		xzDict(b)
	})
}

func FuzzParams(f *testing.F) {
	f.Add(`multipart/mixed; boundary="a\"b"; name*0*=utf-8''%E2%82; name*1*=%AC; filename==?utf-8?q?x?=`)
	f.Add(`text/plain;; charset="unterminated`)
	f.Fuzz(func(t *testing.T, s string) {
		v, ps := parseStructured(s)
		if strings.ContainsAny(v, ";") {
			t.Fatalf("value with ';': %q", v)
		}
		for _, k := range []string{"name", "filename", "boundary"} {
			raw, dec := paramValues(ps, k)
			if len(raw) != len(dec) {
				t.Fatal("raw and decoded names differ in number")
			}
		}
		splitHeader([]byte(s), new([]string))
	})
}

func FuzzDetect(f *testing.F) {
	f.Add([]byte("MZ\x90\x00"))
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte("Subject: x\nFrom: y\n\nbody"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if t := detect(b); t != nil && len(t) == 0 {
			panic("empty short types")
		}
		looksLikeMail(b)
		if len(fallback(b)) == 0 {
			t.Fatal("no fallback type")
		}
	})
}
