// Package panics turns a panic in the work on one message into an error carrying its stack, so
// that the message is tempfailed (the MTA keeps it) and the daemon goes on. Decoders of hostile
// input (archive libraries, MIME, our own parsers) are where one is most likely.
package panics

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Error is a recovered panic.
type Error struct {
	Value any
	Stack []byte // debug.Stack() where it was recovered
}

func (e *Error) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Catch, deferred directly (defer panics.Catch(&err)), stores a panic of the function in *err.
func Catch(err *error) {
	if v := recover(); v != nil {
		*err = &Error{Value: v, Stack: debug.Stack()}
	}
}

// Frames is the stack as one line per call, innermost first, without the frames of the panic
// machinery and of Catch itself: "amavisgo/unpack.decode7z at /src/unpack/decoders.go:123".
func (e *Error) Frames() []string {
	lines := strings.Split(strings.TrimSpace(string(e.Stack)), "\n")
	var out []string
	for i := 1; i+1 < len(lines); i += 2 { // lines[0] is "goroutine N [running]:"
		fn := lines[i]
		if p := strings.LastIndexByte(fn, '('); p > 0 {
			fn = fn[:p]
		}
		at := strings.TrimSpace(lines[i+1])
		if p := strings.LastIndex(at, " +0x"); p > 0 {
			at = at[:p]
		}
		switch fn {
		case "runtime/debug.Stack", "panic", "amavisgo/internal/panics.Catch":
			out = out[:0] // what came before is the recovery, not the fault
			continue
		}
		out = append(out, fn+" at "+at)
	}
	return out
}
