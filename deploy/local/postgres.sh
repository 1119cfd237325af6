#!/usr/bin/env bash
# The project's own PostgreSQL cluster on 127.0.0.1 (own port and data directory), from
# Debian's packages. One database per service.
#   postgres.sh install|start|stop|status|createdb NAME...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state="${WASTETRAIL_LOCAL_DIR:-$root/.local}/postgres"
port="${WASTETRAIL_PG_PORT:-55432}"
# As root, the cluster runs as the 'postgres' user, which must reach the data directory. A
# checkout under a private directory (mode 700 somewhere above it) cannot host it: use a
# directory of postgres's own then, one per checkout.
if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 \
    && ! runuser -u postgres -- test -x "$(dirname "$state")" 2>/dev/null; then
  mkdir -p "$(dirname "$state")"
  if ! runuser -u postgres -- test -x "$(dirname "$state")" 2>/dev/null; then
    state="/var/lib/postgresql/wastetrail-$(printf '%s' "$root" | sha1sum | cut -c1-12)"
  fi
fi
databases=(wastetrail_collection wastetrail_transfer wastetrail_treatment wastetrail_billing)

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install() {
  if bindir >/dev/null; then return 0; fi
  echo "installing PostgreSQL from Debian's packages"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

# initdb and postgres refuse to run as root: run them as the 'postgres' system user then.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() { as_owner "$(bindir)/pg_ctl" -D "$state/data" status >/dev/null 2>&1; }

start() {
  install
  local bin; bin=$(bindir)
  mkdir -p "$state"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$state"
  if [ ! -f "$state/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$state/data" -U wastetrail --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$state/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
CONF
  fi
  if running; then
    echo "postgres already running on 127.0.0.1:$port"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    # Another checkout's cluster already serves this port: use it.
    echo "postgres: a server already answers on 127.0.0.1:$port (not $state); using it"
  else
    as_owner "$bin/pg_ctl" -D "$state/data" -l "$state/server.log" -w -t 60 start >/dev/null
    echo "postgres running on 127.0.0.1:$port, data in $state/data"
  fi
  createdb "${databases[@]}"
}

createdb() {
  local bin; bin=$(bindir)
  for db in "$@"; do
    if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U wastetrail -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
      "$bin/createdb" -h 127.0.0.1 -p "$port" -U wastetrail "$db"
    fi
  done
}

stop() {
  local bin; bin=$(bindir) || { echo "postgres not installed"; return 0; }
  if [ -f "$state/data/PG_VERSION" ] && running; then
    as_owner "$bin/pg_ctl" -D "$state/data" -m fast -w stop >/dev/null
    echo "postgres stopped"
  else
    echo "postgres not running"
  fi
}

status() {
  if bindir >/dev/null && [ -f "$state/data/PG_VERSION" ] && running; then
    echo "postgres: running on 127.0.0.1:$port"
  else
    echo "postgres: stopped"; return 3
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  createdb) shift; start >/dev/null; createdb "$@" ;;
  *) echo "usage: postgres.sh install|start|stop|status|createdb NAME..." >&2; exit 2 ;;
esac
