package conf

import (
	"fmt"

	"amavisgo/lookup"
)

// FakeSenderRules is @viruses_that_fake_sender_maps: lookup tables asked with each virus name,
// as amavis asks them, written like every other *_maps:
//
//	[[viruses_that_fake_sender_maps]]
//	regexp = [['(?i)\bEICAR\b', false], '.']
//
// The shorter list of [pattern, true|false] pairs reads as that one regexp table:
//
//	viruses_that_fake_sender_maps = [['(?i)\bEICAR\b', false], ['.', true]]
type FakeSenderRules struct{ lookup.Maps }

// UnmarshalTOML takes a *_maps value, or the list of pairs.
func (r *FakeSenderRules) UnmarshalTOML(v any) error {
	if pairs, ok := v.([]any); ok && isPatternPairs(pairs) {
		for _, p := range pairs {
			pat := p.([]any)[0].(string)
			if _, err := lookup.NewRegexpTable(lookup.Rule{Pattern: pat}); err != nil {
				return fmt.Errorf("pattern %q: %v", pat, err)
			}
		}
		v = []any{map[string]any{"regexp": pairs}}
	}
	return r.Maps.UnmarshalTOML(v)
}

// isPatternPairs: every element is [pattern, true|false] with a pattern that does not name a
// kind of table (["acl", [...]] is a table).
func isPatternPairs(list []any) bool {
	for _, it := range list {
		pair, ok := it.([]any)
		if !ok || len(pair) != 2 {
			return false
		}
		pat, ok1 := pair[0].(string)
		_, ok2 := pair[1].(bool)
		if !ok1 || !ok2 {
			return false
		}
		switch pat {
		case "hash", "acl", "regexp", "hash_file", "acl_file", "constant":
			return false
		}
	}
	return len(list) > 0
}

// Fakes reports whether any of the virus names is one that fakes its sender: the first table
// that knows the name answers; with no tables every virus does (amavis's default).
func (r FakeSenderRules) Fakes(virusNames []string) bool {
	if r.Len() == 0 {
		return len(virusNames) > 0
	}
	for _, name := range virusNames {
		if r.Bool(name, lookup.Options{}) {
			return true
		}
	}
	return false
}
