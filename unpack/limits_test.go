package unpack

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

func TestQuotaFormula(t *testing.T) {
	tests := []struct {
		lim  Limits
		size int64
		want int64
	}{
		{Limits{}, 1000, 500000},                    // undef quotas: size*500
		{debianLimits, 1000, 500000},                // min(300MB, 500*size) wins over 102400
		{debianLimits, 100, 102400},                 // the minimum quota
		{debianLimits, 10 << 20, 314572800},         // capped by MAX_EXPANSION_QUOTA
		{Limits{MaxExpansionQuota: 10}, 1000, 5000}, // size*MIN_FACTOR beats a tiny maximum
		{Limits{MinExpansionFactor: 2, MaxExpansionFactor: 3}, 1000, 3000},
	}
	for _, tc := range tests {
		if got := tc.lim.quota(tc.size); got != tc.want {
			t.Errorf("%+v size %d: quota %d, want %d", tc.lim, tc.size, got, tc.want)
		}
	}
}

func zipOf(t testing.TB, members map[string][]byte) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, c := range members {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(c)
	}
	zw.Close()
	return b.Bytes()
}

func TestLimits(t *testing.T) {
	nested := []byte(eicar)
	for i := 0; i < 3; i++ {
		nested = zipOf(t, map[string][]byte{fmt.Sprintf("l%d", i): nested})
	}
	var many bytes.Buffer
	many.WriteString(topHeader + "Content-Type: multipart/mixed; boundary=m\n\n")
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&many, "--m\n\npart %d\n", i)
	}
	many.WriteString("--m--\n")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(make([]byte, 1<<20))
	zw.Close()

	tests := []struct {
		name string
		lim  Limits
		msg  []byte
		hold string
	}{
		{"MAXLEVELS", Limits{MaxLevels: 3}, withAttachment("n.zip", "application/zip", nested),
			"Maximum decoding depth (3) exceeded"},
		{"MAXLEVELS enough", Limits{MaxLevels: 6}, withAttachment("n.zip", "application/zip", nested), ""},
		{"MAXFILES", Limits{MaxFiles: 3}, many.Bytes(), "Maximum number of files (3) exceeded"},
		{"MAXFILES enough", Limits{MaxFiles: 6}, many.Bytes(), ""},
		{"quota", Limits{MaxExpansionQuota: 100000}, withAttachment("z.gz", "application/gzip", gz.Bytes()),
			"Exceeded storage quota 100000 bytes by gunzip; last chunk "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, parts := unpackMsg(t, tc.lim, tc.msg)
			if tc.hold == "" && r.Hold != "" || !strings.HasPrefix(r.Hold, tc.hold) {
				t.Fatalf("hold %q, want %q\n%s", r.Hold, tc.hold, describe(r))
			}
			if tc.name == "quota" {
				if n := dirBytes(t, parts); n > 100000 {
					t.Errorf("parts/ holds %d bytes, over the quota", n)
				}
			}
		})
	}
}

func dirBytes(t testing.TB, dir string) int64 {
	var n int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestEncrypted: password-protected members and PGP data are marked C.
func TestEncrypted(t *testing.T) {
	cases := []struct {
		name  string
		progs []string
		data  func(t *testing.T) []byte
	}{
		{"zip", []string{"zip"}, func(t *testing.T) []byte {
			return inDir(t, "e.com", []byte(eicar), "o.zip", "zip", "-q", "-P", "secret", "o.zip", "e.com")
		}},
		{"7z", []string{"7z"}, func(t *testing.T) []byte {
			return inDir(t, "e.com", []byte(eicar), "o.7z", "7z", "a", "-bd", "-bso0", "-psecret", "o.7z", "e.com")
		}},
		// Stored and encrypted: without the password the data decrypts to garbage of the right
		// length that no decoder rejects; only its CRC shows it is not the member.
		{"7z stored", []string{"7z"}, func(t *testing.T) []byte {
			return inDir(t, "e.com", []byte(eicar), "o.7z", "7z", "a", "-bd", "-bso0", "-m0=Copy", "-psecret", "o.7z", "e.com")
		}},
		{"7z encrypted headers", []string{"7z"}, func(t *testing.T) []byte {
			return inDir(t, "e.com", []byte(eicar), "o.7z", "7z", "a", "-bd", "-bso0", "-psecret", "-mhe=on", "o.7z", "e.com")
		}},
		{"rar", nil, func(t *testing.T) []byte { return makeRAR("e.com", []byte(eicar), 0x04, 0) }},
		{"pgp", nil, func(t *testing.T) []byte {
			return []byte("-----BEGIN PGP MESSAGE-----\n\nhQEMA1234\n-----END PGP MESSAGE-----\n")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.progs {
				needProg(t, p)
			}
			r, _ := unpackMsg(t, debianLimits, withAttachment("x.bin", "application/octet-stream", tc.data(t)))
			if !r.Encrypted() {
				t.Fatalf("not marked encrypted\n%s", describe(r))
			}
			if len(fileWith(t, r, eicar)) > 0 {
				t.Errorf("an encrypted member came out in clear?\n%s", describe(r))
			}
		})
	}
}

// measure runs Unpack and reports the wall time and the peak heap growth during it.
func measure(t *testing.T, lim Limits, msg []byte) (*Result, string, time.Duration, uint64) {
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	if err := os.WriteFile(email, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
		}
	}()
	start := time.Now()
	r, err := New(lim, nil, nil).Unpack(context.Background(), email, filepath.Join(dir, "parts"))
	el := time.Since(start)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	extra := uint64(0)
	if p := peak.Load(); p > base {
		extra = p - base
	}
	return r, filepath.Join(dir, "parts"), el, extra
}

// gzipBomb is a multi-member gzip stream of n bytes of zeros.
func gzipBomb(t *testing.T, n int64) []byte {
	const chunk = 64 << 20
	var one bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&one, gzip.BestCompression)
	zw.Write(make([]byte, chunk))
	zw.Close()
	return bytes.Repeat(one.Bytes(), int(n/chunk))
}

// zipBomb nests zips 16 wide, levels deep, around 10 MB of zeros (42.zip style): each level
// is small because the repeated members sit inside deflate's window.
func zipBomb(t *testing.T, levels int) []byte {
	zeros := make([]byte, 10<<20)
	var blob bytes.Buffer
	fw, _ := flate.NewWriter(&blob, flate.BestCompression)
	fw.Write(zeros)
	fw.Close()
	crc := crc32.ChecksumIEEE(zeros)
	var cur bytes.Buffer
	zw := zip.NewWriter(&cur)
	for i := 0; i < 16; i++ {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("%d.dat", i), Method: zip.Deflate,
			CRC32: crc, CompressedSize64: uint64(blob.Len()), UncompressedSize64: uint64(len(zeros))})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(blob.Bytes())
	}
	zw.Close()
	data := cur.Bytes()
	for l := 1; l < levels; l++ {
		m := map[string][]byte{}
		for i := 0; i < 16; i++ {
			m[fmt.Sprintf("lib%d-%d.zip", l, i)] = data
		}
		data = zipOf(t, m)
	}
	return data
}

func manyMembers(t testing.TB, n int) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := 0; i < n; i++ {
		w, _ := zw.Create(fmt.Sprint(i))
		w.Write([]byte{'x'})
	}
	zw.Close()
	return b.Bytes()
}

// TestBombs: a 42.zip-style nested zip and a gzip of 10 GB stop within 2 s and 64 MB of extra
// heap, leave parts/ under the quota and put the message on hold with amavis's reason.
func TestBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("bombs take a few seconds to build")
	}
	if raceBuild {
		t.Skip("timed: checked in a build without -race (make test runs it so)")
	}
	zb := zipBomb(t, 4)
	gb := gzipBomb(t, 10<<30)
	t.Logf("zip bomb %d bytes (%.0f GB unpacked), gzip bomb %d bytes (10 GB unpacked)",
		len(zb), float64(16*16*16*16)*10/1024, len(gb))
	cases := []struct {
		name string
		lim  Limits
		msg  []byte
		hold string
	}{
		{"zip bomb, Debian limits", debianLimits, withAttachment("42.zip", "application/zip", zb), "Exceeded storage quota "},
		{"zip of 20000 members", debianLimits, withAttachment("many.zip", "application/zip", manyMembers(t, 20000)),
			"Maximum number of files (1500) exceeded"},
		{"gzip 10 GB", debianLimits, withAttachment("big.gz", "application/gzip", gb), "Exceeded storage quota 314572800 bytes by gunzip"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, parts, el, extra := measure(t, tc.lim, tc.msg)
			t.Logf("%s: %v, peak extra heap %.1f MB, parts/ %d bytes, hold %q", tc.name, el, float64(extra)/(1<<20), dirBytes(t, parts), r.Hold)
			if !strings.HasPrefix(r.Hold, tc.hold) {
				t.Errorf("hold %q, want %q", r.Hold, tc.hold)
			}
			if el > 2*time.Second {
				t.Errorf("took %v", el)
			}
			if extra > 64<<20 {
				t.Errorf("extra heap %d bytes", extra)
			}
			if q := tc.lim.quota(int64(len(tc.msg))); dirBytes(t, parts) > q {
				t.Errorf("parts/ holds %d bytes, quota %d", dirBytes(t, parts), q)
			}
		})
	}
}

// TestMIMEWorstCases: inputs that would make a naive walker quadratic stay fast.
func TestMIMEWorstCases(t *testing.T) {
	if raceBuild {
		t.Skip("timed: checked in a build without -race (make test runs it so)")
	}
	var dashes bytes.Buffer
	dashes.WriteString(topHeader + "Content-Type: multipart/mixed\n\n")
	for i := 0; dashes.Len() < 4<<20; i++ {
		fmt.Fprintf(&dashes, "--x%d\n", i)
	}
	var nested bytes.Buffer
	nested.WriteString(topHeader)
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&nested, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	nested.WriteString("\n" + strings.Repeat("deep body\n", 100000))
	var many bytes.Buffer
	many.WriteString(topHeader + "Content-Type: multipart/mixed; boundary=m\n\n")
	for many.Len() < 4<<20 {
		many.WriteString("--m\n\nx\n--not-it\n")
	}
	// 95 parts each with a 100 kB folded field: as costly as a plain message of that size
	var foldedParts bytes.Buffer
	foldedParts.WriteString(topHeader + "Content-Type: multipart/mixed; boundary=f\n\n")
	for i := 0; i < 95; i++ {
		foldedParts.WriteString("--f\nContent-Type: text/plain\nX-Folded: x" + strings.Repeat("\n y", 100<<10/3) + "\n\npart\n")
	}
	foldedParts.WriteString("--f--\n")
	for name, msg := range map[string][]byte{"dash lines": dashes.Bytes(), "deep nesting": nested.Bytes(), "many parts": many.Bytes(),
		"1 MB folded header": foldedHeader(1 << 20), "95 parts with 100 kB folded headers": foldedParts.Bytes()} {
		t.Run(name, func(t *testing.T) {
			r, _, el, extra := measure(t, debianLimits, msg)
			t.Logf("%v, %d parts, hold %q, extra heap %.1f MB", el, len(r.Parts), r.Hold, float64(extra)/(1<<20))
			limit := 2 * time.Second
			if strings.Contains(name, "folded") {
				limit = time.Second // unfolding is linear: 1 MB took 15 s when it was not
			}
			if el > limit {
				t.Errorf("took %v", el)
			}
		})
	}
}

// A 7z member whose stored data was damaged decodes without error but fails its CRC: it is
// undecipherable (U), not encrypted.
func TestSevenZipCRCMismatch(t *testing.T) {
	needProg(t, "7z")
	archive := inDir(t, "e.com", []byte(eicar), "o.7z", "7z", "a", "-bd", "-bso0", "-m0=Copy", "o.7z", "e.com")
	at := bytes.Index(archive, []byte(eicar))
	if at < 0 {
		t.Fatal("the stored member is not in the archive")
	}
	archive[at] ^= 0x20
	r, _ := unpackMsg(t, debianLimits, withAttachment("x.7z", "application/x-7z-compressed", archive))
	var member *Part
	for _, p := range r.Parts {
		if slices.Contains(p.Names, "e.com") {
			member = p
		}
	}
	if member == nil || !member.HasAttr('U') || member.HasAttr('C') || r.Encrypted() {
		t.Errorf("the damaged member is not U alone\n%s", describe(r))
	}
}
