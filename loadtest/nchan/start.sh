#!/bin/sh
# Starts nginx + Nchan with loadtest/nchan/nginx.conf on 127.0.0.1:9201, under the prefix
# NCHAN_PREFIX (default /tmp/msgbus-nchan); prints the master's pid. Debian's packages
# (nginx, libnginx-mod-nchan) must be installed: apt-get install nginx libnginx-mod-nchan
# (keep the packaged service from starting on :80, e.g. with a policy-rc.d that exits 101).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${NCHAN_PREFIX:-/tmp/msgbus-nchan}
if ! command -v nginx >/dev/null 2>&1 || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  echo "nginx with the nchan module is not installed (apt-get install nginx libnginx-mod-nchan)" >&2
  exit 1
fi
if [ -f "$PREFIX/nginx.pid" ] && kill -0 "$(cat "$PREFIX/nginx.pid")" 2>/dev/null; then
  cat "$PREFIX/nginx.pid"
  exit 0
fi
for d in logs tmp/body tmp/proxy tmp/fastcgi tmp/uwsgi tmp/scgi; do mkdir -p "$PREFIX/$d"; done
nginx -t -q -p "$PREFIX/" -c "$HERE/nginx.conf" -e "$PREFIX/logs/error.log"
nginx -p "$PREFIX/" -c "$HERE/nginx.conf" -e "$PREFIX/logs/error.log"
i=0
while [ ! -s "$PREFIX/nginx.pid" ]; do
  i=$((i + 1))
  [ $i -le 50 ] || { echo "nginx did not write its pid file" >&2; exit 1; }
  sleep 0.1
done
cat "$PREFIX/nginx.pid"
