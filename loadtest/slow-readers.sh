#!/bin/sh
# Slow readers must not delay the others. Two runs, each against a fresh release msgbus:
#   without: FAST multipart subscribers that read, RATE messages/s
#   with:    the same FAST readers and SLOW subscribers that connect and never read
# and prints the readers' p99 latency in each, their ratio (the goal: at most 1.5), the
# kernel's TCP buffer memory (/proc/net/sockstat, sampled every 0.2 s: peak and at the end),
# msgbus's RSS (end and peak) and what its slow-subscriber policy did.
#
# Environment: FAST (800), SLOW (200), RATE (300), MESSAGES (3000), SIZE (1024), POLICY
# (close|drop, default close), PORT (18890), ARGS (more msgbus options, e.g.
# "--socket-send-buffer 0" to see the kernel's autotuning), MSGBUS (server binary; default
# target/release/msgbus, built if missing).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
FAST=${FAST:-800}
SLOW=${SLOW:-200}
RATE=${RATE:-300}
MESSAGES=${MESSAGES:-3000}
SIZE=${SIZE:-1024}
POLICY=${POLICY:-close}
PORT=${PORT:-18890}
ARGS=${ARGS:-}
LOAD="$HERE/target/release/msgbus-load"
WORK=$(mktemp -d /tmp/msgbus-slow.XXXXXX)
MPID=""
SPID=""

ulimit -n 20000

cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  if [ -n "$MPID" ]; then kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release -q --manifest-path "$HERE/Cargo.toml"
if [ -z "${MSGBUS:-}" ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
  MSGBUS="$ROOT/target/release/msgbus"
fi
cp "$MSGBUS" "$WORK/msgbus"

start_msgbus() {
  # shellcheck disable=SC2086 # ARGS is a list of options
  "$WORK/msgbus" -l 127.0.0.1 -p "$PORT" --slow-policy "$POLICY" $ARGS 2>"$WORK/msgbus.log" &
  MPID=$!
  i=0
  while ! grep -q "listening on" "$WORK/msgbus.log" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 "$MPID" 2>/dev/null; then
      echo "msgbus did not start:" >&2; cat "$WORK/msgbus.log" >&2; exit 1
    fi
    sleep 0.1
  done
}

stop_msgbus() {
  kill "$MPID" 2>/dev/null || true
  wait "$MPID" 2>/dev/null || true
  MPID=""
}

# Samples the machine's TCP buffer memory (pages) into $1 every 0.2 s until killed.
sample_sockstat() {
  while :; do
    awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat
    sleep 0.2
  done >"$1"
}

field() {
  sed -n "s/.*\"$2\":\([-0-9.]*\)[,}].*/\1/p" "$1" | head -1
}

status_field() {
  curl -s "http://127.0.0.1:$PORT/status.json" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" | head -1
}

# run NAME SUBS STALL_FRACTION
run() {
  start_msgbus
  sample_sockstat "$WORK/$1.sockstat" &
  SPID=$!
  "$LOAD" --target "127.0.0.1:$PORT" --server-pid "$MPID" --channel "slow-$1-$$" --json \
    --subs "$2" --stall-fraction "$3" --rate "$RATE" --messages "$MESSAGES" --size "$SIZE" \
    >"$WORK/$1.json" || true
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=""
  echo "$(status_field dropped) $(status_field slow_subscriber)" >"$WORK/$1.policy"
  stop_msgbus
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

run without "$FAST" 0
ALL=$((FAST + SLOW))
run with "$ALL" "$(awk -v s="$SLOW" -v a="$ALL" 'BEGIN { printf "%.6f", s / a }')"

PAGE=$(getconf PAGESIZE)
echo "slow readers: $FAST readers at $RATE msg/s, $MESSAGES x $SIZE B; then with $SLOW more that never read"
echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ); $(nproc) cpus, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); kernel $(uname -r)"
echo "command: FAST=$FAST SLOW=$SLOW RATE=$RATE MESSAGES=$MESSAGES SIZE=$SIZE POLICY=$POLICY ARGS='$ARGS' sh loadtest/slow-readers.sh"
for r in without with; do
  p99=$(field "$WORK/$r.json" p99)
  peak=$(sort -n "$WORK/$r.sockstat" | tail -1)
  set -- $(cat "$WORK/$r.policy")
  printf '  %-8s readers %s/%s lost %s  p99 %s ms  max %s ms  kernel tcp peak %s, end %s  msgbus rss end %s, peak %s  dropped %s closed %s\n' \
    "$r" "$(field "$WORK/$r.json" readers)" "$(field "$WORK/$r.json" ready)" \
    "$(field "$WORK/$r.json" lost)" \
    "$(awk -v n="$p99" 'BEGIN { printf "%.2f", n / 1e6 }')" \
    "$(awk -v n="$(field "$WORK/$r.json" max)" 'BEGIN { printf "%.2f", n / 1e6 }')" \
    "$(awk -v p="${peak:-0}" -v s="$PAGE" 'BEGIN { printf "%.1f MiB", p * s / 1048576 }')" \
    "$(mib "$(field "$WORK/$r.json" tcp_mem_end)")" \
    "$(mib "$(field "$WORK/$r.json" rss_end)")" "$(mib "$(field "$WORK/$r.json" rss_peak)")" \
    "${1:-?}" "${2:-?}"
done
awk -v a="$(field "$WORK/without.json" p99)" -v b="$(field "$WORK/with.json" p99)" \
  'BEGIN { r = (a > 0) ? b / a : 0; printf "  p99 ratio with/without %.2f (goal <= 1.5): %s\n", r, (r <= 1.5) ? "ok" : "over" }'
