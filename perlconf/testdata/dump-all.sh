#!/bin/sh
# dump-all.sh: regenerate the golden amavis.json of every configuration set.
#
# Usage: perlconf/testdata/dump-all.sh [SET...]
#
# A set is a directory under real/ (or debian-stock/, debian-site-edits/) with a FILES list: the
# configuration files amavis reads, one per line, in order, as paths relative
# to perlconf/testdata. The dumper runs in the set's directory (files of a set
# that read lists or keys name them relative to it; see each SOURCE) and
# writes <set>/amavis.json; a set amavis refuses gets <set>/amavis.err with
# amavis's message instead, and no amavis.json.
#
# Needs Debian's amavisd-new package (Amavis::Conf in /usr/share/perl5).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if [ $# -eq 0 ]; then
	set -- debian-stock debian-site-edits real/*/
fi

loaded=0
refused=0
for set in "$@"; do
	set=${set%/}
	[ -f "$set/FILES" ] || { echo "$set: no FILES list" >&2; exit 2; }
	files=$(grep -v '^[[:space:]]*\(#\|$\)' "$set/FILES" | sed "s|^\([^/]\)|$here/\1|")
	rm -f "$set/amavis.json" "$set/amavis.err"
	# shellcheck disable=SC2086 # one argument per listed file; the names have no spaces
	if (cd "$set" && perl -T "$here/dump-amavis-conf.pl" $files) >"$set/amavis.json.tmp" 2>"$set/amavis.err.tmp"; then
		mv "$set/amavis.json.tmp" "$set/amavis.json"
		rm -f "$set/amavis.err.tmp"
		loaded=$((loaded + 1))
		echo "$set: loaded"
	else
		rm -f "$set/amavis.json.tmp"
		# The message names the files by their absolute paths; keep it
		# independent of where the repository is checked out.
		sed "s|$here/||g" "$set/amavis.err.tmp" >"$set/amavis.err"
		rm -f "$set/amavis.err.tmp"
		refused=$((refused + 1))
		echo "$set: refused: $(tail -n 1 "$set/amavis.err")"
	fi
done
echo "loaded $loaded, refused $refused"
