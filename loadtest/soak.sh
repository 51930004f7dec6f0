#!/bin/sh
# soak.sh [DURATION_SECS]: a steady mix against one msgbus for DURATION_SECS (default 1800).
#   - CHANNELS channels; on each, LONG subscribers that stay connected throughout (one
#     --no-publish msgbus-load process per channel, multipart and SSE alternating) and one
#     publisher at RATE messages/s of SIZE bytes;
#   - churn: every CHURN_EVERY seconds a new msgbus-load process connects CHURN_SUBS subscribers
#     to the next channel (transport alternating) and drops them all after CHURN_LIFE seconds;
#   - every INTERVAL seconds (default 60) msgbus's VmRSS and open fds go to CSV
#     (seconds,phase,rss_kb,fds,churn_processes_started), phase "start" (before any client),
#     "run", and "end" (after every client has gone: a leak shows as fds above "start");
#   - at the end: every message the publishers got a 2xx for must have reached every long-lived
#     subscriber exactly once (PASS / FAIL), and RSS and fds are summarised: the first and last
#     "run" samples with their min and max (flat = no trend), and "start" vs "end".
# Only 127.0.0.1. Everything it starts is killed by pid at the end; the CSV is kept.
#
# Environment: CHANNELS (4), LONG (250 per channel), RATE (20 per channel), SIZE (256),
# CHURN_SUBS (200), CHURN_LIFE (8), CHURN_EVERY (4), INTERVAL (60), CSV (./soak-<time>.csv),
# MSGBUS (server binary; default target/release/msgbus), KEEP (1: keep the work directory).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SECS=${1:-1800}
CHANNELS=${CHANNELS:-4}
LONG=${LONG:-250}
RATE=${RATE:-20}
SIZE=${SIZE:-256}
CHURN_SUBS=${CHURN_SUBS:-200}
CHURN_LIFE=${CHURN_LIFE:-8}
CHURN_EVERY=${CHURN_EVERY:-4}
INTERVAL=${INTERVAL:-60}
CSV=${CSV:-$(pwd)/soak-$(date +%Y%m%d-%H%M%S).csv}
LOAD="$HERE/target/release/msgbus-load"
WORK=$(mktemp -d /tmp/msgbus-soak.XXXXXX)
PIDS=""

ulimit -n 20000

cleanup() {
  touch "$WORK/stop"
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
TARGET=127.0.0.1:$PORT
MESSAGES=$((RATE * SECS))
START=$(date +%s)

transport() { if [ $(($1 % 2)) = 0 ]; then echo multipart; else echo sse; fi; }

# sample PHASE: one CSV line.
sample() {
  rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$MPID/status")
  fds=$(ls "/proc/$MPID/fd" | wc -l)
  churned=$(cat "$WORK/churned" 2>/dev/null || echo 0)
  echo "$(($(date +%s) - START)),$1,$rss,$fds,$churned" >>"$CSV"
}

echo "msgbus on $TARGET; $SECS s: $CHANNELS channels x ($LONG long-lived subscribers, $RATE msg/s of $SIZE bytes);" \
  "churn $CHURN_SUBS subscribers every $CHURN_EVERY s for $CHURN_LIFE s; samples every $INTERVAL s to $CSV"
echo "seconds,phase,rss_kb,fds,churn_processes_started" >"$CSV"
sample start

# Long-lived subscribers: they wait for every message (quiet-secs covers a stall of the mix).
for c in $(seq "$CHANNELS"); do
  "$LOAD" --target "$TARGET" --channel "soak$c" --transport "$(transport "$c")" --subs "$LONG" \
    --no-publish --expect "$MESSAGES" --quiet-secs 30 --duration $((SECS + 180)) \
    --ready-file "$WORK/ready.$c" --json >"$WORK/long.$c.json" 2>"$WORK/long.$c.err" &
  PIDS="$PIDS $!"
  echo $! >>"$WORK/long.pids"
done
i=0
while [ "$(ls "$WORK" | grep -c '^ready\.[0-9]*$')" -lt "$CHANNELS" ]; do
  i=$((i + 1)); [ $i -le 300 ] || { echo "long-lived subscribers not ready" >&2; exit 1; }
  sleep 0.2
done

# The sampler: every INTERVAL seconds until the stop file shows.
(
  next=$INTERVAL
  while [ ! -f "$WORK/stop" ]; do
    if [ $(($(date +%s) - START)) -ge "$next" ]; then sample run; next=$((next + INTERVAL)); fi
    sleep 1
  done
) &
PIDS="$PIDS $!"

# Publishers: one per channel, paced, for SECS seconds.
for c in $(seq "$CHANNELS"); do
  "$LOAD" --target "$TARGET" --channel "soak$c" --subs 0 --messages "$MESSAGES" --rate "$RATE" \
    --size "$SIZE" --idle-secs 0 --duration $((SECS + 120)) --json >"$WORK/pub.$c.json" &
  PIDS="$PIDS $!"
  echo $! >>"$WORK/pub.pids"
done

# Churn: short-lived subscriber processes that end at their --duration (and so disconnect all
# at once); the loop stops at the stop file, its last processes end on their own.
(
  n=0
  while [ ! -f "$WORK/stop" ]; do
    n=$((n + 1))
    c=$((n % CHANNELS + 1))
    "$LOAD" --target "$TARGET" --channel "soak$c" --transport "$(transport "$n")" \
      --subs "$CHURN_SUBS" --no-publish --expect "$MESSAGES" --idle-secs 0 \
      --duration "$CHURN_LIFE" --json >/dev/null 2>&1 &
    echo "$n" >"$WORK/churned"
    sleep "$CHURN_EVERY"
  done
  wait
) &
CHURN=$!
PIDS="$PIDS $CHURN"

for p in $(cat "$WORK/pub.pids"); do wait "$p" || true; done
for p in $(cat "$WORK/long.pids"); do wait "$p" || true; done
touch "$WORK/stop"
wait "$CHURN" || true
sleep 2 # the server's closes of the last churned connections
sample end

echo "publishers and long-lived subscribers, per channel:"
fail=0
for c in $(seq "$CHANNELS"); do
  # Accepted = 2xx answers; every long-lived subscriber must have every accepted message.
  acc=$(jq '.answered - .publish_errors' "$WORK/pub.$c.json")
  read -r ready lost dup uniq p50 p99 mx <<EOF
$(jq -r '"\(.ready) \(.lost) \(.duplicates) \(.unique) \(.latency_ns.p50 / 1e6) \(.latency_ns.p99 / 1e6) \(.latency_ns.max / 1e6)"' "$WORK/long.$c.json")
EOF
  ok=PASS
  if [ "$ready" != "$LONG" ] || [ "$dup" != 0 ] || [ "$uniq" != $((ready * acc)) ]; then ok=FAIL; fail=1; fi
  echo "  soak$c ($(transport "$c")): published $(jq .published "$WORK/pub.$c.json"), accepted $acc;" \
    "$ready long-lived: $uniq of $((ready * acc)) deliveries, lost $lost, dup $dup;" \
    "latency p50 $p50 ms, p99 $p99 ms, max $mx ms  $ok"
done
echo "churn: $(cat "$WORK/churned") processes of $CHURN_SUBS subscribers"
echo "msgbus RSS and fds ($CSV):"
awk -F, '$2 == "start" { r0 = $3; f0 = $4 }
  $2 == "end" { r9 = $3; f9 = $4 }
  $2 == "run" {
    n++; t[n] = $1; r[n] = $3; f[n] = $4
    if (n == 1 || $3 < rmin) rmin = $3; if (n == 1 || $3 > rmax) rmax = $3
    if (n == 1 || $4 < fmin) fmin = $4; if (n == 1 || $4 > fmax) fmax = $4
  }
  END {
    if (n > 0) {
      printf "  running: rss %d kB at t=%ds, %d kB at t=%ds (min %d, max %d kB)\n", r[1], t[1], r[n], t[n], rmin, rmax
      printf "  running: fds %d at t=%ds, %d at t=%ds (min %d, max %d)\n", f[1], t[1], f[n], t[n], fmin, fmax
    }
    printf "  idle before / after: rss %d / %d kB, fds %d / %d\n", r0, r9, f0, f9
  }' "$CSV"
if [ "$fail" = 0 ]; then echo "PASS: every accepted message reached every long-lived subscriber once"; else echo "FAIL"; fi
exit "$fail"
