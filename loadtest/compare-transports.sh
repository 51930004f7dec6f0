#!/bin/bash
# The core scenarios over SSE or WebSocket, against a fresh msgbus each run and Nchan, with the
# writev floor in the same run; prints one JSON report per run (medians are left to the reader):
#   sh loadtest/compare-transports.sh sse    # or ws
# (a) 10,000 subscribers x 1,000 messages; (b) one at a time, 1,000 subscribers, and the floor;
# (c) a pipelined burst, 1,000 x 1,000, msgbus then Nchan. Kills only what it starts.
set -u
TRANSPORT=${1:-sse}
RUNS=${RUNS:-3}
PORT=${PORT:-18890}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
NCHAN_PREFIX=${NCHAN_PREFIX:-/tmp/msgbus-nchan}
export NCHAN_PREFIX
L="$HERE/target/release/msgbus-load"
M="$ROOT/target/release/msgbus"
ulimit -n 20000
cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
cargo build --release -q --manifest-path "$HERE/Cargo.toml"
cc -O2 -o /tmp/msgbus-floor "$HERE/floor.c"
run_msgbus() {
  "$M" -l 127.0.0.1 -p "$PORT" 2>/dev/null & local pid=$!
  sleep 0.3
  timeout 300 "$L" --target "127.0.0.1:$PORT" --transport "$TRANSPORT" --server-pid "$pid" --json "$@"
  kill "$pid"; wait "$pid" 2>/dev/null
}
for i in $(seq "$RUNS"); do
  echo "== a $i"; run_msgbus --subs 10000 --messages 1000
  echo "== b $i"; run_msgbus --subs 1000 --messages 1000 --one-at-a-time
  echo "== floor $i"; /tmp/msgbus-floor -n 1000 -m 1000 -s 128 -k 1 | tail -1
  echo "== c $i"; run_msgbus --subs 1000 --messages 1000
done
STARTED=0
if ! [ -f "$NCHAN_PREFIX/nginx.pid" ] || ! kill -0 "$(cat "$NCHAN_PREFIX/nginx.pid")" 2>/dev/null; then
  sh "$HERE/nchan/start.sh" >/dev/null && STARTED=1
fi
NPID=$(pgrep -P "$(cat "$NCHAN_PREFIX/nginx.pid")" | head -1)
for i in $(seq "$RUNS"); do
  echo "== nchan c $i"
  timeout 300 "$L" --target 127.0.0.1:9201 --flavor nchan --transport "$TRANSPORT" \
    --channel "cmp$i$$" --server-pid "$NPID" --json --subs 1000 --messages 1000
done
[ "$STARTED" = 1 ] && sh "$HERE/nchan/stop.sh" >/dev/null
