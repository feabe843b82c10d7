#!/usr/bin/env bash
# `make bench`: Kiln CPU vs PyTorch, JAX and scikit-learn on the same recipes, one thread each,
# side by side in one run. Prints a Markdown table; results are recorded in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
venv=bench/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, jax, sklearn" 2>/dev/null; then
  echo "bench: installing PyTorch, JAX and scikit-learn into $venv (PyTorch is about 3 GB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch "jax[cpu]" scikit-learn
fi
cargo build --release -p kiln-native --no-default-features >&2
kiln=target/release/kiln
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT

kiln_case() { # config → JSON line: the median epoch after the first (from metrics.jsonl), like the peers
  local out run="$store/run-$RANDOM"
  out=$("$kiln" --store "$store/models" train "$1" --out "$run" --json 2>/dev/null)
  python3 - "$run/metrics.jsonl" <<PY
import json, statistics, sys
info = json.loads('''$out''')
ends = {}  # epoch → training time at its last progress report
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event"] == "progress":
        ends[e["epoch"]] = e["elapsedSeconds"]
times = [ends[k] - ends[k - 1] for k in sorted(ends) if k - 1 in ends]  # epochs 2, 3, ...
print(json.dumps({"peer": "kiln-cpu", "ms_per_epoch_median": 1000 * statistics.median(times),
                  "test_accuracy": info["finalMetrics"]["test_accuracy"]}))
PY
}

table() { # title lines...
  echo
  echo "### $1"
  echo
  echo "| runtime | ms/epoch | test accuracy |"
  echo "|---|---:|---:|"
  shift
  for line in "$@"; do
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("| %s | %.1f | %.4f |" % (r["peer"], r["ms_per_epoch_median"], r["test_accuracy"]))' "$line"
  done
}

mapfile -t digits < <(kiln_case bench/digits.yaml; "$venv/bin/python" bench/peers.py digits 20 32)
table "digits, MLP 64→128→10, Adam 1e-3, batch 32, 20 epochs, 1 thread" "${digits[@]}"
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  mapfile -t fashion < <(kiln_case bench/fashion.yaml; "$venv/bin/python" bench/peers.py fashion 3 128)
  table "Fashion-MNIST, MLP 784→128→10, Adam 1e-3, batch 128, 3 epochs, 1 thread" "${fashion[@]}"
fi
