#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (CI and developers alike).
#
#   eval "$(.ci/pg-cluster.sh start)"   # prints: export TEST_DATABASE_URL=… PG_CLUSTER_DIR=… TEST_DATABASE_CA=…
#   npm test                            # the *.pg.test.ts files now run too
#   .ci/pg-cluster.sh stop              # stops it and deletes its directory ($PG_CLUSTER_DIR)
#
# The cluster lives in a new temporary directory: initdb with trust authentication for the
# superuser `postgres`, listening on 127.0.0.1 at a free port and on a unix socket in that
# directory, durability switched off (fsync, synchronous_commit, full_page_writes: it is thrown
# away), and TLS with a certificate from a test CA made here (exported as TEST_DATABASE_CA; plain
# connections still work). PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
# Server binaries: $PG_BIN, else the newest /usr/lib/postgresql/<version>/bin; as root, Debian's
# `postgresql` package is installed when none is there. Only the export lines go to stdout.
set -euo pipefail

log() { echo "pg-cluster: $*" >&2; }

find_bin() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$dir" ] && [ "$(id -u)" = 0 ]; then
    log "installing Debian's postgresql package"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    log "no PostgreSQL server binaries (set PG_BIN, or: apt-get install -y postgresql)"
    exit 1
  fi
  echo "$dir"
}

# Run a server binary as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# A test CA and a server certificate it signed (for localhost), so the cluster also
# accepts TLS: test/e2e/postgres-tls.pg.test.ts connects with sslmode=verify-full and this CA.
# Prints the server's -c options; the CA is $dir/tls/ca.crt. As root, Debian's openssl is installed
# when missing; without it: plain TCP only.
make_tls() {
  local dir=$1 tls=$1/tls
  if ! command -v openssl >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing Debian's openssl package"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl; } >&2 || true
  fi
  if ! command -v openssl >/dev/null; then log "no openssl: the cluster offers no TLS (the TLS tests fail)"; return 0; fi
  mkdir "$tls" || return 1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj "/CN=mcp-consent-proxy test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null || return 1
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null || return 1
  # Named for localhost only (not 127.0.0.1): the tests connect to 127.0.0.1 to see a host-name mismatch refused.
  printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 365 \
    -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null || return 1
  chmod 600 "$tls/server.key" "$tls/ca.key" || return 1
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$tls" || return 1; fi
  echo "-c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key"
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

start() {
  local bin dir port tls_options
  bin=$(find_bin)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/mcp-consent-proxy-pg.XXXXXX")
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; log "initdb failed"; exit 1; }
  tls_options=$(make_tls "$dir") || { log "could not make the TLS certificates"; exit 1; }
  # A port can be taken between free_port and the server's bind: try a few.
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    if as_owner "$bin/pg_ctl" -D "$dir/data" -w -t 30 -l "$dir/log" \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 $tls_options" \
      start >&2; then
      echo "$bin" >"$dir/bin"
      log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port and $dir/.s.PGSQL.$port"
      echo "export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres"
      echo "export PG_CLUSTER_DIR=$dir"
      if [ -n "$tls_options" ]; then echo "export TEST_DATABASE_CA=$dir/tls/ca.crt"; fi
      return 0
    fi
    tail -n 5 "$dir/log" >&2 || true
  done
  log "could not start the server (log: $dir/log)"
  exit 1
}

stop() {
  local dir=${1:-${PG_CLUSTER_DIR:-}}
  if [ -z "$dir" ] || [ ! -d "$dir/data" ]; then log "no cluster to stop (pass its directory or set PG_CLUSTER_DIR)"; exit 1; fi
  local bin
  bin=$(cat "$dir/bin" 2>/dev/null || find_bin)
  as_owner "$bin/pg_ctl" -D "$dir/data" -w -m fast stop >&2 || log "pg_ctl stop failed (already stopped?)"
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop [dir]" >&2; exit 2 ;;
esac
