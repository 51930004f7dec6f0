#!/bin/sh
# Runs every fuzz target for SECS seconds (default 300), two at a time, and prints a table of
# executions and coverage per target. Stable toolchain, no sanitizer (-s none); for
# AddressSanitizer use `cargo +nightly fuzz run TARGET` instead. Crashes land in
# fuzz/artifacts/TARGET/; the named seeds in fuzz/corpus/ are kept, what a run adds is removed.
set -eu
cd "$(dirname "$0")"
SECS=${1:-300}
LOGS=$(mktemp -d /tmp/msgbus-fuzz.XXXXXX)
cargo fuzz build -s none -O >/dev/null
TARGETS=$(cargo fuzz list)
run() {
  timeout $((SECS + 120)) cargo fuzz run -s none -O "$1" -- -max_total_time="$SECS" \
    >"$LOGS/$1.log" 2>&1 || echo "$1: FAILED (see $LOGS/$1.log)"
}
set -- $TARGETS
while [ $# -gt 0 ]; do
  run "$1" &
  FIRST=$!
  if [ $# -gt 1 ]; then run "$2"; shift; fi
  wait $FIRST
  shift
done
printf '%-18s %14s %8s %8s\n' target executions cov ft
for t in $TARGETS; do
  line=$(grep -E '^#[0-9]+\s+DONE' "$LOGS/$t.log" | tail -1)
  execs=$(echo "$line" | sed -E 's/^#([0-9]+).*/\1/')
  cov=$(echo "$line" | sed -E 's/.*cov: ([0-9]+).*/\1/')
  ft=$(echo "$line" | sed -E 's/.*ft: ([0-9]+).*/\1/')
  printf '%-18s %14s %8s %8s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}"
done
find corpus -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
echo "logs: $LOGS"
