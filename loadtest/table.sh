#!/bin/bash
# Prints the comparison table of issue 19 as markdown: msgbus's server CPU per delivery against
# the floor (floor.c: one writev per subscriber, nothing else) at the same number of subscribers,
# the time to the last subscriber against the floor's wall time per message, idle RSS per
# subscriber on each transport, and pipelined bursts against Nchan with 1, 4 and 16 publisher
# connections. Medians of RUNS runs; every msgbus run has a fresh release server on
# 127.0.0.1:$PORT, killed by its pid. A header says when, on what machine and with what command.
#
#   bash loadtest/table.sh                         # every row, 3 runs each (tens of minutes)
#   RUNS=1 SCALE=small bash loadtest/table.sh      # every row at 200 subscribers / 100 messages
#   SCENARIOS="1k burst" bash loadtest/table.sh    # some rows
#
# Environment: RUNS (3), SCENARIOS (all; names and groups below), SCALE (full | small), PORT
# (18888), PIPELINE (64: publishes in flight per publisher connection in the bursts), MSGBUS
# (server binary; default: the tree's release build), NCHAN_PREFIX (/tmp/msgbus-nchan); the
# sizes: N1 (1000) and M1 (1000) subscribers and messages of the 1,000 rows, N10 (10000) and M10
# (200) of the 10,000 rows, NRSS (9000) idle subscribers, NB (1000) and MB (1000) of the bursts.
# Scenarios: sse1k ws1k multipart1k longpoll1k (group 1k), sse10k ws10k multipart10k (10k),
# rss-multipart rss-sse rss-ws rss-longpoll (rss), burst1 burst4 burst16 (burst); all.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
COMMAND=""
for v in SCALE RUNS SCENARIOS PORT PIPELINE MSGBUS N1 M1 N10 M10 NRSS NB MB NCHAN_PREFIX; do
  if [ -n "${!v+set}" ]; then COMMAND="$COMMAND$v=$(printf '%q' "${!v}") "; fi
done
COMMAND="${COMMAND}bash $0"
[ $# -gt 0 ] && COMMAND="$COMMAND$(printf ' %q' "$@")"
DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
RUNS=${RUNS:-3}
PORT=${PORT:-18888}
PIPELINE=${PIPELINE:-64}
SIZE=128
case ${SCALE:-full} in
full) d1=1000 dm1=1000 d10=10000 dm10=200 drss=9000 db=1000 dmb=1000 ;;
small) d1=200 dm1=100 d10=200 dm10=100 drss=200 db=200 dmb=1000 ;;
*) echo "table.sh: SCALE is full or small, not $SCALE" >&2; exit 2 ;;
esac
N1=${N1:-$d1} M1=${M1:-$dm1} N10=${N10:-$d10} M10=${M10:-$dm10} NRSS=${NRSS:-$drss}
NB=${NB:-$db} MB=${MB:-$dmb}
# Bounds: one tool run, one floor run, the server's start.
DURATION=300
NCHAN_PREFIX=${NCHAN_PREFIX:-/tmp/msgbus-nchan}
export NCHAN_PREFIX
LOAD="$HERE/target/release/msgbus-load"

ALL="sse1k ws1k multipart1k longpoll1k sse10k ws10k multipart10k rss-multipart rss-sse rss-ws rss-longpoll burst1 burst4 burst16"
SEL=""
for s in ${SCENARIOS:-all}; do
  case $s in
  all) SEL="$SEL $ALL" ;;
  1k) SEL="$SEL sse1k ws1k multipart1k longpoll1k" ;;
  10k) SEL="$SEL sse10k ws10k multipart10k" ;;
  rss) SEL="$SEL rss-multipart rss-sse rss-ws rss-longpoll" ;;
  burst) SEL="$SEL burst1 burst4 burst16" ;;
  *)
    case " $ALL " in
    *" $s "*) SEL="$SEL $s" ;;
    *) echo "table.sh: unknown scenario $s (known: all 1k 10k rss burst $ALL)" >&2; exit 2 ;;
    esac
    ;;
  esac
done
want() { case " $SEL " in *" $1 "*) return 0 ;; esac; return 1; }

if ! ulimit -n 20000 2>/dev/null; then
  echo "table.sh: cannot raise the open-file limit to 20000 (hard limit $(ulimit -Hn))" >&2
  exit 1
fi

WORK=$(mktemp -d /tmp/msgbus-table.XXXXXX)
MPID=""
STARTED_NCHAN=0
cleanup() {
  if [ -n "$MPID" ]; then kill "$MPID" 2>/dev/null; wait "$MPID" 2>/dev/null; fi
  if [ "$STARTED_NCHAN" = 1 ]; then sh "$HERE/nchan/stop.sh" >/dev/null 2>&1; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "table.sh: $*" >&2; }

cargo build --release -q --manifest-path "$HERE/Cargo.toml" || exit 1
if [ -z "${MSGBUS:-}" ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" || exit 1
  MSGBUS="$ROOT/target/release/msgbus"
fi
# A private copy, so a rebuild during the runs does not change the server under test.
cp "$MSGBUS" "$WORK/msgbus" || exit 1
gcc -O2 -o "$WORK/floor" "$HERE/floor.c" || exit 1

start_msgbus() {
  "$WORK/msgbus" -l 127.0.0.1 -p "$PORT" 2>"$WORK/msgbus.log" &
  MPID=$!
  local i=0
  until grep -q "listening on" "$WORK/msgbus.log" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 "$MPID" 2>/dev/null; then
      say "msgbus did not start:"; cat "$WORK/msgbus.log" >&2; exit 1
    fi
    sleep 0.1
  done
}

stop_msgbus() {
  kill "$MPID" 2>/dev/null
  wait "$MPID" 2>/dev/null
  MPID=""
}

# check NAME FILE: a line in checks.txt when the last run lost, repeated or missed anything.
check() {
  local line
  line=$(tail -1 "$2")
  local lost dup ready subs
  lost=$(echo "$line" | sed -n 's/.*"lost":\([0-9]*\).*/\1/p')
  dup=$(echo "$line" | sed -n 's/.*"duplicates":\([0-9]*\).*/\1/p')
  ready=$(echo "$line" | sed -n 's/.*"ready":\([0-9]*\).*/\1/p')
  subs=$(echo "$line" | sed -n 's/.*"readers":\([0-9]*\).*/\1/p')
  if [ -z "$lost" ]; then
    echo "- $1 run $r: no report ($(tail -1 "$WORK/load.err" 2>/dev/null))" >>"$WORK/checks.txt"
  elif [ "$lost" != 0 ] || [ "$dup" != 0 ] || [ "$ready" != "$subs" ]; then
    echo "- $1 run $r: lost $lost, duplicates $dup, ready $ready of $subs" >>"$WORK/checks.txt"
  fi
}

# load NAME OUT ARGS...: one msgbus-load run, its JSON line appended to OUT.
load() {
  local name=$1 out=$2
  shift 2
  timeout $((DURATION + 30)) "$LOAD" --duration "$DURATION" --size "$SIZE" --json "$@" \
    >>"$out" 2>>"$WORK/load.err"
  check "$name" "$out"
}

# msgbus_run NAME ARGS...: one run against a fresh msgbus, into WORK/NAME.json.
msgbus_run() {
  local name=$1
  shift
  say "$name, run $r of $RUNS"
  start_msgbus
  load "$name" "$WORK/$name.json" --target "127.0.0.1:$PORT" --server-pid "$MPID" \
    --channel "table-$r" "$@"
  stop_msgbus
}

# floor_run N M: one floor run at N subscribers and M messages, into WORK/floor-N-M.txt (once
# per round of runs, even when the 1,000 and 10,000 rows have the same sizes).
floor_run() {
  [ -f "$WORK/floor-$1-$2.$r" ] && return
  : >"$WORK/floor-$1-$2.$r"
  say "floor at $1 subscribers, run $r of $RUNS"
  timeout $((DURATION + 30)) "$WORK/floor" -n "$1" -m "$2" -s "$SIZE" -k 1 \
    >>"$WORK/floor-$1-$2.txt" 2>>"$WORK/floor.err" ||
    echo "- floor at $1 run $r: failed ($(tail -1 "$WORK/floor.err" 2>/dev/null))" >>"$WORK/checks.txt"
}

NCHAN=""     # the worker's pid once Nchan runs
NCHAN_WHY="" # why not, otherwise
nchan_up() {
  [ -n "$NCHAN" ] && return 0
  [ -n "$NCHAN_WHY" ] && return 1
  if ! { [ -f "$NCHAN_PREFIX/nginx.pid" ] && kill -0 "$(cat "$NCHAN_PREFIX/nginx.pid")" 2>/dev/null; }; then
    if ! timeout 600 sh "$HERE/nchan/start.sh" >/dev/null 2>"$WORK/nchan.err"; then
      NCHAN_WHY=$(grep -v '^$' "$WORK/nchan.err" | tail -1)
      NCHAN_WHY=$(echo "${NCHAN_WHY:-nchan/start.sh failed}" | tr '|' '/')
      return 1
    fi
    STARTED_NCHAN=1
  fi
  NCHAN=$(pgrep -P "$(cat "$NCHAN_PREFIX/nginx.pid")" | head -1)
  if [ -z "$NCHAN" ]; then NCHAN_WHY="no nginx worker process"; return 1; fi
}

for r in $(seq "$RUNS"); do
  floor1=0 floor10=0
  for t in sse ws multipart longpoll; do
    if want "${t}1k"; then
      msgbus_run "${t}1k" --transport "$t" --subs "$N1" --messages "$M1" --one-at-a-time
      floor1=1
    fi
  done
  [ $floor1 = 1 ] && floor_run "$N1" "$M1"
  for t in sse ws multipart; do
    if want "${t}10k"; then
      msgbus_run "${t}10k" --transport "$t" --subs "$N10" --messages "$M10" --one-at-a-time
      floor10=1
    fi
  done
  [ $floor10 = 1 ] && floor_run "$N10" "$M10"
  for t in multipart sse ws longpoll; do
    if want "rss-$t"; then
      msgbus_run "rss-$t" --transport "$t" --subs "$NRSS" --messages 1 --idle-secs 2
    fi
  done
  for k in 1 4 16; do
    if want "burst$k"; then
      msgbus_run "burst$k" --subs "$NB" --messages "$MB" --publishers "$k" --pipeline "$PIPELINE"
      if nchan_up; then
        say "nchan burst$k, run $r of $RUNS"
        load "nchan-burst$k" "$WORK/nchan-burst$k.json" --target 127.0.0.1:9201 --flavor nchan \
          --server-pid "$NCHAN" --channel "table-$k-$r-$$" --subs "$NB" --messages "$MB" \
          --publishers "$k" --pipeline "$PIPELINE"
      fi
    fi
  done
done

# values FILE NAME: a numeric JSON field (msgbus-load) or key=value (floor), one per run.
values() {
  [ -f "$1" ] || return 0
  sed -n -e "s/.*\"$2\":\([-0-9.]*\)[,}].*/\1/p" -e "s/.*[ ^]$2=\([-0-9.]*\).*/\1/p" "$1"
}
# median FILE NAME [SCALE]: the median of the runs (lower middle for an even count), times SCALE.
median() {
  values "$1" "$2" | sort -g |
    awk -v k="${3:-1}" '{ v[NR] = $1 * k } END { if (NR) print v[int((NR + 1) / 2)] }'
}
runs() {
  values "$1" "$2" |
    awk -v k="${3:-1}" -v d="${4:-2}" '{ printf "%s%.*f", (NR > 1 ? ", " : ""), d, $1 * k } END { print "" }'
}
# cpu FILE: the median server CPU per delivery in µs; when no run reached /proc's resolution
# (one clock tick over the deliveries), "<" and that bound.
cpu() {
  local m
  m=$(median "$1" server_cpu_us_per_delivery)
  if [ -n "$m" ]; then echo "$m"; return; fi
  [ -f "$1" ] || return 0
  values "$1" unique | sort -g | tail -1 |
    awk -v t="$(getconf CLK_TCK)" '$1 > 0 { printf "<%.3f\n", 1e6 / t / $1 }'
}
# fmt VALUE DECIMALS UNIT
fmt() {
  case $1 in
  "") printf -- "-" ;;
  "<"*) printf '%s%s' "$1" "$3" ;;
  *) awk -v v="$1" -v d="$2" -v u="$3" 'BEGIN { printf "%.*f%s", d, v, u }' ;;
  esac
}
ratio() {
  case "$1$2" in *"<"*) printf -- "-"; return ;; esac
  if [ -n "$1" ] && [ -n "$2" ]; then
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "-" }'
  else printf -- "-"; fi
}
commas() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
name() { case $1 in sse) echo SSE ;; ws) echo WebSocket ;; multipart) echo multipart ;; longpoll) echo "long-poll (JSON, re-poll each message)" ;; esac; }

RUNLOG="$WORK/runs.txt"
: >"$RUNLOG"
logruns() { echo "- $1: $(runs "$2" "$3" "${4:-1}" "${5:-2}")" >>"$RUNLOG"; }

mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "## msgbus against the floor and Nchan"
echo
echo "- date: $DATE (start)"
echo "- machine: $(nproc) CPUs (nproc), ${cpu:-unknown CPU}, Linux $(uname -r), $mem memory"
echo "- command: \`$COMMAND\`"
echo "- msgbus $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '(not a git tree)'), release build; $SIZE-byte messages; medians of $RUNS run(s), each on a fresh server; CPU per delivery = the server's utime+stime (/proc) over the publish phase / deliveries"
echo

F1="$WORK/floor-$N1-$M1.txt" F10="$WORK/floor-$N10-$M10.txt"
# to_last_row TRANSPORT FIELD LABEL FLOOR_MS: a row of the time to the last of N10 subscribers.
to_last_row() {
  local m
  m=$(median "$WORK/${1}10k.json" "$2" 0.000001)
  echo "| time to the last of $(commas "$N10"), $3 | $(fmt "$m" 1 " ms") | $(fmt "$4" 1 " ms wall") | $(ratio "$m" "$4") |"
}
if want 1k || want sse1k || want ws1k || want multipart1k || want longpoll1k || want sse10k || want ws10k || want multipart10k; then
  echo "| one message at a time | msgbus | floor | ratio |"
  echo "|---|---|---|---|"
  f1=$(median "$F1" cpu_us_per_delivery)
  for t in sse ws multipart longpoll; do
    want "${t}1k" || continue
    m=$(cpu "$WORK/${t}1k.json")
    echo "| $(commas "$N1") $(name $t) subscribers | $(fmt "$m" 2 " µs") | $(fmt "$f1" 2 " µs") | $(ratio "$m" "$f1") |"
    logruns "${t}1k, msgbus µs per delivery" "$WORK/${t}1k.json" server_cpu_us_per_delivery
  done
  f10=$(median "$F10" cpu_us_per_delivery)
  w10=$(median "$F10" wall_ms_per_message)
  for t in sse ws multipart; do
    want "${t}10k" || continue
    m=$(cpu "$WORK/${t}10k.json")
    echo "| $(commas "$N10") $(name $t) subscribers | $(fmt "$m" 2 " µs") | $(fmt "$f10" 2 " µs") | $(ratio "$m" "$f10") |"
    logruns "${t}10k, msgbus µs per delivery" "$WORK/${t}10k.json" server_cpu_us_per_delivery
  done
  for t in sse ws multipart; do
    want "${t}10k" || continue
    to_last_row "$t" to_last_p99_ns "p99, $(name $t)" "$w10"
    logruns "${t}10k, time to the last p99 ms" "$WORK/${t}10k.json" to_last_p99_ns 0.000001 1
  done
  # The same quantiles of the floor's rounds: its mean hides that its first rounds, like a
  # server's first messages, pay for the sockets' first buffers.
  w10p50=$(median "$F10" wall_ms_p50)
  w10p99=$(median "$F10" wall_ms_p99)
  for t in sse ws multipart; do
    want "${t}10k" || continue
    to_last_row "$t" to_last_p99_ns "p99, $(name $t), against the floor's p99 round" "$w10p99"
  done
  # The median message too: on two shared cores the p99 is the one or two slowest of a run.
  for t in sse ws multipart; do
    want "${t}10k" || continue
    to_last_row "$t" to_last_p50_ns "p50, $(name $t), against the floor's p50 round" "$w10p50"
    logruns "${t}10k, time to the last p50 ms" "$WORK/${t}10k.json" to_last_p50_ns 0.000001 1
  done
  echo
  [ -f "$F1" ] && logruns "floor at $N1, µs per delivery" "$F1" cpu_us_per_delivery
  [ -f "$F10" ] && [ "$F10" != "$F1" ] && logruns "floor at $N10, µs per delivery" "$F10" cpu_us_per_delivery
  [ -f "$F10" ] && logruns "floor at $N10, wall ms per message" "$F10" wall_ms_per_message 1 1
  [ -f "$F10" ] && logruns "floor at $N10, p99 round ms" "$F10" wall_ms_p99 1 1
fi

if want rss-multipart || want rss-sse || want rss-ws || want rss-longpoll; then
  echo "| idle subscriber, $(commas "$NRSS") connected | msgbus RSS per subscriber |"
  echo "|---|---|"
  for t in multipart sse ws longpoll; do
    want "rss-$t" || continue
    m=$(median "$WORK/rss-$t.json" rss_per_sub)
    v=$( [ -n "$m" ] && commas "$(printf '%.0f' "$m")" )
    echo "| $(name $t | sed 's/ (.*//') | ${v:--} B |"
    logruns "rss-$t, bytes per subscriber" "$WORK/rss-$t.json" rss_per_sub 1 0
  done
  echo
fi

if want burst1 || want burst4 || want burst16; then
  echo "| burst: $(commas "$NB") multipart subscribers, $(commas "$MB") messages, pipeline $PIPELINE per connection | msgbus | Nchan | Nchan / msgbus |"
  echo "|---|---|---|---|"
  for k in 1 4 16; do
    want "burst$k" || continue
    m=$(cpu "$WORK/burst$k.json")
    if [ -n "$NCHAN_WHY" ]; then
      n="n/a ($NCHAN_WHY)" q="n/a"
    else
      n=$(cpu "$WORK/nchan-burst$k.json")
      q=$(ratio "$n" "$m")
      n=$(fmt "$n" 2 " µs")
    fi
    label="$k publisher connection"; [ "$k" != 1 ] && label="${label}s"
    echo "| $label | $(fmt "$m" 2 " µs") | $n | $q |"
    logruns "burst$k, msgbus µs per delivery" "$WORK/burst$k.json" server_cpu_us_per_delivery
    [ -z "$NCHAN_WHY" ] && logruns "burst$k, Nchan µs per delivery" "$WORK/nchan-burst$k.json" server_cpu_us_per_delivery
  done
  echo
fi

echo "Runs:"
echo
cat "$RUNLOG"
if [ -s "$WORK/checks.txt" ]; then
  echo
  echo "Checks (these runs lost, repeated or could not connect something):"
  echo
  cat "$WORK/checks.txt"
fi
