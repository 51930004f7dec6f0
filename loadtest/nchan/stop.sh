#!/bin/sh
# Stops the nginx that start.sh started, by the pid in its pid file, and waits for it to go.
set -u
PREFIX=${NCHAN_PREFIX:-/tmp/msgbus-nchan}
[ -f "$PREFIX/nginx.pid" ] || exit 0
PID=$(cat "$PREFIX/nginx.pid")
kill -QUIT "$PID" 2>/dev/null || exit 0
i=0
while kill -0 "$PID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$PID" 2>/dev/null && kill -TERM "$PID" 2>/dev/null
exit 0
