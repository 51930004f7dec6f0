#!/bin/sh
# Starts nginx + Nchan with loadtest/nchan/nginx.conf on 127.0.0.1:9201, under the prefix
# NCHAN_PREFIX (default /tmp/msgbus-nchan); prints the master's pid. Installs Debian's nginx
# and libnginx-mod-nchan if they are missing (apt-get, as root), keeping the packaged service
# from starting on :80 with a policy-rc.d that exits 101 (a temporary one of its own, removed
# afterwards, unless one is already there).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
PREFIX=${NCHAN_PREFIX:-/tmp/msgbus-nchan}
if ! command -v nginx >/dev/null 2>&1 || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "nginx with the nchan module is not installed (as root: apt-get install nginx libnginx-mod-nchan)" >&2
    exit 1
  fi
  echo "installing nginx and libnginx-mod-nchan ..." >&2
  OWN_POLICY=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && OWN_POLICY=1
  fi
  RC=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends nginx libnginx-mod-nchan; } >&2 || RC=$?
  [ "$OWN_POLICY" = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ "$RC" != 0 ] || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    echo "apt-get install nginx libnginx-mod-nchan failed" >&2
    exit 1
  fi
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
