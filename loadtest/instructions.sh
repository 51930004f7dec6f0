#!/bin/sh
# User-space instructions per delivery, counted exactly with callgrind: the server under
# `valgrind --tool=callgrind` takes SUBS subscribers of TRANSPORT and LOW, then HIGH messages
# one at a time (a fresh server each); the difference over (HIGH - LOW) x SUBS deliveries
# leaves start-up out. With SYSCALLS=1 it counts the server's system calls instead
# (`strace -c -f`, HIGH messages), for the calls made per delivery.
#
#   sh loadtest/instructions.sh [BINARY] [TRANSPORT] [SUBS]
#
# BINARY defaults to this tree's release build, TRANSPORT to sse (multipart, ws, longpoll), SUBS
# to 1000. Environment: LOW (100), HIGH (300), PORT (18995), SYSCALLS (0). Needs valgrind (and
# strace for SYSCALLS=1). Everything on 127.0.0.1; each server is stopped by its PID.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
LOW=${LOW:-100}
HIGH=${HIGH:-300}
PORT=${PORT:-18995}
TRANSPORT=${2:-sse}
SUBS=${3:-1000}
LOAD="$HERE/target/release/msgbus-load"
WORK=$(mktemp -d /tmp/msgbus-instructions.XXXXXX)
PID=""
ulimit -n 20000

cleanup() {
  if [ -n "$PID" ]; then kill -INT "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --release -q --manifest-path "$HERE/Cargo.toml"
if [ $# -ge 1 ]; then
  BIN=$1
else
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
  BIN="$ROOT/target/release/msgbus"
fi

wait_ready() {
  i=0
  while ! grep -q "connections (open-files limit" "$1" 2>/dev/null; do
    i=$((i + 1))
    [ $i -le 600 ] || { echo "server did not start" >&2; cat "$1" >&2; exit 1; }
    sleep 0.1
  done
}

load() {
  "$LOAD" --target "127.0.0.1:$PORT" --transport "$TRANSPORT" --subs "$SUBS" \
    --messages "$1" --one-at-a-time --duration 600 --json >"$WORK/load.json" 2>/dev/null
  grep -q '"lost":0,' "$WORK/load.json" || { echo "messages lost: see $WORK/load.json" >&2; exit 1; }
}

if [ "${SYSCALLS:-0}" = 1 ]; then
  "$BIN" -l 127.0.0.1 -p "$PORT" 2>"$WORK/log" &
  PID=$!
  wait_ready "$WORK/log"
  strace -c -f -p "$PID" -o "$WORK/strace" 2>/dev/null &
  TRACE=$!
  sleep 0.5
  load "$HIGH"
  kill -INT "$TRACE"; wait "$TRACE" 2>/dev/null || true
  echo "$TRANSPORT, $SUBS subscribers x $HIGH messages one at a time: system calls"
  head -n 20 "$WORK/strace"
  exit 0
fi

instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1" "$BIN" -l 127.0.0.1 -p "$PORT" \
    2>"$WORK/log.$1" &
  PID=$!
  wait_ready "$WORK/log.$1"
  load "$1"
  kill -INT "$PID"; wait "$PID" 2>/dev/null || true
  PID=""
  callgrind_annotate "$WORK/cg.$1" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}

low=$(instructions "$LOW")
high=$(instructions "$HIGH")
per=$(( (high - low) / ((HIGH - LOW) * SUBS) ))
echo "$TRANSPORT, $SUBS subscribers, one message at a time: $low instructions at $LOW messages," \
  "$high at $HIGH: $per per delivery"
