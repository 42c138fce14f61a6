package verdict

import (
	"fmt"
	"strconv"
)

// Major content categories, in increasing importance (amavis's CC_* constants).
const (
	CC_CATCHALL  = 0
	CC_CLEAN     = 1
	CC_MTA       = 2
	CC_OVERSIZED = 3
	CC_BADH      = 4
	CC_SPAMMY    = 5
	CC_SPAM      = 6
	CC_UNCHECKED = 7
	CC_BANNED    = 8
	CC_VIRUS     = 9
)

// CCat is a content category "major,minor"; minor 0 is the major category alone.
type CCat struct{ Major, Minor int }

// String is amavis's notation: "9" or "4,7".
func (c CCat) String() string {
	if c.Minor == 0 {
		return strconv.Itoa(c.Major)
	}
	return fmt.Sprintf("%d,%d", c.Major, c.Minor)
}

// Compare orders categories by importance: major first, then minor.
func (c CCat) Compare(d CCat) int {
	if c.Major != d.Major {
		return c.Major - d.Major
	}
	return c.Minor - d.Minor
}

// displayNames are amavis's %ccat_display_names.
var displayNames = map[CCat]string{
	{0, 0}: "CatchAll", {1, 0}: "Clean", {1, 1}: "CleanTag", {2, 0}: "MtaFailed",
	{2, 1}: "MtaTempFailed", {2, 2}: "MtaRejected", {3, 0}: "Oversized", {4, 0}: "BadHdr",
	{4, 1}: "BadHdrMime", {4, 2}: "BadHdr8bit", {4, 3}: "BadHdrChar", {4, 4}: "BadHdrSpace",
	{4, 5}: "BadHdrLong", {4, 6}: "BadHdrSyntax", {4, 7}: "BadHdrMissing", {4, 8}: "BadHdrDupl",
	{5, 0}: "Spammy", {5, 1}: "Spammy3", {6, 0}: "Spam", {7, 0}: "Unchecked",
	{7, 1}: "UncheckedEncrypted", {7, 2}: "UncheckedOverLimits", {7, 3}: "UncheckedAmbiguousContent",
	{8, 0}: "Banned", {9, 0}: "Virus",
}

// Name is the display name (a "maj,min" without its own name falls back to its major's).
func (c CCat) Name() string {
	if n, ok := displayNames[c]; ok {
		return n
	}
	return displayNames[CCat{Major: c.Major}]
}

// CCats is a list of categories sorted from the most to the least important, without
// duplicates, as amavis keeps per message and per recipient.
type CCats []CCat

// Add inserts "major,minor" (when minor > 0) and "major", keeping the order.
func (l *CCats) Add(major, minor int) {
	if minor > 0 {
		l.insert(CCat{major, minor})
	}
	l.insert(CCat{Major: major})
}

func (l *CCats) insert(c CCat) {
	i := 0
	for i < len(*l) && (*l)[i].Compare(c) > 0 {
		i++
	}
	if i < len(*l) && (*l)[i] == c {
		return
	}
	*l = append(*l, CCat{})
	copy((*l)[i+1:], (*l)[i:])
	(*l)[i] = c
}

// Main is the most important category (CC_CATCHALL for an empty list).
func (l CCats) Main() CCat {
	if len(l) == 0 {
		return CCat{}
	}
	return l[0]
}

// Has tells whether "major,minor" is in the list (minor 0: the major category).
func (l CCats) Has(major, minor int) bool {
	for _, c := range l {
		if c.Major == major && c.Minor == minor {
			return true
		}
	}
	return false
}

// byCCat is one of amavis's %..._by_ccat settings: a value per category key.
type byCCat[T any] map[CCat]T

// lookup returns the value of the most important key of cats (then CC_CATCHALL) that the
// table holds, and that key (setting_by_given_contents_category).
func (m byCCat[T]) lookup(cats ...CCat) (T, CCat, bool) {
	for _, c := range append(cats, CCat{}) {
		if v, ok := m[c]; ok {
			return v, c, true
		}
	}
	var zero T
	return zero, CCat{}, false
}
