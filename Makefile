# mesh-audit — everything a newcomer needs is `make demo` and `make test`.
SHELL := /bin/bash
WASM := target/wasm32-wasip1/release/mesh_audit.wasm
CARGO ?= cargo

.PHONY: all build cli test unit lint fmt clean toolchain

all: build

# The wasm target is the only toolchain piece the filter needs beyond cargo.
toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

# The .wasm is stamped with the build's start time: cargo leaves it untouched
# when only test dependencies changed, and the tests refuse a .wasm older
# than its inputs; a source edited during the build still counts as newer.
build: toolchain
	@start=$$(date +%s.%N); $(CARGO) build --target wasm32-wasip1 --release && touch -d "@$$start" $(WASM)
	@ls -l $(WASM) | awk '{printf "mesh_audit.wasm: %d bytes\n", $$5}'

cli:
	$(CARGO) build --release --features cli

# Builds the .wasm the tests load (they refuse a stale one), installs the
# pinned Envoy, then runs every test: unit, wasm-level, CLI, real Envoy.
test: build envoy
	$(CARGO) test --features cli --all-targets

unit:
	$(CARGO) test --lib

lint: toolchain
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --features cli -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 --release -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
	rm -rf .venv .work

include Makefile.envoy.mk
include Makefile.bench.mk
include Makefile.deploy.mk
include Makefile.fuzz.mk
include Makefile.images.mk
