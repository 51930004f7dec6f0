#!/bin/sh
# Publish-to-acknowledge through JetStream against the same node without NATS:
#   for each of "nats" (a node with --nats to a nats-server -js this script starts) and "plain"
#   (the node alone), and each count in PUBLISHERS, RUNS times with fresh servers: one publisher
#   process (no subscribers) sends MESSAGES messages of SIZE bytes over that many keep-alive
#   connections, PIPELINE requests in flight on each; msgbus-load times each request from
#   queued to its answer read (the answer comes only after JetStream's PubAck with --nats).
# Prints, per case, the medians of acknowledged publishes/s and the ack latency p50/p99, and
# each run's figures. Everything it starts is killed by pid at the end.
#
# Environment: MESSAGES (20000), SIZE (128), PIPELINE (16), PUBLISHERS ("1 16"), RUNS (3),
# MSGBUS (server binary; default target/release/msgbus), NATS_SERVER (nats-server), DURATION
# (seconds a run may take, 120), KEEP (1: keep the work directory).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
MESSAGES=${MESSAGES:-20000}
SIZE=${SIZE:-128}
PIPELINE=${PIPELINE:-16}
PUBLISHERS=${PUBLISHERS:-1 16}
RUNS=${RUNS:-3}
NATS_SERVER=${NATS_SERVER:-nats-server}
DURATION=${DURATION:-120}
LOAD="$HERE/target/release/msgbus-load"
SCRIPT=ack
. "$HERE/lib.sh"
command -v "$NATS_SERVER" >/dev/null || die "no $NATS_SERVER"
command -v jq >/dev/null || die "no jq"

# measure MODE PUBS: one run; appends a line of NAME=VALUE figures to $WORK/MODE.PUBS.
measure() {
  mode=$1 pubs=$2
  dir="$WORK/$mode.$pubs.$(date +%s%N)"
  mkdir -p "$dir"
  nats_args=""
  if [ "$mode" = nats ]; then
    "$NATS_SERVER" -a 127.0.0.1 -p -1 -js -sd "$dir/jetstream" >"$dir/nats.log" 2>&1 &
    nats_pid=$!
    PIDS="$PIDS $nats_pid"
    wait_log "$dir/nats.log" "Server is ready" "$nats_pid"
    nats_port=$(sed -n 's/.*Listening for client connections on [0-9.]*:\([0-9]*\).*/\1/p' "$dir/nats.log" | head -1)
    nats_args="--nats nats://127.0.0.1:$nats_port"
  fi
  # shellcheck disable=SC2086
  "$WORK/msgbus" -l 127.0.0.1 -p 0 $nats_args 2>"$dir/node.log" &
  pid=$!
  PIDS="$PIDS $pid"
  wait_log "$dir/node.log" "listening on" "$pid"
  if [ "$mode" = nats ]; then wait_log "$dir/node.log" "caught up with the stream" "$pid"; fi
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/node.log" | head -1)
  "$LOAD" --target "127.0.0.1:$port" --channel ack --subs 0 --messages "$MESSAGES" --size "$SIZE" \
    --publishers "$pubs" --pipeline "$PIPELINE" --idle-secs 0 --duration "$DURATION" --json \
    >"$dir/pub.json" 2>"$dir/pub.err" || true
  stop_all
  jq -r '"answered=\(.answered) publish_errors=\(.publish_errors) acked_per_s=\(.acked_per_s)"
    + " ack_p50_ms=\(.ack_p50_ns / 1e6) ack_p99_ms=\(.ack_p99_ns / 1e6) ack_max_ms=\(.ack_max_ns / 1e6)"' \
    "$dir/pub.json" >>"$WORK/$mode.$pubs"
}

# value FILE NAME: NAME's value on each line of FILE.
value() {
  tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"
}

# median: the middle of the numbers on stdin (lower middle for an even count).
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}

FMT='{ if ($1 >= 1000 || $1 <= -1000) printf "%.0f\n", $1; else printf "%.3g\n", $1 }'

echo "publish to acknowledge: $MESSAGES messages of $SIZE bytes, pipeline $PIPELINE per connection," \
  "medians of $RUNS (fresh servers each run)"
printf '%-6s %5s %14s %12s %12s %8s   %s\n' mode conns acked/s p50_ms p99_ms errors runs
for pubs in $PUBLISHERS; do
  for mode in nats plain; do
    for r in $(seq "$RUNS"); do measure "$mode" "$pubs"; done
    f="$WORK/$mode.$pubs"
    printf '%-6s %5s %14s %12s %12s %8s   %s\n' "$mode" "$pubs" \
      "$(value "$f" acked_per_s | awk "$FMT" | median)" \
      "$(value "$f" ack_p50_ms | awk "$FMT" | median)" \
      "$(value "$f" ack_p99_ms | awk "$FMT" | median)" \
      "$(value "$f" publish_errors | median)" \
      "$(value "$f" acked_per_s | awk "$FMT" | tr '\n' ' ' | sed 's/ $//') /s"
  done
done
