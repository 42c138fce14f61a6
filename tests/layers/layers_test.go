// Package layers checks the import rule of docs/architecture.md on the module's packages: the
// top-level folders form layers (no two import each other, directly or through others), in the
// order of the package table there, and the test helper packages are imported by tests only.
package layers

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "amavisgo"

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages is `go list -json ./...` from the module's root: each package with the imports
// of its non-test files.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; is this the module's root?", len(pkgs))
	}
	return pkgs
}

// unit is the folder a package belongs to for the layering rule: its top-level folder, or for
// the collections of independent programs and libraries (cmd/, internal/, tests/) the folder
// one below.
func unit(importPath string) string {
	parts := strings.Split(strings.TrimPrefix(importPath, module+"/"), "/")
	switch parts[0] {
	case "cmd", "internal", "tests":
		if len(parts) > 1 {
			return parts[0] + "/" + parts[1]
		}
	}
	return parts[0]
}

// isTestHelper: packages that exist for tests (smtptest, deliverytest, dsntest, testenv).
func isTestHelper(importPath string) bool {
	base := importPath[strings.LastIndexByte(importPath, '/')+1:]
	return strings.HasSuffix(base, "test") || base == "testenv"
}

func ownImports(p pkg) []string {
	var out []string
	for _, imp := range p.Imports {
		if strings.HasPrefix(imp, module+"/") {
			out = append(out, imp)
		}
	}
	return out
}

func TestFoldersFormLayers(t *testing.T) {
	edges := map[string]map[string][]string{} // unit -> unit -> "pkg imports pkg"
	for _, p := range listPackages(t) {
		from := unit(p.ImportPath)
		for _, imp := range ownImports(p) {
			to := unit(imp)
			if to == from {
				continue
			}
			if edges[from] == nil {
				edges[from] = map[string][]string{}
			}
			edges[from][to] = append(edges[from][to], p.ImportPath+" imports "+imp)
		}
	}
	if cycle := findCycle(edges); cycle != nil {
		var why []string
		for i := 0; i+1 < len(cycle); i++ {
			why = append(why, edges[cycle[i]][cycle[i+1]][0])
		}
		t.Errorf("folders import each other: %s\n\t%s", strings.Join(cycle, " -> "), strings.Join(why, "\n\t"))
	}
}

// findCycle returns a cycle of the graph as a path that ends where it starts, or nil.
func findCycle(edges map[string]map[string][]string) []string {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(string) []string
	visit = func(n string) []string {
		state[n] = open
		stack = append(stack, n)
		next := make([]string, 0, len(edges[n]))
		for m := range edges[n] {
			next = append(next, m)
		}
		slices.Sort(next)
		for _, m := range next {
			switch state[m] {
			case open:
				i := slices.Index(stack, m)
				return append(slices.Clone(stack[i:]), m)
			case unseen:
				if c := visit(m); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		return nil
	}
	nodes := make([]string, 0, len(edges))
	for n := range edges {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		if state[n] == unseen {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// documentedOrder reads the package table of docs/architecture.md: each folder's position, bottom
// layer first. "internal/*" stands for every folder under internal/.
func documentedOrder(t *testing.T) map[string]int {
	t.Helper()
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	order := map[string]int{}
	for _, line := range strings.Split(string(doc), "\n") {
		name, ok := strings.CutPrefix(line, "| `")
		if !ok {
			continue
		}
		name, _, ok = strings.Cut(name, "`")
		if !ok {
			continue
		}
		u := unit(module + "/" + name)
		if _, seen := order[u]; !seen {
			order[u] = len(order)
		}
	}
	if len(order) < 10 {
		t.Fatalf("docs/architecture.md: %d packages in the table", len(order))
	}
	return order
}

func TestImportsFollowDocumentedOrder(t *testing.T) {
	order := documentedOrder(t)
	position := func(u string) (int, bool) {
		if strings.HasPrefix(u, "internal/") {
			u = "internal/*"
		}
		i, ok := order[u]
		return i, ok
	}
	for _, p := range listPackages(t) {
		from := unit(p.ImportPath)
		if strings.HasPrefix(from, "tests/") {
			continue
		}
		pf, ok := position(from)
		if !ok {
			t.Errorf("%s: its folder %s has no row in the package table of docs/architecture.md", p.ImportPath, from)
			continue
		}
		for _, imp := range ownImports(p) {
			to := unit(imp)
			if pt, ok := position(to); ok && to != from && pt > pf {
				t.Errorf("%s imports %s, which docs/architecture.md lists below it (a package imports only folders listed above its own)", p.ImportPath, imp)
			}
		}
	}
}

func TestTestHelpersOnlyInTests(t *testing.T) {
	for _, p := range listPackages(t) {
		if isTestHelper(p.ImportPath) || strings.HasPrefix(p.ImportPath, module+"/tests/") {
			continue
		}
		for _, imp := range ownImports(p) {
			if isTestHelper(imp) {
				t.Errorf("%s (production code) imports the test helper %s", p.ImportPath, imp)
			}
		}
	}
}

func TestFindCycle(t *testing.T) {
	g := func(pairs ...string) map[string]map[string][]string {
		e := map[string]map[string][]string{}
		for _, p := range pairs {
			a, b, _ := strings.Cut(p, ">")
			if e[a] == nil {
				e[a] = map[string][]string{}
			}
			e[a][b] = []string{p}
		}
		return e
	}
	for _, tc := range []struct {
		edges []string
		want  string
	}{
		{[]string{"amavis>smtp", "delivery>smtp", "amavis>delivery"}, "[]"},
		{[]string{"amavis>delivery", "delivery>amavis"}, "[amavis delivery amavis]"},
		{[]string{"conf>policybank", "policybank>lookup", "lookup>conf", "amavis>conf"}, "[conf policybank lookup conf]"},
	} {
		if got := findCycle(g(tc.edges...)); fmt.Sprint(got) != tc.want {
			t.Errorf("findCycle(%v) = %v, want %v", tc.edges, got, tc.want)
		}
	}
}
