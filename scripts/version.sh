#!/bin/sh
# Prints PipeGuard's version as a valid Debian (native) version, derived
# from `git describe`; `make` stamps it into the binary and `make deb`
# names the package with it, so the two always agree.
#
#   on tag v1.2.3, clean          1.2.3
#   5 commits after v1.2.3        1.2.3+5.gabc1234
#   tag v1.2.3-rc1                1.2.3~rc1      (~ sorts before 1.2.3)
#   no tag yet, 74 commits        0.0.0~git74.gabc1234
#   uncommitted changes           ... .dirty appended
#
# The commit count keeps untagged versions in order on one branch, and
# '~' makes them sort below the first tagged release. Outside a git
# checkout it prints 0.0.0~unknown.
set -eu
cd "${1:-$(dirname "$0")/..}"

if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "0.0.0~unknown"
	exit 0
fi
dirty=""
if ! git diff --quiet HEAD -- 2>/dev/null; then
	dirty=".dirty"
fi
if d=$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
	# v1.2.3-rc1-5-gabc1234: the last two fields are describe's.
	hash=${d##*-}
	rest=${d%-*}
	count=${rest##*-}
	tag=${rest%-*}
	v=$(printf '%s' "${tag#v}" | tr -- '-_' '~~' | tr -cd 'A-Za-z0-9.+~')
	if [ "$count" != 0 ]; then
		v="$v+$count.$hash"
	fi
else
	v="0.0.0~git$(git rev-list --count HEAD).g$(git rev-parse --short=7 HEAD)"
fi
echo "$v$dirty"
