package unpack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
	if _, err := New(debianLimits, nil, nil).Unpack(ctx, email, filepath.Join(dir, "parts")); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled unpack returned %v", err)
	}
}

// expiring is a context that expires after its Err has been asked n times: child_timeout
// running out at a known point of the work.
type expiring struct {
	context.Context
	n atomic.Int32
}

func (e *expiring) Err() error {
	if e.n.Add(-1) < 0 {
		return context.DeadlineExceeded
	}
	return nil
}

// child_timeout is observed inside the MIME walk too: a message of a thousand parts stops
// between two of them, not after writing them all.
func TestCancelDuringMIMEWalk(t *testing.T) {
	var msg strings.Builder
	msg.WriteString(topHeader + "Content-Type: multipart/mixed; boundary=m\n\n")
	for range 1000 {
		msg.WriteString("--m\nContent-Type: text/plain\n\npart\n")
	}
	dir := t.TempDir()
	email := filepath.Join(dir, "email.txt")
	os.WriteFile(email, []byte(msg.String()), 0o600)
	ctx := &expiring{Context: context.Background()}
	ctx.n.Store(10)
	parts := filepath.Join(dir, "parts")
	if _, err := New(debianLimits, nil, nil).Unpack(ctx, email, parts); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unpack past its deadline returned %v", err)
	}
	if written, _ := os.ReadDir(parts); len(written) > 20 {
		t.Errorf("%d parts written after the deadline passed", len(written))
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
