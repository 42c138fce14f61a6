package lookup

import (
	"fmt"
	"strconv"
	"strings"

	"amavisgo/perlre"
)

// RegexpTable is amavis's new_RE(...): Perl regexps tried in order, the first that matches
// answers with its value (1 when none is given); "$1".. in a string value are replaced by the
// captured groups. Patterns are not anchored nor case-folded implicitly; write (?i) or
// qr/.../i for that.
type RegexpTable struct {
	rules []regexpRule
}

type regexpRule struct {
	re  *perlre.Regexp
	val Value
}

// Rule is one regexp rule in source form, for NewRegexpTable.
type Rule struct {
	Pattern string // a bare Perl pattern or a qr/.../flags literal
	Value   Value  // nil means 1
}

// NewRegexpTable compiles rules.
func NewRegexpTable(rules ...Rule) (*RegexpTable, error) {
	t := &RegexpTable{}
	for _, r := range rules {
		re, err := perlre.Compile(r.Pattern, "")
		if err != nil {
			return nil, err
		}
		v := r.Value
		if v == nil {
			v = int64(1)
		}
		t.rules = append(t.rules, regexpRule{re: re, val: v})
	}
	return t, nil
}

// Len is the number of rules.
func (t *RegexpTable) Len() int { return len(t.rules) }

// Lookup implements Table: the raw address is matched (no lower-casing). A match that runs
// out of time counts as no match.
func (t *RegexpTable) Lookup(addr string, _ Options) (Value, string, bool) {
	v, key, found, _ := t.MatchList([]string{addr})
	return v, key, found
}

// MatchList matches the rules in order against a list of strings: a rule matches when it
// matches any of them, and the first matching rule answers (amavis's lookup with a list key,
// used for banned part paths). The error reports a match that exceeded its time limit.
func (t *RegexpTable) MatchList(list []string) (v Value, key string, found bool, err error) {
	return t.MatchListMemo(list, nil)
}

// Memo remembers which rule matched which string, for the many paths of one message that
// share their upper elements.
type Memo map[memoKey]bool

type memoKey struct {
	re *perlre.Regexp
	s  string
}

// MatchListMemo is MatchList with a memo of match results (nil: none).
func (t *RegexpTable) MatchListMemo(list []string, memo Memo) (v Value, key string, found bool, err error) {
	for _, r := range t.rules {
		for _, s := range list {
			ok, seen := memo[memoKey{r.re, s}]
			if !seen {
				var merr error
				if ok, merr = r.re.MatchString(s); merr != nil {
					return nil, "", false, fmt.Errorf("rule %s: %w", r.re, merr)
				}
				if memo != nil {
					memo[memoKey{r.re, s}] = ok
				}
			}
			if !ok {
				continue
			}
			v := r.val
			if sv, isStr := v.(string); isStr && strings.Contains(sv, "$") {
				groups, cerr := r.re.Captures(s)
				if cerr != nil {
					return nil, "", false, fmt.Errorf("rule %s: %w", r.re, cerr)
				}
				v = substitute(sv, groups)
			}
			return v, r.re.String(), true, nil
		}
	}
	return nil, "", false, nil
}

// UnmarshalTOML decodes an array of rules: a pattern string, or [pattern, value].
func (t *RegexpTable) UnmarshalTOML(v any) error {
	rt, err := decodeRegexpTable(v)
	if err != nil {
		return err
	}
	*t = *rt
	return nil
}

func decodeRegexpTable(v any) (*RegexpTable, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("regexp: want an array of rules: \"pattern\" or [\"pattern\", value]")
	}
	var rules []Rule
	for i, x := range arr {
		switch r := x.(type) {
		case string:
			rules = append(rules, Rule{Pattern: r})
		case []any:
			if len(r) != 2 {
				return nil, fmt.Errorf("regexp rule %d: want [\"pattern\", value]", i+1)
			}
			p, ok := r[0].(string)
			if !ok {
				return nil, fmt.Errorf("regexp rule %d: the pattern must be a string", i+1)
			}
			val, ok := scalar(r[1])
			if !ok {
				return nil, fmt.Errorf("regexp rule %d: the value must be a boolean, number or string", i+1)
			}
			rules = append(rules, Rule{Pattern: p, Value: val})
		default:
			return nil, fmt.Errorf("regexp rule %d: want \"pattern\" or [\"pattern\", value], found %T", i+1, x)
		}
	}
	t, err := NewRegexpTable(rules...)
	if err != nil {
		return nil, fmt.Errorf("regexp: %w", err)
	}
	return t, nil
}

func (t *RegexpTable) tomlString() string {
	parts := make([]string, len(t.rules))
	for i, r := range t.rules {
		parts[i] = "[" + strconv.Quote(r.re.String()) + ", " + quoteValue(r.val) + "]"
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// MarshalTOML writes the rules back (for showconfig).
func (t *RegexpTable) MarshalTOML() ([]byte, error) { return []byte(t.tomlString()), nil }
