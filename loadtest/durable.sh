#!/bin/sh
# Durable history figures (issue 15), medians of RUNS runs, same machine, same run:
#   (a) publishes acknowledged per second, 128-byte bodies, pipelined 16 deep, on 1 and on 16
#       connections: msgbus --data-dir --fsync always, memory-only msgbus, and Redis
#       (redis-server --appendonly yes --appendfsync always, XADD through redis-benchmark -P 16)
#   (b) restart time and RSS with 1,000,000 kept messages over 10,000 channels (100 each)
# Every server is started here on a free loopback port and killed by its PID at the end.
#
# Environment: RUNS (default 3), MESSAGES per connection per run (default 10000), DIR for the logs
# (default a fresh directory under /tmp: its disk is the one measured), MSGBUS (server binary;
# default target/release/msgbus).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-10000}
WORK=${DIR:-$(mktemp -d /tmp/msgbus-durable.XXXXXX)}
LOAD="$HERE/target/release/msgbus-load"
PIDS=""

cleanup() {
  for pid in $PIDS; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install -y redis-server)" >&2; exit 1; }
cargo build --release -q --manifest-path "$HERE/Cargo.toml"
if [ -z "${MSGBUS:-}" ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
  MSGBUS="$ROOT/target/release/msgbus"
fi
cp "$MSGBUS" "$WORK/msgbus"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ns() { date +%s%N; }

# start_msgbus PORT ARGS...: starts it, sets MPID, waits until it answers.
start_msgbus() {
  port=$1; shift
  "$WORK/msgbus" -l 127.0.0.1 -p "$port" "$@" 2>>"$WORK/msgbus.log" &
  MPID=$!
  PIDS="$PIDS $MPID"
  i=0
  until curl -s -o /dev/null "http://127.0.0.1:$port/status.json"; do
    i=$((i + 1))
    if [ $i -gt 6000 ] || ! kill -0 "$MPID" 2>/dev/null; then
      echo "msgbus did not start:" >&2; tail "$WORK/msgbus.log" >&2; exit 1
    fi
    sleep 0.01
  done
}

stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# msgbus_rate PORT CONNS: publishes MESSAGES on each of CONNS pipelined connections (one
# msgbus-load process each), prints acks/s over the whole.
msgbus_rate() {
  port=$1; conns=$2; each=$MESSAGES; start=$(now_ns); pids=""
  for c in $(seq 1 "$conns"); do
    "$LOAD" --target "127.0.0.1:$port" --subs 0 --messages "$each" --size 128 --pipeline 16 \
      --channel "rate$c" --idle-secs 0 --quiet-secs 0.1 --json >/dev/null 2>&1 &
    pids="$pids $!"
  done
  for pid in $pids; do wait "$pid"; done
  end=$(now_ns)
  echo "$each $conns $start $end" | awk '{printf "%.0f\n", $1 * $2 / (($4 - $3) / 1e9)}'
}

redis_rate() {
  port=$1; conns=$2
  payload=$(head -c 128 /dev/zero | tr '\0' x)
  redis-benchmark -h 127.0.0.1 -p "$port" -c "$conns" -P 16 -n "$((MESSAGES * conns))" -q \
    XADD stream '*' data "$payload" 2>/dev/null |
    tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) v = $i} END {printf "%.0f\n", v}'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); logs on $(df -T "$WORK" | awk 'NR==2 {print $2, $1}')"
echo "(a) publishes acknowledged per second, 128-byte bodies, 16 in flight per connection, $MESSAGES per connection, median of $RUNS"
echo "    (msgbus: one msgbus-load process per connection; Redis: one redis-benchmark process)"
for conns in 1 16; do
  for kind in always memory redis; do
    rates=""
    for run in $(seq 1 "$RUNS"); do
      port=$(free_port)
      case $kind in
        always)
          rm -rf "$WORK/log"
          start_msgbus "$port" --data-dir "$WORK/log" --fsync always
          rates="$rates $(msgbus_rate "$port" "$conns")"; stop "$MPID" ;;
        memory)
          start_msgbus "$port"
          rates="$rates $(msgbus_rate "$port" "$conns")"; stop "$MPID" ;;
        redis)
          rm -rf "$WORK/redis"; mkdir -p "$WORK/redis"
          redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
            --appendonly yes --appendfsync always --daemonize no >/dev/null 2>&1 &
          RPID=$!; PIDS="$PIDS $RPID"
          i=0; until redis-cli -p "$port" ping >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 500 ] || exit 1; sleep 0.01; done
          rates="$rates $(redis_rate "$port" "$conns")"; stop "$RPID" ;;
      esac
    done
    printf '  %-2s connection(s)  %-28s %8s /s   (runs:%s)\n' "$conns" \
      "$(case $kind in always) echo 'msgbus --fsync always';; memory) echo 'msgbus, memory only';; redis) echo 'redis appendfsync always';; esac)" \
      "$(echo $rates | tr ' ' '\n' | median)" "$rates"
  done
done

echo "(b) 1,000,000 kept messages over 10,000 channels (128-byte bodies), --fsync never to fill"
port=$(free_port)
rm -rf "$WORK/big"
start_msgbus "$port" --data-dir "$WORK/big" --fsync never --history 100 --max-retained-bytes 4000000000
fill_start=$(now_ns)
python3 - "$port" <<'PY'
import socket, sys
from multiprocessing import Process
port = int(sys.argv[1])
def fill(part):
    s = socket.create_connection(("127.0.0.1", port))
    body = b"x" * 128
    for ch in range(part, 10000, 4):
        req = (b"POST /msgbus/big/%d HTTP/1.1\r\nHost: t\r\nContent-Length: 128\r\n\r\n" % ch) + body
        s.sendall(req * 100)
        want, got = 100, b""
        while got.count(b"\r\n\r\n") < want:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise SystemExit("closed")
            got += chunk
        assert got.count(b" 204 ") == want, got[:200]
procs = [Process(target=fill, args=(p,)) for p in range(4)]
[p.start() for p in procs]
[p.join() for p in procs]
sys.exit(max(p.exitcode for p in procs))
PY
fill_end=$(now_ns)
kept=$(curl -s "http://127.0.0.1:$port/status.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["retained"])' 2>/dev/null || echo "?")
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$MPID/status")
stop "$MPID"
log_bytes=$(du -sb "$WORK/big" | cut -f1)
restarts=""
for run in $(seq 1 "$RUNS"); do
  t0=$(now_ns)
  start_msgbus "$port" --data-dir "$WORK/big" --history 100 --max-retained-bytes 4000000000
  t1=$(now_ns)
  rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$MPID/status")
  kept_after=$(curl -s "http://127.0.0.1:$port/status.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["retained"])' 2>/dev/null || echo "?")
  stop "$MPID"
  restarts="$restarts $(( (t1 - t0) / 1000000 ))"
done
echo "  filled in $(( (fill_end - fill_start) / 1000000 )) ms; kept $kept messages; log $((log_bytes / 1048576)) MiB"
echo "  RSS before restart $((rss_before / 1024)) MiB, after restart $((rss_after / 1024)) MiB ($kept_after messages kept)"
echo "  restart until answering: median $(echo $restarts | tr ' ' '\n' | median) ms (runs:$restarts)"
