package panics

import (
	"errors"
	"strings"
	"testing"
)

//go:noinline
func faulty(b []byte) byte { return b[3] }

func run(b []byte) (err error) {
	defer Catch(&err)
	faulty(b)
	return nil
}

func TestCatch(t *testing.T) {
	if err := run(make([]byte, 4)); err != nil {
		t.Fatalf("no panic: err = %v", err)
	}
	err := run(nil)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if !strings.HasPrefix(err.Error(), "panic: runtime error: index out of range [3] with length 0") {
		t.Errorf("Error() = %q", err.Error())
	}
	frames := pe.Frames()
	if len(frames) < 2 || !strings.HasPrefix(frames[0], "amavisgo/internal/panics.faulty at ") ||
		!strings.Contains(frames[0], "panics_test.go:") || !strings.HasPrefix(frames[1], "amavisgo/internal/panics.run at ") {
		t.Errorf("Frames() = %q, want faulty then run first", frames)
	}
}
