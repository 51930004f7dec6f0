#!/bin/sh
# Runs the README's scenarios, RUNS times each, and prints medians:
#   (a) 10,000 multipart subscribers x 1,000 messages of 128 bytes: lost / duplicates
#   (b) --one-at-a-time at 1,000 subscribers: server CPU per delivery, vs the floor (floor.c)
#   (c) pipelined burst, 1,000 subscribers x 1,000 messages: msgbus vs Nchan
#   (d) RSS per idle subscriber at 10,000: msgbus vs Nchan
# Each msgbus run gets a fresh release server on 127.0.0.1:$PORT, killed by its PID afterwards.
# Nchan (127.0.0.1:9201) is started with loadtest/nchan/start.sh if it is not running,
# and stopped at the end only if this script started it.
#
# Environment: RUNS (default 3), SCENARIOS (default "a b c d"), PORT (default 18888),
# MSGBUS (server binary; default target/release/msgbus), NCHAN_PREFIX (default /tmp/msgbus-nchan).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-a b c d}
PORT=${PORT:-18888}
NCHAN_DIR="$HERE/nchan"
NCHAN_PREFIX=${NCHAN_PREFIX:-/tmp/msgbus-nchan}
export NCHAN_PREFIX
LOAD="$HERE/target/release/msgbus-load"
WORK=$(mktemp -d /tmp/msgbus-compare.XXXXXX)
MPID=""
STARTED_NCHAN=0

ulimit -n 20000

cleanup() {
  if [ -n "$MPID" ]; then kill "$MPID" 2>/dev/null || true; wait "$MPID" 2>/dev/null || true; fi
  if [ "$STARTED_NCHAN" = 1 ]; then sh "$NCHAN_DIR/stop.sh" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release -q --manifest-path "$HERE/Cargo.toml"
if [ -z "${MSGBUS:-}" ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
  MSGBUS="$ROOT/target/release/msgbus"
fi
# A private copy, so a rebuild during the runs does not change the server under test.
cp "$MSGBUS" "$WORK/msgbus"

start_msgbus() {
  "$WORK/msgbus" -l 127.0.0.1 -p "$PORT" 2>"$WORK/msgbus.log" &
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

nchan_worker() {
  pgrep -P "$(cat "$NCHAN_PREFIX/nginx.pid")" | head -1
}

ensure_nchan() {
  if [ -f "$NCHAN_PREFIX/nginx.pid" ] && kill -0 "$(cat "$NCHAN_PREFIX/nginx.pid")" 2>/dev/null; then
    return
  fi
  sh "$NCHAN_DIR/start.sh" >/dev/null
  STARTED_NCHAN=1
}

# field FILE NAME: the values of a numeric JSON field, one per run.
field() {
  sed -n "s/.*\"$2\":\([-0-9.]*\)[,}].*/\1/p" "$1"
}

# median: the middle of the numbers on stdin (lower middle for an even count).
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}

# summary FILE NAME...: "NAME median (runs: a b c)" for each field; latencies in ms.
summary() {
  f=$1; shift
  for name in "$@"; do
    case $name in
    p50 | p90 | p99 | max) scale='{ printf "%.2f\n", $1 / 1e6 }'; label="latency_${name}_ms" ;;
    *) scale='{ print }'; label=$name ;;
    esac
    printf '  %-28s %12s   (runs: %s)\n' "$label" "$(field "$f" "$name" | awk "$scale" | median)" \
      "$(field "$f" "$name" | awk "$scale" | tr '\n' ' ' | sed 's/ $//')"
  done
}

# msgbus_runs OUT ARGS...: RUNS runs against a fresh msgbus each, one JSON line per run.
msgbus_runs() {
  out=$1; shift
  : >"$out"
  for r in $(seq "$RUNS"); do
    start_msgbus
    "$LOAD" --target "127.0.0.1:$PORT" --server-pid "$MPID" --channel "cmp-$r-$$" --json "$@" \
      >>"$out" || true
    stop_msgbus
  done
}

# nchan_runs OUT ARGS...: RUNS runs against Nchan's worker, a new channel each. With FRESH=1
# Nginx is restarted before each run (only an instance this script started), since a worker
# keeps its memory after its subscribers leave and the next RSS growth would read as zero.
nchan_runs() {
  out=$1; shift
  : >"$out"
  ensure_nchan
  if [ "${FRESH:-0}" = 1 ] && [ "$STARTED_NCHAN" = 0 ]; then
    echo "  (Nchan was already running: only the first run's rss_per_sub is meaningful)"
  fi
  for r in $(seq "$RUNS"); do
    if [ "${FRESH:-0}" = 1 ] && [ "$STARTED_NCHAN" = 1 ]; then
      sh "$NCHAN_DIR/stop.sh" >/dev/null 2>&1 || true
      sh "$NCHAN_DIR/start.sh" >/dev/null
      sleep 0.5
    fi
    "$LOAD" --target 127.0.0.1:9201 --flavor nchan --server-pid "$(nchan_worker)" \
      --channel "cmp-$r-$$-$(date +%s%N)" --json "$@" >>"$out" || true
  done
}

for s in $SCENARIOS; do
  case $s in
  a)
    echo "(a) msgbus: 10000 multipart subscribers x 1000 messages of 128 bytes, pipeline 64"
    msgbus_runs "$WORK/a" --subs 10000 --messages 1000 --size 128
    summary "$WORK/a" ready lost duplicates deliveries_per_s server_cpu_us_per_delivery p50 p99
    ;;
  b)
    echo "(b) one-at-a-time, 1000 subscribers x 1000 messages of 128 bytes: server CPU per delivery"
    msgbus_runs "$WORK/b" --subs 1000 --messages 1000 --size 128 --one-at-a-time
    summary "$WORK/b" lost duplicates server_cpu_us_per_delivery deliveries_per_server_cpu_s p50
    cc -O2 -o "$WORK/floor" "$HERE/floor.c"
    : >"$WORK/ceil"
    for r in $(seq "$RUNS"); do "$WORK/floor" -n 1000 -m 1000 -s 128 -k 1 >>"$WORK/ceil"; done
    printf '  %-28s %12s   (runs: %s)\n' "floor cpu_us_per_delivery" \
      "$(sed -n 's/.*cpu_us_per_delivery=\([0-9.]*\).*/\1/p' "$WORK/ceil" | median)" \
      "$(sed -n 's/.*cpu_us_per_delivery=\([0-9.]*\).*/\1/p' "$WORK/ceil" | tr '\n' ' ' | sed 's/ $//')"
    ;;
  c)
    echo "(c) pipelined burst, 1000 subscribers x 1000 messages of 128 bytes, pipeline 64"
    echo " msgbus:"
    msgbus_runs "$WORK/c1" --subs 1000 --messages 1000 --size 128
    summary "$WORK/c1" lost duplicates wall_s deliveries_per_s server_cpu_us_per_delivery p50 p99
    echo " nchan:"
    nchan_runs "$WORK/c2" --subs 1000 --messages 1000 --size 128
    summary "$WORK/c2" lost duplicates wall_s deliveries_per_s server_cpu_us_per_delivery p50 p99
    ;;
  d)
    echo "(d) RSS per idle subscriber, 10000 multipart subscribers (idle 2 s)"
    echo " msgbus:"
    msgbus_runs "$WORK/d1" --subs 10000 --messages 1 --idle-secs 2
    summary "$WORK/d1" ready rss_before rss_idle rss_per_sub
    echo " nchan:"
    FRESH=1
    nchan_runs "$WORK/d2" --subs 10000 --messages 1 --idle-secs 2
    FRESH=0
    summary "$WORK/d2" ready rss_before rss_idle rss_per_sub
    ;;
  *) echo "unknown scenario $s (a b c d)" >&2; exit 2 ;;
  esac
done
