# Kiln: the README's two commands are `make train` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export XDG_RUNTIME_DIR ?= /tmp
# One shared target dir and one test profile for everything.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: setup train test test-rust lint fmt bench check-cuda

setup:
	./scripts/setup.sh

## Train the embedded default (an MLP on the embedded digits) on CPU.
train: setup
	$(CARGO) run --release -p kiln-native -- train

## Every test: unit, CLI end-to-end (incl. kill/resume and wgpu on lavapipe), lint, CUDA type-check.
test: setup lint check-cuda test-rust

test-rust:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Type-check the CUDA build offline (DOCS_RS=1 skips the LLVM bundle download).
check-cuda:
	DOCS_RS=1 $(CARGO) check -p kiln-native --features cuda

fmt:
	$(CARGO) fmt --all

## Benchmarks: Kiln vs PyTorch / JAX / scikit-learn (see BENCHMARKS.md).
bench:
	./bench/run.sh
