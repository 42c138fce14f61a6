package testenv

import (
	"compress/gzip"
	"io"
	"os"
	"testing"
)

// Gunzip is the content of the gzip file at path, as amavis's spam quarantine writes it.
func Gunzip(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
