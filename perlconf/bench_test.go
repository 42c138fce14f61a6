package perlconf

import "testing"

// BenchmarkLoadDebianStock loads Debian's stock conf.d into a conf.Config, backticks included.
func BenchmarkLoadDebianStock(b *testing.B) {
	files := debianFiles(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(files, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
