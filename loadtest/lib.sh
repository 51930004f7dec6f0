# What the load scripts that start their own msgbus and nats-server share. Sourced (not run)
# after the script has set HERE, ROOT and SCRIPT (its name, for errors):
#   WORK    a private directory, removed at exit unless KEEP=1
#   PIDS    every process the script starts, killed and waited for at exit
#   stop_all  kills (by pid) and waits for everything in PIDS now, and empties it
#   die     an error and exit 1
#   wait_log FILE PATTERN PID: until FILE holds PATTERN (10 s at most; PID must stay alive)
# and builds the load tool and the release server, copied to $WORK/msgbus (so a rebuild during
# the runs does not change the server under test; MSGBUS names another binary).

WORK=$(mktemp -d "/tmp/msgbus-$SCRIPT.XXXXXX")
PIDS=""

stop_all() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  PIDS=""
}

cleanup() {
  stop_all
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "$SCRIPT.sh: $*" >&2; exit 1; }

cargo build --release -q --manifest-path "$HERE/Cargo.toml"
if [ -z "${MSGBUS:-}" ]; then
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
  MSGBUS="$ROOT/target/release/msgbus"
fi
cp "$MSGBUS" "$WORK/msgbus"

wait_log() {
  i=0
  while ! grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$3" 2>/dev/null; then
      echo "no \"$2\" in $1:" >&2; cat "$1" >&2; exit 1
    fi
    sleep 0.1
  done
}
