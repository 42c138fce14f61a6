package conf

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The TOML examples of docs/scanners.md and the viruses_that_fake_sender_maps example of
// docs/lookup-tables.md load as they are written.
func TestDocExamplesLoad(t *testing.T) {
	block := regexp.MustCompile("(?s)```toml\n(.*?)```")
	for _, doc := range []string{"../docs/scanners.md", "../docs/lookup-tables.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range block.FindAllStringSubmatch(string(b), -1) {
			if doc == "../docs/lookup-tables.md" && !strings.Contains(m[1], "viruses_that_fake_sender_maps") {
				continue
			}
			n++
			c, err := Parse(doc, []byte(m[1]))
			if err != nil {
				t.Errorf("%s: example %d: %v\n%s", doc, n, err, m[1])
				continue
			}
			if strings.Contains(m[1], "viruses_that_fake_sender_maps") &&
				(c.VirusesThatFakeSenderMaps.Fakes([]string{"Eicar-Test-Signature"}) || !c.VirusesThatFakeSenderMaps.Fakes([]string{"Win.Worm.X"})) {
				t.Errorf("%s: the example does not decide as it says", doc)
			}
		}
		if n == 0 {
			t.Errorf("%s: no example found", doc)
		}
	}
}
