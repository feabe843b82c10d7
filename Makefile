# Kiln: the README's two commands are `make train` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export XDG_RUNTIME_DIR ?= /tmp
# One shared target dir and one test profile for everything.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: size setup train test test-docs docs test-rust test-release test-js test-web test-python test-fleet test-demo lint fmt bench bench-fleet bench-fed check-cuda pkg demo types

setup:
	./scripts/setup.sh

## Train the embedded default (an MLP on the embedded digits) on CPU. The binary it builds has
## only the backend asked for: `make train BACKEND=wgpu` (or cuda) builds one with that backend.
BACKEND ?= cpu
TRAIN_FEATURES := --no-default-features $(if $(filter-out cpu,$(BACKEND)),--features $(BACKEND))
train:
	./scripts/setup.sh train $(BACKEND)
	$(CARGO) run --release -p kiln-native $(TRAIN_FEATURES) -- train --backend $(BACKEND)

WASM_FEATURES := --no-default-features --features webgpu
# The two wasm builds of the npm package and their profiles (Cargo.toml; levers in BENCHMARKS.md).
WASM_CPU_PROFILE ?= wasm-cpu
WASM_WEBGPU_PROFILE ?= wasm-webgpu
# The CPU build also inlines less than opt-level 2 would (LLVM's inline threshold 75 instead of
# 225): 13% smaller at the same speed (BENCHMARKS.md). This variable replaces the target's
# rustflags in .cargo/config.toml, so it repeats +simd128.
WASM_CPU_RUSTFLAGS ?= -C target-feature=+simd128 -C llvm-args=-inline-threshold=75
WASM_DIR := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown
WASM_BINDGEN := wasm-bindgen --target web --experimental-reset-state-function --remove-name-section --remove-producers-section --out-dir pkg/wasm

## The npm package: a CPU wasm and a WebGPU wasm, each with its bindings, in pkg/wasm; the
## package loads only the one a backend needs. Neither embeds the digits data set: the package
## fetches pkg/wasm/digits.csv.gz for a job that trains on it.
pkg:
	mkdir -p pkg/wasm && cp crate/data/digits.csv.gz pkg/wasm/digits.csv.gz
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$(WASM_CPU_RUSTFLAGS)" $(CARGO) rustc --lib --crate-type cdylib --target wasm32-unknown-unknown -p kiln --no-default-features --profile $(WASM_CPU_PROFILE)
	$(WASM_BINDGEN) --out-name kiln-cpu $(WASM_DIR)/$(WASM_CPU_PROFILE)/kiln.wasm
	$(CARGO) rustc --lib --crate-type cdylib --target wasm32-unknown-unknown -p kiln $(WASM_FEATURES) --profile $(WASM_WEBGPU_PROFILE)
	$(WASM_BINDGEN) --out-name kiln-webgpu $(WASM_DIR)/$(WASM_WEBGPU_PROFILE)/kiln.wasm

## Download sizes of the package's builds next to TensorFlow.js's (BENCHMARKS.md, "Package size").
size: pkg
	cd bench/js && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund; }
	node bench/size.mjs

## The demo page: builds the package and serves www/ on 127.0.0.1 (prints the URL).
DEMO_PORT ?= 8080
demo: setup pkg
	node www/serve.mjs --port $(DEMO_PORT)

## Every test: unit, CLI end-to-end (kill/resume, wgpu on lavapipe), WebGPU in headless Chromium,
## Node, the npm consumer and interchange tests, lint, CUDA type-check.
test: setup lint check-cuda test-rust test-release test-web test-js test-python test-fleet test-docs

## Rust: unit, CLI end-to-end and the MLflow tests (a real `mlflow server` from .venv-mlflow).
test-rust:
	./scripts/setup-mlflow.sh
	$(CARGO) test --workspace

## The SpamAssassin targets natively (>= 0.95 test accuracy with the GRU and the transformer
## configs): the library's test in a release build (a debug build takes minutes per config).
test-release:
	$(CARGO) test --release -p kiln --no-default-features --test spam

## Node 20: the packed npm package driven through its documented API, and native <-> JS models.
test-js: pkg
	$(CARGO) build -p kiln-native
	node --test tests/js/

## The Python client (python/) with pytest against a real `kiln serve` (a .venv the set-up makes).
test-python:
	./scripts/setup-python.sh
	$(CARGO) build -p kiln-native
	KILN_BIN=$(CARGO_TARGET_DIR)/debug/kiln .venv/bin/pytest -q python/tests

## A fleet of `kiln serve` workers on a real PostgreSQL (a throwaway cluster the tests start) and
## a real S3 server (moto, in .venv-fleet) or file:// store: fail-over, drain, database faults.
test-fleet: pkg
	./scripts/setup-fleet.sh
	./scripts/setup-mlflow.sh
	$(CARGO) build -p kiln-native
	node --test tests/fleet/

## wasm-bindgen-test in headless Chromium with WebGPU (SwiftShader), asserting WebGPU is used,
## and the same binding tests in Node 20 on the CPU backend; the custom-model example in Node.
test-web:
	cd crate && CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=600 \
	  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  $(CARGO) test --target wasm32-unknown-unknown $(WASM_FEATURES) --test web --test node
	WASM_BINDGEN_TEST_TIMEOUT=600 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  $(CARGO) test --target wasm32-unknown-unknown -p kiln-example-custom-model \
	  --features kiln/webgpu --test node

## The book (docs/, mdBook): its generated reference pages (the config from `kiln schema`, the
## HTTP API from the server's OpenAPI document), then the HTML in target/book.
MDBOOK := ./.tools/bin/mdbook
docs:
	./scripts/setup-docs.sh
	$(CARGO) build -p kiln-native
	node scripts/gen-docs.mjs $(CARGO_TARGET_DIR)/debug/kiln
	$(MDBOOK) build docs --dest-dir $(abspath $(CARGO_TARGET_DIR))/book

## The book builds, its generated pages are current, and every link in it resolves.
test-docs:
	./scripts/setup-docs.sh
	$(CARGO) build -p kiln-native
	node scripts/gen-docs.mjs $(CARGO_TARGET_DIR)/debug/kiln --check
	$(MDBOOK) build docs --dest-dir $(abspath $(CARGO_TARGET_DIR))/book
	node scripts/check-book-links.mjs $(CARGO_TARGET_DIR)/book

## pkg/types.d.ts from the Rust types (`kiln schema --api`); tests/js/types.test.mjs checks it is current.
types:
	$(CARGO) build -p kiln-native
	node scripts/gen-types.mjs $(CARGO_TARGET_DIR)/debug/kiln

## Rust (rustfmt, clippy native and wasm32), JS (Biome's linter and formatter: pkg/, www/, tests,
## bench, scripts) and Python (ruff's linter and formatter: python/). `make fmt` formats all three.
lint:
	[ -x tests/js/node_modules/.bin/biome ] || (cd tests/js && npm ci --no-audit --no-fund)
	tests/js/node_modules/.bin/biome check .
	./scripts/setup-python.sh
	.venv/bin/ruff check python/
	.venv/bin/ruff format --check python/
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p kiln --target wasm32-unknown-unknown $(WASM_FEATURES) -- -D warnings

## Type-check the CUDA build offline (DOCS_RS=1 skips the LLVM bundle download).
check-cuda:
	DOCS_RS=1 $(CARGO) check -p kiln-native --features cuda

fmt:
	$(CARGO) fmt --all
	[ -x tests/js/node_modules/.bin/biome ] || (cd tests/js && npm ci --no-audit --no-fund)
	tests/js/node_modules/.bin/biome format --write .
	./scripts/setup-python.sh
	.venv/bin/ruff format python/

## Benchmarks: Kiln vs PyTorch / JAX / scikit-learn (see BENCHMARKS.md).
bench:
	./bench/run.sh

## Federated rounds on loopback: round time, server CPU and bytes per client for 1-64 clients,
## with and without secure aggregation (BENCHMARKS.md).
bench-fed:
	$(CARGO) build --release -p kiln-native --no-default-features
	node bench/fed.mjs

## The fleet: jobs/minute with 1 and 2 workers on one PostgreSQL, kill -9 fail-over time,
## SQLite vs PostgreSQL latency (BENCHMARKS.md).
bench-fleet:
	./scripts/setup-fleet.sh
	$(CARGO) build --release -p kiln-native --no-default-features
	node bench/fleet.mjs
