#!/usr/bin/env bash
# What the fleet tests (make test-fleet) need: Debian's PostgreSQL server binaries (the tests
# start a throwaway cluster of their own; the package's default cluster is not used) and
# moto's S3-compatible server from PyPI in .venv-fleet. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup-fleet: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "apt installing postgresql"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  log "apt installing python3-venv"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv-fleet/bin/moto_server ]; then
  log "installing moto[server] into .venv-fleet"
  python3 -m venv .venv-fleet
  .venv-fleet/bin/pip install -q --disable-pip-version-check "moto[server]==5.*"
fi
