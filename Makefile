# mesh-audit — everything a newcomer needs is `make demo` and `make test`.
SHELL := /bin/bash
WASM := target/wasm32-wasip1/release/mesh_audit.wasm
CARGO ?= cargo

# The native profile's own directory: no other build writes it, while every
# release build (`make cli` too) rewrites target/release/libmesh_audit.so as
# the plain library, which Envoy cannot load as a module.
NATIVE := target/native/libmesh_audit.so

.PHONY: all build native cli test check unit lint fmt clean toolchain

all: build

# The wasm target is the only toolchain piece the filter needs beyond cargo
# (scripts/lib.sh: present in the sysroot, else rustup, else the rust-std archive).
toolchain:
	@. scripts/lib.sh && ensure_wasm_target

# The .wasm is stamped with the build's start time: cargo leaves it untouched
# when only test dependencies changed, and the tests refuse a .wasm older
# than its inputs; a source edited during the build still counts as newer.
build: toolchain
	@start=$$(date +%s.%N); $(CARGO) build --target wasm32-wasip1 --release && touch -d "@$$start" $(WASM)
	@ls -l $(WASM) | awk '{printf "mesh_audit.wasm: %d bytes\n", $$5}'

# The Envoy dynamic module (Envoy 1.40, ABI v0.2.0), from the same crate.
# Built with the `native` profile (release, but a panic unwinds to the entry
# point's catch instead of aborting Envoy), into target/native/, named as
# Envoy's search rule wants it: $${ENVOY_DYNAMIC_MODULES_SEARCH_PATH}/lib<name>.so.
# Stamped like the .wasm so tests can refuse a stale module.
native:
	@start=$$(date +%s.%N); $(CARGO) build --profile native --features native --lib && touch -d "@$$start" $(NATIVE)
	@ls -l $(NATIVE) | awk '{printf "libmesh_audit.so: %d bytes\n", $$5}'

cli:
	$(CARGO) build --release --features cli

# Builds the .wasm and the native module the tests load (they refuse stale
# ones), installs the pinned Envoy, then runs every test: unit, wasm-level,
# CLI, real Envoy (both builds), and the native module's ABI-level test.
test: build native envoy
	$(CARGO) test --features cli --lib --bins --tests
	$(CARGO) test --features native --test native_abi --test native_cost --test native_sampled --test native_plain_rate

# The inner loop, no Envoy: formatting, lints, unit tests, and the wasm-level
# suite (every lifecycle test on the native core and on the built .wasm).
check: build lint
	$(CARGO) test --lib --test wasm

unit:
	$(CARGO) test --lib

lint: toolchain
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --features cli -- -D warnings
	$(CARGO) clippy --features native --lib --tests -- -D warnings
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
