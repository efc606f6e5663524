#!/usr/bin/env bash
# Start the real services the test suite uses, installing Debian's packages when missing:
# PostgreSQL (a throwaway cluster on 127.0.0.1) and Chromium + ChromeDriver (page tests).
# Prints `export CTDNA_TEST_PG_URL=...` on stdout; everything else goes to stderr.
set -euo pipefail

PG_PORT="${CTDNA_TEST_PG_PORT:-55432}"
PG_DIR="${CTDNA_TEST_PG_DIR:-/tmp/ctdna-test-pg}"

need_apt=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] || need_apt+=(postgresql)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
  else
    echo "missing Debian packages: ${need_apt[*]} (install them: sudo apt-get install ${need_apt[*]})" >&2
  fi
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi
[ -n "$pg_bin" ] || { echo "PostgreSQL server binaries not found" >&2; exit 1; }

# initdb refuses to run as root: run the throwaway cluster as the 'postgres' system user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi

if ! as_pg "$pg_bin/pg_ctl" -D "$PG_DIR" status >/dev/null 2>&1; then
  rm -rf "$PG_DIR"
  mkdir -p "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
  as_pg "$pg_bin/initdb" -D "$PG_DIR" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
fi
echo "export CTDNA_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:${PG_PORT}/postgres"
