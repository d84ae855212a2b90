#!/bin/sh
# Runs each unit-test program and prints the totals last.
passed=0; failed=0; status=0
for t in "$@"; do
	out=$("$t") || status=1
	echo "$out"
	line=$(echo "$out" | tail -n 1)
	p=$(echo "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
	f=$(echo "$line" | sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
	[ -n "$p" ] || { echo "$t: no summary line"; status=1; continue; }
	passed=$((passed + p)); failed=$((failed + f))
done
echo "unit: $passed passed, $failed failed"
exit $status
