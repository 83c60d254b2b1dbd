#!/usr/bin/env bash
# The server programs the tests and the demo start (see spec/support/servers.ts): checks they are installed and,
# as root with apt-get, installs what is missing; otherwise prints exactly what to run and exits 1.
# Used by `npm test` (pretest), `npm run demo` (predemo) and .ci/run, so a fresh Debian machine with Node.js
# needs nothing else.
#
#   scripts/servers.sh [--check] test|demo
#
#   test   memcached, PostgreSQL 15+ (initdb, pg_ctl, pg_basebackup, psql), spin and a C compiler (the model
#          check). Always the binaries: fault tests start, kill and restart servers of their own, even when
#          DATABASE_URL / MEMCACHED_SERVERS name running ones.
#   demo   memcached unless MEMCACHED_SERVERS is set, PostgreSQL 15+ unless DATABASE_URL is set.
#
#   --check                  never install, only report (the same as XA_CACHE_INSTALL=never)
#   XA_CACHE_INSTALL=auto    (default) install missing packages when running as root and apt-get exists
#   XA_CACHE_INSTALL=never   only report what is missing and the command that installs it
#   XA_CACHE_SEARCH_DIRS     directories searched after PATH, colon-separated; default: Debian's
#                            /usr/lib/postgresql/<version>/bin (highest version first), /usr/sbin, /usr/local/sbin,
#                            /usr/bin. The harness (spec/support/binaries.ts) searches the same places.
#
# Exit status: 0 everything is there (or was installed), 1 something is missing (the message says what to run),
# 2 bad usage. Only bash builtins are used before a package is installed, so a bare PATH works.
set -uo pipefail

MIN_PG=15
me="scripts/servers.sh"

usage() {
  echo "usage: $me [--check] test|demo   (XA_CACHE_INSTALL=auto|never)" >&2
  exit 2
}

check_only=0
target=""
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    test | demo) [ -z "$target" ] || usage; target="$arg" ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
[ -n "$target" ] || usage
case "${XA_CACHE_INSTALL:-auto}" in
  auto) ;;
  never) check_only=1 ;;
  *) echo "$me: XA_CACHE_INSTALL must be auto or never, not \"${XA_CACHE_INSTALL}\"" >&2; exit 2 ;;
esac

# Where binaries are looked for: PATH first, then the search dirs (as spec/support/binaries.ts does).
search_dirs() {
  local IFS=:
  local d
  for d in ${PATH:-}; do [ -n "$d" ] && echo "$d"; done
  if [ "${XA_CACHE_SEARCH_DIRS+set}" = set ]; then
    for d in $XA_CACHE_SEARCH_DIRS; do [ -n "$d" ] && echo "$d"; done
    return
  fi
  # Debian keeps PostgreSQL's server binaries outside PATH, one directory per major version: highest first.
  local versions=() v
  for d in /usr/lib/postgresql/*/bin; do
    v="${d#/usr/lib/postgresql/}"
    v="${v%/bin}"
    [[ "$v" =~ ^[0-9]+$ ]] && versions+=("$v")
  done
  local sorted=()
  while [ ${#versions[@]} -gt 0 ]; do
    local best=0 i
    for i in "${!versions[@]}"; do [ "${versions[$i]}" -gt "${versions[$best]}" ] && best=$i; done
    sorted+=("${versions[$best]}")
    unset 'versions[best]'
    versions=("${versions[@]}")
  done
  for v in "${sorted[@]}"; do echo "/usr/lib/postgresql/$v/bin"; done
  echo /usr/sbin
  echo /usr/local/sbin
  echo /usr/bin
}

# Prints the path of the first executable called $1, or fails.
find_binary() {
  local dir
  while IFS= read -r dir; do
    if [ -x "$dir/$1" ] && [ ! -d "$dir/$1" ]; then
      echo "$dir/$1"
      return 0
    fi
  done < <(search_dirs)
  return 1
}

missing=()   # what is missing, in words
packages=()  # the Debian packages that provide it
problems=()  # found but unusable, with the reason

add_package() {
  local p
  for p in "${packages[@]}"; do [ "$p" = "$1" ] && return; done
  packages+=("$1")
}

check_memcached() {
  find_binary memcached >/dev/null || { missing+=("memcached"); add_package memcached; }
}

# $@: the PostgreSQL programs needed (the harness's cluster needs initdb and pg_ctl; replica and outside-writer
# tests also pg_basebackup and psql).
check_postgres() {
  local initdb tool absent=()
  for tool in "$@"; do find_binary "$tool" >/dev/null || absent+=("$tool"); done
  if [ ${#absent[@]} -gt 0 ]; then
    missing+=("PostgreSQL ${MIN_PG}+ (${absent[*]})")
    add_package postgresql
    return
  fi
  initdb="$(find_binary initdb)"
  local version
  version="$("$initdb" --version 2>/dev/null)"
  if [[ "$version" =~ \)\ ([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge "$MIN_PG" ]; then return; fi
  problems+=("$initdb is PostgreSQL ${BASH_REMATCH[1]:-of unknown version} (\"$version\"); ${MIN_PG} or newer is needed: Debian 12 and newer have it (apt-get install postgresql), older releases through https://wiki.postgresql.org/wiki/Apt (apt-get install postgresql-${MIN_PG})")
}

check_model_checker() {
  find_binary spin >/dev/null || { missing+=("spin"); add_package spin; }
  if [ -n "${CC:-}" ]; then
    find_binary "$CC" >/dev/null || [ -x "$CC" ] || { missing+=("the C compiler CC=$CC"); add_package gcc; }
  elif ! find_binary gcc >/dev/null && ! find_binary cc >/dev/null; then
    missing+=("a C compiler (gcc, for the model check)")
    add_package gcc
  fi
}

# As root the harness runs PostgreSQL as `postgres` and memcached as `memcache` (the Debian packages create them).
check_users() {
  [ "$EUID" -eq 0 ] || return 0
  local user
  for user in "$@"; do
    # getent/id may be missing from a bare PATH: read the file.
    local line found=0
    while IFS=: read -r line _; do [ "$line" = "$user" ] && found=1 && break; done </etc/passwd
    [ $found -eq 1 ] || problems+=("user $user does not exist; as root the harness runs the server as $user (the Debian package creates it): useradd --system --no-create-home $user")
  done
}

check_all() {
  missing=()
  packages=()
  problems=()
  local users=()
  if [ "$target" = test ]; then
    check_memcached
    check_postgres initdb pg_ctl pg_basebackup psql
    check_model_checker
    users=(postgres memcache)
  else
    [ -n "${MEMCACHED_SERVERS:-}" ] || { check_memcached; users+=(memcache); }
    [ -n "${DATABASE_URL:-}" ] || { check_postgres initdb pg_ctl; users+=(postgres); }
  fi
  # Users are only checked once their packages are there: installing the package creates them.
  if [ ${#missing[@]} -eq 0 ] && [ ${#users[@]} -gt 0 ]; then check_users "${users[@]}"; fi
}

explain() {
  local what="the tests need"
  [ "$target" = demo ] && what="the demo needs"
  if [ ${#missing[@]} -gt 0 ]; then
    local list
    list="$(printf '%s, ' "${missing[@]}")"
    echo "$me: $what programs that are not installed: ${list%, }" >&2
  fi
  local p
  for p in "${problems[@]}"; do echo "$me: $p" >&2; done
  if [ ${#packages[@]} -gt 0 ]; then
    if find_binary apt-get >/dev/null; then
      local sudo="sudo "
      [ "$EUID" -eq 0 ] && sudo=""
      echo "Install them with:" >&2
      echo "  ${sudo}apt-get update && ${sudo}apt-get install -y ${packages[*]}" >&2
    else
      echo "Install them with your system's package manager (Debian packages: ${packages[*]})." >&2
    fi
  fi
  if [ "$target" = demo ]; then
    echo "Or, where Docker runs, start servers and name them (see docker-compose.yml):" >&2
    echo "  docker compose up -d" >&2
    echo "  DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/xa_cache MEMCACHED_SERVERS=127.0.0.1:11211,127.0.0.1:11212 npm run demo" >&2
  else
    echo "(Running servers named by DATABASE_URL / MEMCACHED_SERVERS are not enough for the tests: the fault tests start, kill and restart servers of their own.)" >&2
  fi
}

check_all
if [ ${#missing[@]} -eq 0 ] && [ ${#problems[@]} -eq 0 ]; then exit 0; fi

if [ $check_only -eq 0 ] && [ ${#packages[@]} -gt 0 ] && [ "$EUID" -eq 0 ] && apt_get="$(find_binary apt-get)"; then
  echo "$me: installing ${packages[*]} for the ${target} (apt-get; XA_CACHE_INSTALL=never only checks)" >&2
  export DEBIAN_FRONTEND=noninteractive
  "$apt_get" update -qq || { echo "$me: apt-get update failed" >&2; exit 1; }
  "$apt_get" install -y -qq "${packages[@]}" >/dev/null || { echo "$me: apt-get install -y ${packages[*]} failed" >&2; exit 1; }
  check_all
  if [ ${#missing[@]} -eq 0 ] && [ ${#problems[@]} -eq 0 ]; then exit 0; fi
fi

explain
exit 1
