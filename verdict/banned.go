package verdict

import (
	"fmt"
	"regexp"
	"strings"

	"amavisgo/lookup"
	"amavisgo/unpack"
)

// BannedPart is one leaf part banned for a recipient.
type BannedPart struct {
	Path    string // the attribute strings of the path: "multipart/mixed | application/octet-stream,.exe,.exe-ms,videos.exe"
	Attrs   string // the same in amavis's new form: "P=p003,L=1/2,M=...,T=exe,N=..." per element
	Leaf    string // the leaf's own strings: ".exe,.exe-ms,run.exe"
	Rule    string // the rule (regexp) that matched
	Comment string // the rule's (?#comment)s, else the rule itself
	RHS     lookup.Value
}

// leafPath describes one leaf part for the banned check.
type leafPath struct {
	strs  []string // every attribute string on the path, top down (the lookup key)
	trad  string   // " | "-joined elements, each ","-joined
	attrs string
	leaf  string
}

// leafPaths lists the leaves of the decoded tree breadth-first, as amavis traverses it. The
// root is the message; it contributes its strings when it is a multipart (its own entity).
func leafPaths(res *unpack.Result) []leafPath {
	if res == nil || res.Root == nil {
		return nil
	}
	var out []leafPath
	queue := append([]*unpack.Part(nil), res.Root.Children...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if len(p.Children) > 0 {
			queue = append(queue, p.Children...)
			continue
		}
		var chain []*unpack.Part
		for q := p; q != nil; q = q.Parent {
			chain = append(chain, q)
		}
		var lp leafPath
		var trad, attrs []string
		for i := len(chain) - 1; i >= 0; i-- {
			s := partStrings(chain[i])
			if len(s) == 0 && chain[i] == res.Root {
				continue
			}
			lp.strs = append(lp.strs, s...)
			trad = append(trad, strings.Join(s, ","))
			attrs = append(attrs, partAttrs(chain[i]))
			if i == 0 {
				lp.leaf = strings.Join(s, ",")
			}
		}
		lp.trad = strings.Join(trad, " | ")
		lp.attrs = strings.Join(attrs, " | ")
		out = append(out, lp)
	}
	return out
}

// partStrings are the strings one part contributes: its declared MIME type, its short types
// with a leading dot, its declared names, and UNDECIPHERABLE.
func partStrings(p *unpack.Part) []string {
	var s []string
	if p.Type != "" {
		s = append(s, p.Type)
	}
	for _, t := range p.ShortTypes {
		if t != "" {
			s = append(s, "."+t)
		}
	}
	for _, n := range p.Names {
		if n != "" {
			s = append(s, n)
		}
	}
	if p.HasAttr('U') {
		s = append(s, "UNDECIPHERABLE")
	}
	return s
}

var tabNL = strings.NewReplacer("\t", " ", "\n", " ")

// partAttrs is amavis's newer path element form, for logs: P=p003,M=...,T=zip,N=...,A=U.
func partAttrs(p *unpack.Part) string {
	var k []string
	if p.Name != "" {
		k = append(k, "P="+p.Name)
	}
	if p.Type != "" {
		k = append(k, "M="+tabNL.Replace(p.Type))
	}
	for _, t := range p.ShortTypes {
		k = append(k, "T="+tabNL.Replace(t))
	}
	for _, n := range p.Names {
		k = append(k, "N="+tabNL.Replace(n))
	}
	for _, a := range p.Attrs {
		k = append(k, "A="+string(a))
	}
	return strings.Join(k, ",")
}

// ruleSetNames splits a banned_filename_maps answer into rule set names (comma or space
// separated).
func ruleSetNames(v lookup.Value) []string {
	return strings.FieldsFunc(lookup.String(v), func(r rune) bool { return r == ',' || r == ' ' })
}

// bannedTables resolves the rule sets that apply to a recipient; unknown names are reported.
func bannedTables(maps lookup.Maps, rules map[string]*lookup.RegexpTable, rcpt string, o lookup.Options) (tables []*lookup.RegexpTable, key string, unknown []string) {
	var names []string
	for _, v := range maps.LookupAll(rcpt, o) {
		for _, n := range ruleSetNames(v) {
			if t, ok := rules[n]; ok && t != nil {
				tables = append(tables, t)
				names = append(names, n)
			} else if !ok && n != "DEFAULT" { // amavis's DEFAULT exists, undefined without rules
				unknown = append(unknown, n)
			}
		}
	}
	return tables, strings.Join(names, ","), unknown
}

var ruleCommentRE = regexp.MustCompile(`\(\?#\s*(.*?)\s*\)`)

// checkBanned matches every leaf path against a recipient's rule sets and returns the banned
// parts; the first table that answers for a path decides.
func checkBanned(paths []leafPath, tables []*lookup.RegexpTable) ([]BannedPart, error) {
	var out []BannedPart
	memo := lookup.Memo{}
	for _, lp := range paths {
		for _, t := range tables {
			v, key, found, err := t.MatchListMemo(lp.strs, memo)
			if err != nil {
				return nil, fmt.Errorf("banned check: %w", err)
			}
			if !found {
				continue
			}
			if lookup.Truthy(v) {
				comment := key
				if m := ruleCommentRE.FindAllStringSubmatch(key, -1); m != nil {
					var cs []string
					for _, c := range m {
						cs = append(cs, c[1])
					}
					comment = strings.Join(cs, " ")
				}
				out = append(out, BannedPart{Path: lp.trad, Attrs: lp.attrs, Leaf: lp.leaf, Rule: key, Comment: comment, RHS: v})
			}
			break
		}
	}
	return out, nil
}

var sixBlanks = regexp.MustCompile(`[ \t]{6,}`)

// reasonShort is amavis's banning_reason_short (%F): the leaf's strings, prefixed by the
// rule's comment when it has one.
func reasonShort(b BannedPart) string {
	s := sixBlanks.ReplaceAllString(b.Leaf, " ... ")
	if b.Comment != b.Rule {
		s = b.Comment + ":" + s
	}
	return s
}
