package mailid

import (
	"regexp"
	"testing"
)

// Vectors computed with Perl's Digest::MD5 and MIME::Base64 as amavis computes them.
func TestCheckMatchesAmavis(t *testing.T) {
	for _, tc := range []struct {
		mailID, secretID string
		ok               bool
	}{
		{"iqmbH0Of9xKT", "YWJjZGVmZ2hp", true},
		{"cxFnLkzWevqM", "AP8QIDBAUGBw", true},
		{"KsTkpfYrcm-S", "W+7uJyXUjw32", true}, // pre-2.7 "almost base64"
		{"iqmbH0Of9xKT", "AP8QIDBAUGBw", false},
		{"iqmbH0Of9xKT", "", false},
		{"iqmbH0Of9xKT", "not base64!", false},
	} {
		if got := Check(tc.mailID, tc.secretID); got != tc.ok {
			t.Errorf("Check(%q, %q) = %v, want %v", tc.mailID, tc.secretID, got, tc.ok)
		}
	}
}

func TestNew(t *testing.T) {
	shape := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{10}[A-Za-z0-9]$`)
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		id, sec, err := New(DefaultBits)
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(id) || len(sec) != 12 || !Check(id, sec) || !Valid(id) {
			t.Fatalf("New() = %q, %q", id, sec)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
	if id, sec, _ := New(96); len(id) != 16 || !Check(id, sec) {
		t.Errorf("96 bits: %q %q", id, sec)
	}
	if _, _, err := New(64); err == nil {
		t.Error("64 bits is not a multiple of 24")
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{"n8rZJ2zBYamo": true, "W+7uJyXUjw32": true, "../etc": false, "": false, "-abc": false, "a b": false} {
		if Valid(s) != want {
			t.Errorf("Valid(%q) != %v", s, want)
		}
	}
}
