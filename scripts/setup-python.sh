#!/usr/bin/env bash
# The Python client's test environment (make test-python): .venv with kiln-client installed
# editable plus pytest, numpy and pandas from PyPI. Idempotent: does nothing when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup-python: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  log "apt installing python3-venv"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.kiln-client-installed
if [ ! -f "$stamp" ] || [ python/pyproject.toml -nt "$stamp" ] \
   || ! .venv/bin/python -c "import kiln_client, pytest, numpy, pandas, httpx" 2>/dev/null; then
  log "installing kiln-client (editable) with its test dependencies"
  .venv/bin/pip install -q --disable-pip-version-check -e "python[test]"
  touch "$stamp"
fi
