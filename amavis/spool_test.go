package amavis

import (
	"bytes"
	"testing"
)

func TestHas8bit(t *testing.T) {
	ascii := bytes.Repeat([]byte("plain text\r\n"), 20)
	for n := 0; n <= len(ascii); n++ {
		if has8bit(ascii[:n]) {
			t.Fatalf("has8bit(%d ASCII bytes) = true", n)
		}
		// one 8-bit byte at every position, also in the tail shorter than a word
		for i := 0; i < n; i++ {
			p := bytes.Clone(ascii[:n])
			p[i] = 0x80 | byte(i)
			if !has8bit(p) {
				t.Fatalf("has8bit misses byte %#x at %d of %d", p[i], i, n)
			}
		}
	}
}

func FuzzHas8bit(f *testing.F) {
	f.Add([]byte("Subject: h\xc3\xa9\r\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		want := false
		for _, c := range p {
			want = want || c >= 0x80
		}
		if has8bit(p) != want {
			t.Errorf("has8bit(%q) = %v", p, !want)
		}
	})
}

// BenchmarkHas8bit: a 100 KB all-ASCII message, the case that reads every byte.
func BenchmarkHas8bit(b *testing.B) {
	p := bytes.Repeat([]byte("the quarterly figures are attached\r\n"), 100<<10/36)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if has8bit(p) {
			b.Fatal("8-bit")
		}
	}
}
