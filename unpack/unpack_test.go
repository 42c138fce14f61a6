package unpack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrent: one Unpacker serves many messages at once (run with -race).
func TestConcurrent(t *testing.T) {
	u := New(debianLimits, nil, nil)
	msg := withAttachment("a.zip", "application/zip", zipOf(t, map[string][]byte{"e.com": []byte(eicar)}))
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := filepath.Join(dir, fmt.Sprint(i))
			os.Mkdir(d, 0o750)
			email := filepath.Join(d, "email.txt")
			os.WriteFile(email, msg, 0o600)
			r, err := u.Unpack(context.Background(), email, filepath.Join(d, "parts"))
			if err != nil {
				errs <- err
				return
			}
			if got := fileWith(t, r, eicar); len(got) != 1 || got[0].Names[0] != "e.com" {
				errs <- fmt.Errorf("message %d: %s", i, describe(r))
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCancel: a cancelled context is an error (the caller tempfails), not a result.
func TestCancel(t *testing.T) {
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	os.WriteFile(email, withAttachment("a.zip", "application/zip", zipOf(t, map[string][]byte{"x": make([]byte, 1<<20)})), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New(debianLimits, nil, nil).Unpack(ctx, email, filepath.Join(dir, "parts")); err == nil {
		t.Fatal("no error from a cancelled unpack")
	}
}

// TestInternalError: a parts directory we cannot create is an error, not a hold.
func TestInternalError(t *testing.T) {
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	os.WriteFile(email, plain2K(), 0o600)
	if _, err := New(debianLimits, nil, nil).Unpack(context.Background(), email, filepath.Join(dir, "no", "such", "parts")); err == nil {
		t.Fatal("no error")
	}
}
