#!/usr/bin/env bash
# Installs what `make train` / `make test` need on a fresh Debian machine with Rust, Node 20
# and apt. Idempotent: every step checks first and does nothing when already done.
#
# `setup.sh` (no argument): everything `make test` and `make demo` need. `setup.sh train BACKEND`:
# only what `make train` needs for that backend — nothing for cpu, Mesa's Vulkan driver for wgpu.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ "${1:-}" = train ]; then
  case "${2:-cpu}" in
    wgpu)
      if ! dpkg-query -W -f='${Status}' mesa-vulkan-drivers 2>/dev/null | grep -q "install ok installed"; then
        log "apt installing mesa-vulkan-drivers (a Vulkan driver for --backend wgpu without a GPU's own)"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq mesa-vulkan-drivers >/dev/null
      fi
      ;;
    cpu | cuda) ;;
    *) log "BACKEND=${2}: allowed: cpu, wgpu, cuda"; exit 2 ;;
  esac
  log "ready to train on ${2:-cpu}"
  exit 0
fi

# 1. Rust target for the browser / Node build.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# 2. wasm-bindgen-cli at exactly the version in Cargo.lock (the CLI and the crate must match).
want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock 2>/dev/null || true)
if [ -n "${want}" ]; then
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "${have}" != "${want}" ]; then
    log "installing wasm-bindgen-cli ${want} (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "${want}" --force
  fi
fi

# 3. System packages: headless Chromium + its driver (browser tests), Mesa's Vulkan (lavapipe,
#    the native wgpu tests), Fashion-MNIST (the second data set).
pkgs=(chromium chromium-driver mesa-vulkan-drivers dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 4. npm packages of the JS parts, when they exist (again whenever the lock file changed).
for dir in tests/js www datasets; do
  if [ -f "$dir/package-lock.json" ] && [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
done
log "ready"
