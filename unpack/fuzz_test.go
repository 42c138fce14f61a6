package unpack

// Fuzz targets (run one at a time, e.g. go test ./unpack -run '^$' -fuzz '^FuzzMIME$' -fuzztime 60s):
// FuzzMIME (the MIME walker and everything below it), FuzzArchive (every decoder on one part),
// FuzzCpio, FuzzAr, FuzzRPM, FuzzTNEF, FuzzUU, FuzzTransferEncodings, FuzzParams, FuzzDetect.
// Their hostile seeds are built in seeds_fuzz_test.go.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
)

// fuzzLimits keep a fuzz iteration small.
var fuzzLimits = Limits{MaxLevels: 6, MaxFiles: 200, MinExpansionQuota: 1 << 20, MaxExpansionQuota: 4 << 20}

// fuzzMaxAlloc bounds what one input may make us allocate. fuzzLimits let a message expand
// to 4 MiB and a decoder keep a dictionary of 64 MiB (maxDict): an input that costs more has
// sized an allocation itself, as a 7z member declaring a 3 GiB dictionary did.
const fuzzMaxAlloc = 1 << 30

// heapAllocs is the bytes allocated so far by the process; unlike runtime.ReadMemStats it
// does not stop the world, once per input.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// fuzzDir is a fuzz worker's directory for one input at a time: the worker runs its inputs in
// turn, so one directory cleared between them replaces t.TempDir's two directories created
// and removed per input.
type fuzzDir string

// prepare writes data as name in the directory and returns its path and a clean parts/ path.
func (d fuzzDir) prepare(t *testing.T, name string, data []byte) (path, parts string) {
	parts = filepath.Join(string(d), "parts")
	if err := os.RemoveAll(parts); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(string(d), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, parts
}

// check asserts what must hold for any input: parts/ holds only our pNNN files, each part
// with a file has one of its size, the tree is consistent, nothing was written beside parts/
// and the input cost at most fuzzMaxAlloc (allocs is heapAllocs before it).
func (d fuzzDir) check(t *testing.T, r *Result, parts string, allocs uint64) {
	if n := heapAllocs() - allocs; n > fuzzMaxAlloc {
		t.Fatalf("one input allocated %d MiB", n>>20)
	}
	ents, err := os.ReadDir(string(d))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "parts" && e.Name() != "email.txt" && e.Name() != "in" {
			t.Fatalf("%q written beside parts/", e.Name())
		}
	}
	checkResult(t, r, parts)
}

// checkResult asserts that parts/ holds only our pNNN files, each part with a file has one
// of its size, and the tree is consistent.
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

// fuzzUnpack unpacks msg as a message in d and checks the result.
func fuzzUnpack(t *testing.T, d fuzzDir, u *Unpacker, msg []byte) {
	email, parts := d.prepare(t, "email.txt", msg)
	allocs := heapAllocs()
	r, err := u.Unpack(context.Background(), email, parts)
	if err != nil {
		t.Fatal(err)
	}
	d.check(t, r, parts, allocs)
}

func FuzzMIME(f *testing.F) {
	f.Add(plain2K())
	f.Add(withAttachment("a.zip", "application/zip", zipOf(f, map[string][]byte{"e.com": []byte(eicar)})))
	f.Add([]byte(topHeader + "Content-Type: multipart/mixed; boundary=a=b\n\n--a=b\n\n" + uuencode("x", []byte("hi")) + "\n--a=b--\n"))
	f.Add([]byte(topHeader + "Content-Type: multipart/digest; boundary=\"d\"; boundary=e\n\n--d\n\nSubject: x\nContent-Type: message/rfc822\n\nFrom: y\n\nz\n--d\n"))
	f.Add([]byte(topHeader + "Content-Type: text/plain; name*0*=utf-8''%E2; name*1=\"x\"\nContent-Transfer-Encoding: quoted-printable\n\n=E2=82=AC=\n"))
	for _, s := range mimeSeeds() {
		f.Add(s)
	}
	u := New(fuzzLimits, nil, nil)
	d := fuzzDir(f.TempDir())
	f.Fuzz(func(t *testing.T, msg []byte) { fuzzUnpack(t, d, u, msg) })
}

// fuzzPart runs the decoders on data as the only MIME part of a message.
func fuzzPart(t *testing.T, d fuzzDir, u *Unpacker, data []byte) {
	var b bytes.Buffer
	b.WriteString("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")
	b.WriteString(base64.StdEncoding.EncodeToString(data))
	fuzzUnpack(t, d, u, b.Bytes())
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
	for _, s := range archiveSeeds(f) {
		f.Add(s)
	}
	u := New(fuzzLimits, nil, nil)
	d := fuzzDir(f.TempDir())
	f.Fuzz(func(t *testing.T, data []byte) { fuzzPart(t, d, u, data) })
}

// fuzzDecoder runs one of our parsers directly on data.
func fuzzDecoder(f *testing.F, d decodeFunc, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	u := New(fuzzLimits, nil, nil)
	dir := fuzzDir(f.TempDir())
	f.Fuzz(func(t *testing.T, data []byte) { runDecoder(t, dir, u, d, data) })
}

// runDecoder runs decoder d on data as a top-level part and checks the result.
func runDecoder(t *testing.T, dir fuzzDir, u *Unpacker, d decodeFunc, data []byte) *Result {
	path, parts := dir.prepare(t, "in", data)
	if err := os.Mkdir(parts, 0o750); err != nil {
		t.Fatal(err)
	}
	allocs := heapAllocs()
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
	dir.check(t, j.res, parts, allocs)
	return j.res
}

func FuzzCpio(f *testing.F) {
	fuzzDecoder(f, decodeCpio, []byte("070701"+strings.Repeat("0", 104)), []byte("070707"+strings.Repeat("0", 70)),
		[]byte("\xc7\x71"+strings.Repeat("\x00", 24)),
		cpioNewc(hostileNames[0], 0o100644, []byte(eicar), uint32(len(eicar))),
		cpioNewc(hostileNames[1], 0o120777, []byte("/etc"), 4),
		cpioNewc(hostileNames[4], 0o100644, []byte(eicar), 1<<32-1), // declares 4 GiB
		cpioNewc(strings.Repeat("A", 4096), 0o020644, nil, 0))
}

func FuzzAr(f *testing.F) {
	fuzzDecoder(f, decodeAr, []byte("!<arch>\n//                                              8         `\nlongname/\n/0              0           0     0     644     3         `\nabc\n"),
		[]byte("!<arch>\n#1/5            0           0     0     644     8         `\nnamedata"),
		arGNU(hostileNames[:8], []byte(eicar)))
}

func FuzzRPM(f *testing.F) {
	lead := make([]byte, 96)
	h := []byte("\x8e\xad\xe8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	fuzzDecoder(f, decodeRPM, append(append(append(lead, h...), h...), "payload"...))
}

func FuzzTNEF(f *testing.F) {
	fuzzDecoder(f, decodeTNEF, makeTNEF("a.exe", []byte("MZ")), makeTNEFLong("A~1.EXE", "a long.exe", []byte("MZ")),
		makeTNEFLong(hostileNames[0], hostileNames[5], []byte("MZ")), makeTNEFLong(hostileNames[2], hostileNames[7], []byte("MZ")))
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
		n, err := decodeBase64To(&out, b, nil)
		if err != nil || n != out.Len() || n > len(b) {
			t.Fatalf("base64: n=%d len=%d err=%v", n, out.Len(), err)
		}
		// where the strict decoder accepts clean input, we agree with it
		if want, err := base64.StdEncoding.DecodeString(string(b)); err == nil && !bytes.Equal(want, out.Bytes()) {
			t.Fatalf("base64 differs from the library on clean input")
		}
		out.Reset()
		if n, err := decodeQPTo(&out, b, nil); err != nil || n > len(b) {
			t.Fatalf("qp: n=%d err=%v", n, err)
		}
		xzBlockDict(b)
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

// FuzzCheck7zHeader: the 7z header check reads any bytes without panicking or allocating more
// than the file could justify.
func FuzzCheck7zHeader(f *testing.F) {
	for _, s := range append(hugeDictSeeds()[:3], sevenZipCountSeeds()...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check7zHeader(bytes.NewReader(b), int64(len(b)))
	})
}
