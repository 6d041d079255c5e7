# `make fuzz`: cargo-fuzz targets (fuzz/) for the configuration parser and
# the record builder. cargo-fuzz needs the nightly toolchain (sanitizers);
# without it this target says so and fails. The same inputs are exercised on
# stable by tests/wasm/robustness.rs under `make test`.
# Included from Makefile.

FUZZ_TARGETS := config record
# Seconds per target.
FUZZ_SECONDS ?= 60

.PHONY: fuzz fuzz-check

fuzz:
	@if ! rustup run nightly rustc --version >/dev/null 2>&1; then \
		echo "make fuzz: needs the nightly Rust toolchain (cargo-fuzz builds with -Zsanitizer)." >&2; \
		echo "  install it with: rustup toolchain install nightly" >&2; \
		echo "  without nightly, 'make test' still runs the same inputs (tests/wasm/robustness.rs)." >&2; \
		exit 1; \
	fi
	@if ! cargo fuzz --help >/dev/null 2>&1; then \
		echo "make fuzz: needs cargo-fuzz: cargo install cargo-fuzz" >&2; \
		exit 1; \
	fi
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$target; \
		seeds=; [ -d fuzz/seeds/$$target ] && seeds=fuzz/seeds/$$target; \
		echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
		cargo +nightly fuzz run $$target fuzz/corpus/$$target $$seeds -- \
			-max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# The fuzz targets still compile (stable is enough for that).
fuzz-check:
	$(CARGO) check --manifest-path fuzz/Cargo.toml --target-dir target/fuzz --bins
