package perlconf

import (
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a Perl value.
type Kind uint8

// The kinds of Value.
const (
	Undef Kind = iota
	Str
	Num
	ArrayRef  // [ ... ] or \@x
	HashRef   // { ... } or \%x
	ScalarRef // \$x
	CodeRef   // \&ask_daemon, sub { ... }
	Regexp    // qr/.../flags
	ReList    // new_RE(...): an Amavis::Lookup::RE object
)

// Value is a Perl scalar value. References point at the variable's own cell, so a change to the
// variable after the reference was taken is seen through it, as in Perl.
type Value struct {
	Kind Kind
	S    string  // Str; Regexp: the pattern; CodeRef: the function name or sub's source
	N    float64 // Num
	A    *Array  // ArrayRef, ReList (its elements)
	H    *Hash   // HashRef
	R    *Scalar // ScalarRef
	// Flags are a Regexp's modifiers; for a CodeRef, "sub" marks an anonymous sub body.
	Flags string
	// File is the file a read_text value came from (a template is passed on by name).
	File string
	Pos  Pos // where a sub or regexp was written
}

// Scalar is a scalar variable's cell.
type Scalar struct{ V Value }

// Array is an array variable or anonymous array.
type Array struct{ E []Value }

// Hash is a hash variable or anonymous hash; Keys keeps insertion order for stable output.
type Hash struct {
	Keys []string
	M    map[string]Value
}

func newHash() *Hash { return &Hash{M: map[string]Value{}} }

// Set stores v under k.
func (h *Hash) Set(k string, v Value) {
	if _, ok := h.M[k]; !ok {
		h.Keys = append(h.Keys, k)
	}
	h.M[k] = v
}

// Delete removes k.
func (h *Hash) Delete(k string) {
	if _, ok := h.M[k]; !ok {
		return
	}
	delete(h.M, k)
	for i, x := range h.Keys {
		if x == k {
			h.Keys = append(h.Keys[:i], h.Keys[i+1:]...)
			break
		}
	}
}

// Clear empties the hash in place (references to it stay valid).
func (h *Hash) Clear() { h.Keys, h.M = nil, map[string]Value{} }

func str(s string) Value  { return Value{Kind: Str, S: s} }
func num(n float64) Value { return Value{Kind: Num, N: n} }
func undef() Value        { return Value{} }
func boolv(b bool) Value {
	if b {
		return num(1)
	}
	return str("")
}

// String is Perl's stringification.
func (v Value) String() string {
	switch v.Kind {
	case Str:
		return v.S
	case Num:
		return fmtNum(v.N)
	case Regexp:
		return "(?^" + v.Flags + ":" + v.S + ")"
	case ArrayRef:
		return "ARRAY"
	case HashRef:
		return "HASH"
	case ScalarRef:
		return "SCALAR"
	case CodeRef:
		return "CODE"
	case ReList:
		return "Amavis::Lookup::RE"
	}
	return ""
}

// fmtNum formats a number as Perl does (%.15g): 5.0 is "5", 100*1024 is "102400".
func fmtNum(n float64) string {
	if n == math.Trunc(n) && math.Abs(n) < 1e15 {
		return strconv.FormatInt(int64(n), 10)
	}
	s := strconv.FormatFloat(n, 'g', 15, 64)
	if strings.Contains(s, "e") {
		// Perl writes 1e+20, Go 1e+20 too; keep it
		return s
	}
	return s
}

// Number is Perl's numification: a leading decimal number, or 0.
func (v Value) Number() float64 {
	switch v.Kind {
	case Num:
		return v.N
	case Str:
		return parseLeadingNumber(v.S)
	}
	return 0
}

func parseLeadingNumber(s string) float64 {
	s = strings.TrimLeft(s, " \t\n\r\f")
	end := 0
	if end < len(s) && (s[end] == '+' || s[end] == '-') {
		end++
	}
	digits := false
	for end < len(s) && isDigit(s[end]) {
		end++
		digits = true
	}
	if end < len(s) && s[end] == '.' {
		end++
		for end < len(s) && isDigit(s[end]) {
			end++
			digits = true
		}
	}
	if digits && end < len(s) && (s[end] == 'e' || s[end] == 'E') {
		e := end + 1
		if e < len(s) && (s[e] == '+' || s[e] == '-') {
			e++
		}
		if e < len(s) && isDigit(s[e]) {
			for e < len(s) && isDigit(s[e]) {
				e++
			}
			end = e
		}
	}
	if !digits {
		return 0
	}
	f, _ := strconv.ParseFloat(s[:end], 64)
	return f
}

// Truth is Perl's boolean: undef, "", "0" and 0 are false.
func (v Value) Truth() bool {
	switch v.Kind {
	case Undef:
		return false
	case Str:
		return v.S != "" && v.S != "0"
	case Num:
		return v.N != 0
	}
	return true
}

// Defined reports whether v is not undef.
func (v Value) Defined() bool { return v.Kind != Undef }

// deref reads a scalar reference (\$x in a lookup list) through to the value it points to.
func (v Value) deref() Value {
	if v.Kind == ScalarRef {
		return v.R.V
	}
	return v
}
