#!/usr/bin/env bash
# The MLflow tracking server the tracking tests (tests/native/mlflow.rs) start: `mlflow` from
# PyPI in .venv-mlflow. Kiln itself talks to MLflow's REST API and needs no Python. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup-mlflow: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

want="3.17.*"
if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
  log "apt installing python3-venv"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
fi
stamp=.venv-mlflow/.mlflow-installed
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv-mlflow/bin/mlflow ]; then
  log "installing mlflow==${want} into .venv-mlflow"
  python3 -m venv .venv-mlflow
  .venv-mlflow/bin/pip install -q --disable-pip-version-check "mlflow==${want}"
  printf '%s' "$want" > "$stamp"
fi
