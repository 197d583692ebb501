#!/usr/bin/env bash
# Runs every fuzz target in the module, one after another, each for the
# same -fuzztime: `make fuzz` (CI, a short time each) and long runs
# (FUZZTIME=10m make fuzz, or one target by hand, see README "Testing").
# Targets are found, not listed: every `func FuzzX(f *testing.F)` in a
# _test.go file. Seed corpora are checked in under each package's
# testdata/fuzz/FuzzX; a failing input is written there too, and the run
# goes on to the other targets, then fails naming every target that did.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-6s}
start=$SECONDS
failed=()
n=0
# file:func pairs, sorted so that a run is reproducible.
while IFS=: read -r file name; do
	dir=./$(dirname "$file")
	t0=$SECONDS
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir" >"/tmp/pipeguard-fuzz-$$.log" 2>&1; then
		echo "fuzz: ok   $dir $name ($((SECONDS - t0))s)"
	else
		echo "fuzz: FAIL $dir $name ($((SECONDS - t0))s)"
		tail -n 30 "/tmp/pipeguard-fuzz-$$.log"
		failed+=("$dir $name")
	fi
	n=$((n + 1))
done < <(grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\([a-z]+ \*testing\.F\)' . |
	sed -E 's|^\./||; s|:func (Fuzz[A-Za-z0-9_]*)\(.*|:\1|' | sort)
rm -f "/tmp/pipeguard-fuzz-$$.log"
echo "fuzz: $n targets, $fuzztime each, $((SECONDS - start))s in all"
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
