#!/bin/sh
# Slowloris against msgbus while msgbus-load measures normal subscribers.
#   1. a fresh msgbus (default settings) on a free port of 127.0.0.1;
#   2. baseline: SUBS normal subscribers, RATE messages/s for SECS seconds (msgbus-load);
#   3. the same run while slowhttptest holds slow-header connections open (-H: headers sent one
#      line every INTERVAL seconds, never finished), CONNS in all at CONN_RATE per second;
#   4. prints both runs' loss and latency, and the most file descriptors msgbus held (sampled
#      every second) and slowhttptest's own summary of its connections.
# Only 127.0.0.1. Everything it starts is killed by pid at the end.
#
# Environment: SUBS (1000), RATE (50), SECS (30), SIZE (128), CONNS (10000), CONN_RATE (200),
# INTERVAL (5), MODE (H: slow headers; B: slow body), MSGBUS (server binary; default
# target/release/msgbus), KEEP (1: keep the work directory).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SUBS=${SUBS:-1000}
RATE=${RATE:-50}
SECS=${SECS:-30}
SIZE=${SIZE:-128}
CONNS=${CONNS:-10000}
CONN_RATE=${CONN_RATE:-200}
INTERVAL=${INTERVAL:-5}
MODE=${MODE:-H}
LOAD="$HERE/target/release/msgbus-load"
WORK=$(mktemp -d /tmp/msgbus-slowloris.XXXXXX)
PIDS=""

ulimit -n 20000

cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v slowhttptest >/dev/null || { echo "apt-get install -y slowhttptest" >&2; exit 1; }
cargo build --release -q --manifest-path "$HERE/Cargo.toml"
if [ -z "${MSGBUS:-}" ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
  MSGBUS="$ROOT/target/release/msgbus"
fi
cp "$MSGBUS" "$WORK/msgbus"

"$WORK/msgbus" -l 127.0.0.1 -p 0 2>"$WORK/msgbus.log" &
MPID=$!
PIDS="$PIDS $MPID"
i=0
until grep -q "listening on" "$WORK/msgbus.log" 2>/dev/null; do
  i=$((i + 1)); [ $i -le 100 ] && kill -0 "$MPID" || { cat "$WORK/msgbus.log" >&2; exit 1; }
  sleep 0.1
done
PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/msgbus.log" | head -1)

# The fd sampler: one line per second, "seconds fds", until msgbus exits or the stop file shows.
(
  t=0
  while [ ! -f "$WORK/stop" ] && [ -d "/proc/$MPID/fd" ]; do
    echo "$t $(ls "/proc/$MPID/fd" | wc -l)" >>"$WORK/fds"
    t=$((t + 1)); sleep 1
  done
) &
PIDS="$PIDS $!"

MESSAGES=$((RATE * SECS))
if [ "$MODE" = B ]; then VERB=POST; else VERB=GET; fi
load() {
  "$LOAD" --target "127.0.0.1:$PORT" --subs "$SUBS" --messages "$MESSAGES" --rate "$RATE" \
    --size "$SIZE" --channel "$1" --server-pid "$MPID" --duration $((SECS + 60)) --json \
    >"$WORK/$1.json" || true
}

line() {
  jq -r '"ready \(.ready)/\(.subs)  lost \(.lost)  dup \(.duplicates)  latency p50 \(.latency_ns.p50 / 1e6) ms, p99 \(.latency_ns.p99 / 1e6) ms, max \(.latency_ns.max / 1e6) ms  server cpu \(.server_cpu_s) s"' "$WORK/$1.json"
}

echo "msgbus on 127.0.0.1:$PORT; $SUBS subscribers, $RATE msg/s x $SECS s, $SIZE bytes"
load baseline
echo "baseline:        $(line baseline)"
sleep 1
fds_before=$(ls "/proc/$MPID/fd" | wc -l)

# -$MODE: H slow headers (slowloris), B slow body; -i seconds between follow-up data;
# -l test length; -g -o: the per-second CSV of connection states.
set -x
slowhttptest -"$MODE" -c "$CONNS" -r "$CONN_RATE" -i "$INTERVAL" -s 8192 -x 24 -p 3 \
  -l $((SECS + 20)) -t "$VERB" -u "http://127.0.0.1:$PORT/msgbus/slowloris" \
  -g -o "$WORK/slowhttptest" >"$WORK/slowhttptest.out" 2>&1 &
{ set +x; } 2>/dev/null
SPID=$!
PIDS="$PIDS $SPID"
sleep 5
load attack
echo "under slowloris: $(line attack)"
wait "$SPID" || true
touch "$WORK/stop"
echo "msgbus fds: $fds_before before the attack, at most $(sort -k2 -n "$WORK/fds" | tail -1 | cut -d' ' -f2) during it"
# slowhttptest.csv: Seconds,Closed,Pending,Connected,Service Available (non-zero: its probe
# connection got an answer within -p seconds).
echo "slowhttptest's connections (every 5 s; the attack starts at t=0, the measured run at t=5):"
awk -F, 'NR > 1 && ($1 % 5 == 0) {
  printf "  t=%3ss  connected %5s  pending %5s  closed %5s  service available %s\n", $1, $4, $3, $2, ($5 > 0 ? "yes" : "NO")
}' "$WORK/slowhttptest.csv"
sed 's/\x1b\[[0-9;]*m//g' "$WORK/slowhttptest.out" | grep -A1 "^Test ended" | sed 's/^/  /'
