package unpack

import (
	"bytes"
	"errors"
	"hash/crc32"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"
)

// Every decoder whose input declares a dictionary or window refuses one over maxDict before
// allocating it: each of these members declares 3 GiB (a 7z of 734 bytes made the daemon
// allocate 3.1 GB per message), and unpacking one allocates no more than a plain message does.
// The member that declares too much is left undecoded, as amavis leaves a member its decoder
// cannot read.
func TestHugeDictionaries(t *testing.T) {
	c := []byte(eicar)
	seeds := hugeDictSeeds()
	names := []string{"7z LZMA2", "7z LZMA", "7z LZMA, size lies", "xz", "xz second block", "xz second stream",
		"lzma, no size", "lzma", "zstd window", "zstd content size", "rar5", "rar5 solid", "rar7"}
	if len(names) != len(seeds) {
		t.Fatalf("%d names for %d seeds", len(names), len(seeds))
	}
	zstd7z := sevenZipCoder{id: []byte{0x04, 0xf7, 0x11, 0x01}}
	seeds = append(seeds, sevenZip("e.com", zstd7z, zstdFrame(c, hugeDict, 0), uint64(len(c)), crc32.ChecksumIEEE(c)))
	names = append(names, "7z zstd")
	for i, seed := range seeds {
		t.Run(names[i], func(t *testing.T) {
			msg := withAttachment("x.bin", "application/octet-stream", seed)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			r, _ := unpackMsg(t, debianLimits, msg)
			el := time.Since(start)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%v, %.1f MiB allocated, hold %q", el, float64(allocated)/(1<<20), r.Hold)
			if allocated > maxDict {
				t.Errorf("allocated %d MiB", allocated>>20)
			}
			if el > 5*time.Second {
				t.Errorf("took %v", el)
			}
			// The member is left undecoded: its data is in no part (the archive or stream
			// itself stays, for the scanners, or the member is listed as U).
			for _, p := range r.Parts {
				if p == r.Root || p.Path == "" {
					continue
				}
				if b, err := os.ReadFile(p.Path); err == nil && bytes.Equal(b, c) {
					t.Errorf("the member was decoded into %s\n%s", p.Path, describe(r))
				}
			}
		})
	}
}

// A 7z header's counts are checked before the library sees them: it allocates for each count
// before reading what it counts, and 2^28 declared files were a fatal "out of memory" that ended
// the process. Each of these is refused, and unpacking it leaves the archive as it is, as when
// the library refuses an archive.
func TestSevenZipHeaderCounts(t *testing.T) {
	seeds := append(sevenZipCountSeeds(), sevenZipRaw(nil, append([]byte{0x01, 0x05}, szNumber(1<<28)...)))
	for i, a := range seeds {
		if err := check7zHeader(bytes.NewReader(a), int64(len(a))); err == nil {
			t.Errorf("seed %d: header accepted", i)
		}
		r, _ := unpackMsg(t, debianLimits, withAttachment("x.7z", "application/x-7z-compressed", a))
		kept := false
		for _, p := range r.Parts {
			kept = kept || slices.Contains(p.ShortTypes, "7z") && p.Path != "" && len(p.Children) == 0
		}
		if !kept {
			t.Errorf("seed %d: the archive is not left as it is\n%s", i, describe(r))
		}
	}
}

// An AES coder declaring 2^40 rounds of key derivation had the library hash for hours, past
// child_timeout: over 7-Zip's own 2^24 the archive is refused, and marked encrypted.
func TestSevenZipKeyDerivationBounded(t *testing.T) {
	c := []byte(eicar)
	aes := sevenZipCoder{id: []byte{0x06, 0xf1, 0x07, 0x01}, props: []byte{40}}
	a := sevenZip("e.com", aes, c, uint64(len(c)), crc32.ChecksumIEEE(c))
	if err := check7zHeader(bytes.NewReader(a), int64(len(a))); !errors.Is(err, errKeyDerivation) {
		t.Fatalf("check7zHeader = %v", err)
	}
	start := time.Now()
	r, _ := unpackMsg(t, debianLimits, withAttachment("x.7z", "application/x-7z-compressed", a))
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	encrypted := false
	for _, p := range r.Parts {
		encrypted = encrypted || slices.Contains(p.ShortTypes, "7z") && p.HasAttr('C')
	}
	if !encrypted {
		t.Errorf("the archive is not marked C\n%s", describe(r))
	}
}

// The library keeps the decoder of each solid folder open: eight solid blocks of 64 MiB each
// held 512 MiB. The dictionaries of the solid folders together are bounded, each counted up to
// its folder's size; folders of one member each close their decoder before the next opens.
func TestSevenZipSolidBlocksBounded(t *testing.T) {
	folders := func(n int, dict int64, size uint64, solid bool) []byte {
		h := []byte{0x01, 0x04, 0x06, 0x00}
		h = append(h, szNumber(uint64(n))...)
		h = append(h, 0x09)
		for range n {
			h = append(h, 0x01)
		}
		h = append(h, 0x00, 0x07, 0x0b)
		h = append(h, szNumber(uint64(n))...)
		h = append(h, 0x00)
		for range n {
			h = append(h, 0x01, 0x21, 0x21, 0x01, lzma2DictByte(dict)) // one LZMA2 coder with props
		}
		h = append(h, 0x0c)
		for range n {
			h = append(h, szNumber(size)...)
		}
		h = append(h, 0x00) // end of UnpackInfo
		if solid {          // SubStreamsInfo: two members per folder, the first of 1 byte
			h = append(h, 0x08, 0x0d)
			for range n {
				h = append(h, 0x02)
			}
			h = append(h, 0x09)
			for range n {
				h = append(h, 0x01)
			}
			h = append(h, 0x00)
		}
		return sevenZipRaw(make([]byte, n), append(h, 0x00, 0x00))
	}
	for _, tc := range []struct {
		n     int
		dict  int64
		size  uint64
		solid bool
		ok    bool
	}{
		{2, 64 << 20, 64 << 20, true, true},   // 128 MiB: the bound
		{3, 64 << 20, 64 << 20, true, false},  // 192 MiB
		{8, 64 << 20, 1 << 20, true, true},    // small folders need small dictionaries
		{8, 64 << 20, 100 << 20, true, false}, // 512 MiB, the finding
		{8, 64 << 20, 100 << 20, false, true}, // one member a folder: one decoder at a time
	} {
		a := folders(tc.n, tc.dict, tc.size, tc.solid)
		err := check7zHeader(bytes.NewReader(a), int64(len(a)))
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, errDictionariesSum) {
			t.Errorf("%d folders (solid %v) of %d MiB over %d bytes: %v", tc.n, tc.solid, tc.dict>>20, tc.size, err)
		}
	}
}
