#!/usr/bin/env bash
# Installs the Debian packages the tests drive (part of `npm test`, so the README's test command
# works on a fresh machine): Chromium for the dashboard test, openssl for certificates, PostgreSQL
# for the Postgres store's tests (they start throwaway servers with its initdb and pg_ctl).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "the tests need: ${missing[*]}; install them (Debian: sudo apt-get install -y ${missing[*]}) and run npm test again" >&2
  exit 1
fi
echo "installing ${missing[*]} for the tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
