package hdr

import (
	"slices"
	"testing"
)

func TestMessageIDs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"<a@b>", []string{"<a@b>"}},
		{" (comment) <a@b>\n\t<c@d> (more)", []string{"<a@b>", "<c@d>"}},
		{"  bare@id  ", []string{"bare@id"}},
		{"<a@b", []string{"<a@b"}},
		{"", nil},
	} {
		if got := MessageIDs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("MessageIDs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
