#!/usr/bin/env bash
# Runs every fuzz target in the module, one after another, each for the
# same -fuzztime: `make fuzz` (CI, a short time each) and long runs
# (FUZZTIME=10m make fuzz, or one target by hand, see docs/development.md).
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
	log=/tmp/pipeguard-fuzz-$$.log
	ok=0
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir" >"$log" 2>&1 && ok=1
	# Go up to 1.26 can fail a target at the -fuzztime boundary with a bare
	# "context deadline exceeded" when a worker's shutdown races the
	# deadline (go.dev/issue/75804, fixed in Go 1.27): no input failed, and
	# none is written. Such a run, and only such a run, is tried once more;
	# a failing input, a panic or a second failure still fails.
	if [ $ok = 0 ] && grep -q 'context deadline exceeded' "$log" &&
		! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"; then
		echo "fuzz: retry $dir $name: the -fuzztime deadline race (go.dev/issue/75804), no failing input"
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir" >"$log" 2>&1 && ok=1
	fi
	if [ $ok = 1 ]; then
		echo "fuzz: ok   $dir $name ($((SECONDS - t0))s)"
	else
		echo "fuzz: FAIL $dir $name ($((SECONDS - t0))s)"
		tail -n 30 "$log"
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
