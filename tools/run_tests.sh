#!/bin/sh
# run_tests.sh: runs each cmocka test program given, all of them even after a
# failure, and ends with one total line: "tests: N passed, M failed".
passed=0
failed=0
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$@"; do
    echo "== $t"
    if "$t" >"$log" 2>&1; then :; else status=1; fi
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    # A program that crashed before its summary counts as one failure.
    if [ -z "$p$f" ]; then failed=$((failed + 1)); status=1; fi
done
echo "tests: $passed passed, $failed failed"
exit $status
