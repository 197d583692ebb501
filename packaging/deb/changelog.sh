#!/bin/sh
# Prints the Debian changelog of the package being built: one entry for
# VERSION (scripts/version.sh), listing the commits since the last release
# tag (the last 30 at most), dated by the commit so that a rebuild of the
# same commit gives the same file. `make deb` gzips it into the package.
set -eu
version=$1
cd "$(dirname "$0")/../.."
maintainer="PipeGuard developers <pipeguard@example.org>"

range=HEAD
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); then
	range="$tag..HEAD"
fi
echo "pipeguard ($version) unstable; urgency=medium"
echo
echo "  * Built from commit $(git rev-parse HEAD)."
git log --no-merges --max-count=30 --format='%s' "$range" | while IFS= read -r subject; do
	printf '%s\n' "$subject" | fold -s -w 72 | sed 's/[[:space:]]*$//; 1s/^/  * /; 2,$s/^/    /'
done
echo
echo " -- $maintainer  $(git log -1 --format=%cD)"
