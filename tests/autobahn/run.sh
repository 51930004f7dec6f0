#!/bin/sh
# Autobahn WebSocket conformance (compression cases 12.* and 13.* aside), run on demand:
#   sh tests/autobahn/run.sh
# A client subscribed to one channel publishes to it with its own messages, so a WebSocket on
# a channel of its own is an echo endpoint. History is off so no case sees another's messages.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${VENV:-/tmp/msgbus-kosoku}
PORT=${PORT:-19321}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q kosoku
cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
"$ROOT/target/release/msgbus" -l 127.0.0.1 -p "$PORT" --history 0 \
  --max-ws-message 20000000 --max-body 20000000 --max-queue 67108864 2>/tmp/msgbus-autobahn.log &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
sleep 0.5
timeout 900 "$VENV/bin/python" "$ROOT/tests/autobahn/run.py" "ws://127.0.0.1:$PORT/msgbus/echo"
