# `make bench`: mesh-audit's performance contract (SPEC §6), see bench/README.md.
# Included from Makefile, which provides `build` and `toolchain`, and (through
# Makefile.envoy.mk) `envoy`.

NOOP_WASM := target/noop-filter/wasm32-wasip1/release/noop_filter.wasm
MTLS_LOAD := target/bench/mtls-load

.PHONY: bench bench-quick bench-sink noop-filter

# The no-op proxy-wasm filter every variant is compared with; its own crate
# and target directory, so it never touches the mesh-audit build.
noop-filter: toolchain
	$(CARGO) build --manifest-path bench/noop-filter/Cargo.toml --target wasm32-wasip1 \
		--release --target-dir target/noop-filter

# The load generator: C and the system OpenSSL (Debian/Ubuntu: libssl-dev).
$(MTLS_LOAD): bench/mtls-load/mtls-load.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lssl -lcrypto

# Interleaved rounds of every variant; fails when a target is missed.
# Durations: BENCH_ROUNDS, BENCH_SECONDS, BENCH_WARMUP, BENCH_CONNECTIONS.
bench: build envoy noop-filter $(MTLS_LOAD)
	bench/run.sh

# A smoke run of the same machinery: one short round, numbers not meaningful.
bench-quick: build envoy noop-filter $(MTLS_LOAD)
	BENCH_QUICK=1 bench/run.sh

# The sink's ingest throughput (plaintext, and mTLS with --keys) and its
# memory for a million emitters.
bench-sink:
	$(CARGO) bench --features cli --bench sink_throughput
