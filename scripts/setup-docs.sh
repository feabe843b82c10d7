#!/usr/bin/env bash
# The book's builder (make docs): mdBook from crates.io, without its `serve`/`watch` features,
# into .tools/ at the version pinned here. Idempotent: does nothing when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=0.4.52
log() { printf 'setup-docs: %s\n' "$*" >&2; }

if [ -x .tools/bin/mdbook ] && .tools/bin/mdbook --version | grep -q "v$MDBOOK_VERSION"; then
  exit 0
fi
log "installing mdbook $MDBOOK_VERSION into .tools/ (cargo install, a few minutes once)"
cargo install --quiet --locked --no-default-features --version "$MDBOOK_VERSION" \
  --root .tools mdbook
