# `make bench`: mesh-audit's performance contract (SPEC §6), see bench/README.md.
# Included from Makefile, which provides `build` and `toolchain`, and (through
# Makefile.envoy.mk) `envoy`.

NOOP_WASM := target/noop-filter/wasm32-wasip1/release/noop_filter.wasm
MTLS_LOAD := target/bench/mtls-load
STUB_SERVER := target/bench/stub-server

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

# The upstream and sink of the load side: plain C, cheaper than any Envoy.
$(STUB_SERVER): bench/stub-server/stub-server.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

# Interleaved rounds of every proxy variant, then the sink's ingest (also
# when a proxy target was missed, so one run has every figure); fails when
# any target is missed, with bench/run.sh's status when that one failed.
# Durations: BENCH_ROUNDS, BENCH_SECONDS, BENCH_WARMUP, BENCH_CONNECTIONS.
bench: build native envoy noop-filter $(MTLS_LOAD) $(STUB_SERVER)
	@status=0; bench/run.sh || status=$$?; $(MAKE) bench-sink || { [[ $$status != 0 ]] || status=1; }; exit $$status

# A smoke run of the same machinery: one short round, numbers not meaningful.
bench-quick: build native envoy noop-filter $(MTLS_LOAD) $(STUB_SERVER)
	BENCH_QUICK=1 bench/run.sh
	BENCH_QUICK=1 $(MAKE) bench-sink

# The sink's ingest throughput (plaintext, and mTLS with --keys) and its
# memory for a million emitters; fails below 200 000 records/s over mTLS
# with --keys.
# `cargo bench` builds the CLI it measures itself, with the bench profile
# (Cargo.toml: it unwinds, as the harness does, so the library is built once).
bench-sink:
	$(CARGO) bench --features cli --bench sink_throughput
