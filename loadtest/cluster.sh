#!/bin/sh
# A msgbus cluster under load, and the same load on one node without NATS:
#   1. nats-server on a free loopback port; NODES msgbus nodes on free ports, joined through it;
#   2. subscriber-only msgbus-load processes (--no-publish, at most PER_PROC subscribers each),
#      spread over the nodes, SUBS subscribers in all; waits until every one is READY;
#   3. one publisher process (no subscribers) publishes MESSAGES messages of SIZE bytes,
#      pipelined, to node 1; every subscriber process exits once it has them all;
#   4. sums the reports: deliveries, lost, duplicates, out of order (one publisher connection, so
#      every subscriber on every node must see the seqs increase), deliveries/s, the time to the
#      last subscriber (the worst process's p50/p99/max: an upper bound on the whole run's), and
#      the CPU every node (and nats-server) spent from just before the publisher started to the
#      last process's exit;
#   5. the baseline: one node without NATS and SUBS/NODES subscribers (the per-node count; set
#      SINGLE_SUBS to change it), measured the same way; and a control, that one node joined
#      through NATS (alone in its cluster), to tell what NATS costs a node from what NODES
#      processes sharing the machine's cores cost (CONTROL=0 skips it);
# RUNS times each, fresh servers every run; prints each figure's median and its runs, and the
# extra CPU per delivery the cluster costs. Everything it starts is killed by pid at the end.
#
# Environment: NODES (4: 3 nodes cannot hold 60,000 subscribers under a 20,000-file limit),
# SUBS (60000), PER_PROC (19000), MESSAGES (200), SIZE (128), PIPELINE (64), TRANSPORT
# (multipart), RUNS (3), SINGLE_SUBS (SUBS/NODES), MSGBUS (server binary; default
# target/release/msgbus), NATS_SERVER (nats-server), DURATION (seconds each load process may
# take, 120), KEEP (1: keep the work directory).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
NODES=${NODES:-4}
SUBS=${SUBS:-60000}
PER_PROC=${PER_PROC:-19000}
MESSAGES=${MESSAGES:-200}
SIZE=${SIZE:-128}
PIPELINE=${PIPELINE:-64}
TRANSPORT=${TRANSPORT:-multipart}
RUNS=${RUNS:-3}
SINGLE_SUBS=${SINGLE_SUBS:-$((SUBS / NODES))}
NATS_SERVER=${NATS_SERVER:-nats-server}
DURATION=${DURATION:-120}
LOAD="$HERE/target/release/msgbus-load"
SCRIPT=cluster
. "$HERE/lib.sh"
ulimit -n 20000
command -v "$NATS_SERVER" >/dev/null || die "no $NATS_SERVER"

# cpu_ticks PID...: utime + stime of every PID, summed, in clock ticks.
cpu_ticks() {
  for p in "$@"; do sed 's/.*) //' "/proc/$p/stat"; done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# measure NAME NODES WITH_NATS SUBS: one run; appends a line of NAME=VALUE figures to $WORK/NAME.
measure() {
  name=$1 nodes=$2 with_nats=$3 subs=$4
  dir="$WORK/$name.$(date +%s%N)"
  mkdir -p "$dir"
  nats_pid="" nats_args=""
  if [ "$with_nats" = 1 ]; then
    # -p -1: nats-server picks a free port and logs it; -js: the cluster needs JetStream.
    "$NATS_SERVER" -a 127.0.0.1 -p -1 -js -sd "$dir/jetstream" >"$dir/nats.log" 2>&1 &
    nats_pid=$!
    PIDS="$PIDS $nats_pid"
    wait_log "$dir/nats.log" "Listening for client connections on" "$nats_pid"
    nats_port=$(sed -n 's/.*Listening for client connections on [0-9.]*:\([0-9]*\).*/\1/p' "$dir/nats.log" | head -1)
    nats_args="--nats nats://127.0.0.1:$nats_port"
  fi
  node_pids="" ports=""
  for n in $(seq "$nodes"); do
    # shellcheck disable=SC2086
    "$WORK/msgbus" -l 127.0.0.1 -p 0 $nats_args --node-name "node$n" 2>"$dir/node$n.log" &
    pid=$!
    PIDS="$PIDS $pid"
    node_pids="$node_pids $pid"
    wait_log "$dir/node$n.log" "listening on" "$pid"
    if [ "$with_nats" = 1 ]; then wait_log "$dir/node$n.log" "joined the cluster" "$pid"; fi
    ports="$ports $(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/node$n.log" | head -1)"
  done
  first_port=${ports# }
  first_port=${first_port%% *}

  # Subscriber processes: per node, ceil(per_node / PER_PROC) of them.
  per_node=$((subs / nodes))
  procs_per_node=$(((per_node + PER_PROC - 1) / PER_PROC))
  k=0 load_pids=""
  for port in $ports; do
    left=$per_node
    for j in $(seq "$procs_per_node"); do
      n=$(((left + procs_per_node - j) / (procs_per_node - j + 1)))
      left=$((left - n))
      k=$((k + 1))
      "$LOAD" --target "127.0.0.1:$port" --transport "$TRANSPORT" --channel cluster \
        --no-publish --expect "$MESSAGES" --subs "$n" --ready-file "$dir/ready.$k" \
        --duration "$DURATION" --json >"$dir/sub.$k.json" 2>"$dir/sub.$k.err" &
      load_pids="$load_pids $!"
      PIDS="$PIDS $!"
    done
  done
  i=0
  while [ "$(ls "$dir" | grep -c '^ready\.[0-9]*$')" -lt "$k" ]; do
    i=$((i + 1))
    [ $i -le $((DURATION * 5)) ] || die "subscriber processes not ready after ${DURATION} s"
    sleep 0.2
  done
  ready=$(cat "$dir"/ready.* | awk '{ t += $2 } END { print t }')
  [ "$ready" = "$((per_node * nodes))" ] || echo "  warning: $ready of $((per_node * nodes)) subscribers ready" >&2

  # shellcheck disable=SC2086
  nodes0=$(cpu_ticks $node_pids)
  nats0=$( [ -n "$nats_pid" ] && cpu_ticks "$nats_pid" || echo 0)
  "$LOAD" --target "127.0.0.1:$first_port" --channel cluster --subs 0 --messages "$MESSAGES" \
    --size "$SIZE" --pipeline "$PIPELINE" --idle-secs 0 --duration "$DURATION" --json \
    >"$dir/pub.json" 2>"$dir/pub.err" || true
  for p in $load_pids; do wait "$p" || true; done
  # shellcheck disable=SC2086
  nodes1=$(cpu_ticks $node_pids)
  nats1=$( [ -n "$nats_pid" ] && cpu_ticks "$nats_pid" || echo 0)
  tck=$(getconf CLK_TCK)
  stop_all

  jq -s --argjson n0 "$nodes0" --argjson n1 "$nodes1" --argjson a0 "$nats0" --argjson a1 "$nats1" \
    --argjson tck "$tck" --slurpfile pub "$dir/pub.json" '
    ($pub[0]) as $p
    | (map(.unique) | add) as $u
    | (((map(.last_ns // 0) | max) - $p.first_ns) / 1e9) as $wall
    | (($n1 - $n0) / $tck) as $cpu
    | (($a1 - $a0) / $tck) as $ncpu
    | "subscribers=\(map(.ready) | add) published=\($p.answered) publish_errors=\($p.publish_errors)"
      + " deliveries=\($u) lost=\(map(.lost) | add) duplicates=\(map(.duplicates) | add)"
      + " out_of_order=\(map(.out_of_order) | add)"
      + " wall_s=\($wall) deliveries_per_s=\(if $wall > 0 then $u / $wall else 0 end)"
      + " nodes_cpu_s=\($cpu) nats_cpu_s=\($ncpu)"
      + " nodes_us_per_delivery=\(if $u > 0 then $cpu * 1e6 / $u else 0 end)"
      + " with_nats_us_per_delivery=\(if $u > 0 then ($cpu + $ncpu) * 1e6 / $u else 0 end)"
      + " p50_ms=\(map(.latency_ns.p50) | max / 1e6) p99_ms=\(map(.latency_ns.p99) | max / 1e6)"
      + " max_ms=\(map(.latency_ns.max) | max / 1e6)"
      + " to_last_p50_ms=\(map(.to_last_p50_ns) | max / 1e6) to_last_p99_ms=\(map(.to_last_p99_ns) | max / 1e6)"
      + " to_last_max_ms=\(map(.to_last_max_ns) | max / 1e6)"' -r "$dir"/sub.*.json >>"$WORK/$name"
}

# value FILE NAME: NAME's value on each line of FILE.
value() {
  tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"
}

# median: the middle of the numbers on stdin (lower middle for an even count).
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print v[int((NR + 1) / 2)] }'
}

# A figure as printed: whole above 1000, else four significant digits.
FMT='{ if ($1 >= 1000 || $1 <= -1000) printf "%.0f\n", $1; else printf "%.4g\n", $1 }'

summary() {
  for f in subscribers published deliveries lost duplicates out_of_order wall_s deliveries_per_s \
    nodes_cpu_s nats_cpu_s nodes_us_per_delivery with_nats_us_per_delivery p50_ms p99_ms max_ms \
    to_last_p50_ms to_last_p99_ms to_last_max_ms; do
    printf '  %-26s %14s   (runs: %s)\n' "$f" \
      "$(value "$1" "$f" | awk "$FMT" | median)" \
      "$(value "$1" "$f" | awk "$FMT" | tr '\n' ' ' | sed 's/ $//')"
  done
}

echo "cluster: $NODES nodes through NATS, $SUBS $TRANSPORT subscribers ($((SUBS / NODES)) per node," \
  "at most $PER_PROC per load process), $MESSAGES messages of $SIZE bytes to node 1, pipeline $PIPELINE"
for r in $(seq "$RUNS"); do measure cluster "$NODES" 1 "$SUBS"; done
summary "$WORK/cluster"
echo "single node, no NATS: $SINGLE_SUBS subscribers, the same messages"
for r in $(seq "$RUNS"); do measure single 1 0 "$SINGLE_SUBS"; done
summary "$WORK/single"
if [ "${CONTROL:-1}" = 1 ]; then
  echo "control: one node through NATS (a cluster of one), $SINGLE_SUBS subscribers"
  for r in $(seq "$RUNS"); do measure control 1 1 "$SINGLE_SUBS"; done
  summary "$WORK/control"
fi
c=$(value "$WORK/cluster" nodes_us_per_delivery | median)
cn=$(value "$WORK/cluster" with_nats_us_per_delivery | median)
s=$(value "$WORK/single" nodes_us_per_delivery | median)
echo "extra CPU per delivery in the cluster (medians, us; server CPU / unique deliveries):"
awk -v c="$c" -v cn="$cn" -v s="$s" 'BEGIN {
  printf "  msgbus nodes:               %+.4f (%.4f vs %.4f single, x%.2f)\n", c - s, c, s, (s > 0 ? c / s : 0)
  printf "  nodes + nats-server:        %+.4f (%.4f vs %.4f single, x%.2f)\n", cn - s, cn, s, (s > 0 ? cn / s : 0)
}'
if [ "${CONTROL:-1}" = 1 ]; then
  k=$(value "$WORK/control" with_nats_us_per_delivery | median)
  awk -v k="$k" -v s="$s" 'BEGIN {
    printf "  of which NATS on one node:  %+.4f (%.4f through NATS vs %.4f without)\n", k - s, k, s
  }'
fi
