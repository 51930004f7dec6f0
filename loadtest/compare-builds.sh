#!/bin/sh
# Compares two msgbus builds in the same run: CPU per delivery, one message at a time, at 1,000
# and 10,000 multipart subscribers, and a pipelined burst at 10,000. The two servers take turns
# (A, B, A, B, ...) so that what else the machine does weighs on both alike; RUNS runs each,
# medians printed, and B's median over A's.
#
#   sh loadtest/compare-builds.sh BASELINE_BINARY [CANDIDATE_BINARY]
#
# CANDIDATE defaults to this tree's release build. Each run gets a fresh server on
# 127.0.0.1:$PORT, killed by its PID afterwards. Environment: RUNS (default 3), PORT (18890),
# SCENARIOS (default "one1k one10k burst10k").
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-3}
PORT=${PORT:-18890}
SCENARIOS=${SCENARIOS:-one1k one10k burst10k}
LOAD="$HERE/target/release/msgbus-load"
[ $# -ge 1 ] || { echo "usage: $0 BASELINE_BINARY [CANDIDATE_BINARY]" >&2; exit 2; }
WORK=$(mktemp -d /tmp/msgbus-builds.XXXXXX)
MPID=""
ulimit -n 20000

cleanup() {
  if [ -n "$MPID" ]; then kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release -q --manifest-path "$HERE/Cargo.toml"
cp "$1" "$WORK/A"
if [ $# -ge 2 ]; then
  cp "$2" "$WORK/B"
else
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
  cp "$ROOT/target/release/msgbus" "$WORK/B"
fi

start() {
  "$WORK/$1" -l 127.0.0.1 -p "$PORT" 2>"$WORK/log" &
  MPID=$!
  i=0
  while ! grep -q "connections (open-files limit" "$WORK/log" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$MPID" 2>/dev/null; then
      echo "msgbus $1 did not start:" >&2; cat "$WORK/log" >&2; exit 1
    fi
    sleep 0.1
  done
}

stop() {
  kill "$MPID" 2>/dev/null || true
  wait "$MPID" 2>/dev/null || true
  MPID=""
}

field() { sed -n "s/.*\"$2\":\([-0-9.e]*\)[,}].*/\1/p" "$1"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'; }

for s in $SCENARIOS; do
  case $s in
  one1k) args="--subs 1000 --messages 1000 --size 128 --one-at-a-time"; what="one at a time, 1,000 subscribers x 1,000 messages" ;;
  one10k) args="--subs 10000 --messages 100 --size 128 --one-at-a-time"; what="one at a time, 10,000 subscribers x 100 messages" ;;
  burst10k) args="--subs 10000 --messages 300 --size 128"; what="pipelined burst, 10,000 subscribers x 300 messages" ;;
  *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
  : >"$WORK/A.$s"; : >"$WORK/B.$s"
  for r in $(seq "$RUNS"); do
    for build in A B; do
      start "$build"
      # shellcheck disable=SC2086
      "$LOAD" --target "127.0.0.1:$PORT" --server-pid "$MPID" --channel "b-$s-$r-$build-$$" \
        --json $args >>"$WORK/$build.$s" || true
      stop
    done
  done
  a=$(field "$WORK/A.$s" server_cpu_us_per_delivery | median)
  b=$(field "$WORK/B.$s" server_cpu_us_per_delivery | median)
  lost=$(field "$WORK/B.$s" lost | tr '\n' ' ')
  printf '%s\n  CPU per delivery: A %s us, B %s us, B/A %s   (A runs: %s; B runs: %s; B lost: %s)\n' \
    "$what" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')" \
    "$(field "$WORK/A.$s" server_cpu_us_per_delivery | tr '\n' ' ')" \
    "$(field "$WORK/B.$s" server_cpu_us_per_delivery | tr '\n' ' ')" "$lost"
done
