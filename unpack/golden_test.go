package unpack

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden .tree files")

// TestGolden: sample messages in testdata/golden decode to the trees in their .tree files
// (go test ./unpack -run Golden -update rewrites them).
func TestGolden(t *testing.T) {
	msgs, _ := filepath.Glob("testdata/golden/*.eml")
	if len(msgs) == 0 {
		t.Fatal("no golden messages")
	}
	for _, m := range msgs {
		t.Run(filepath.Base(m), func(t *testing.T) {
			msg, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := unpackMsg(t, debianLimits, msg)
			got := describe(r)
			golden := strings.TrimSuffix(m, ".eml") + ".tree"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("tree differs from %s\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}
