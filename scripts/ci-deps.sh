#!/usr/bin/env bash
# The system packages the tests need beyond Rust and the pinned Envoy, on
# Debian/Ubuntu: a real OCI registry and client for the image round trip
# (tests/examples/oci_registry.rs). .ci/run calls it; it uses sudo when not
# run as root, and does nothing when the packages are already installed.
set -euo pipefail

packages=(
  docker-registry # the CNCF distribution registry, served on 127.0.0.1 by the test
  skopeo          # the OCI client that pushes, inspects and pulls the image
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "ci-deps: ${packages[*]} already installed"
  exit 0
fi
as_root=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "ci-deps: installing ${missing[*]} needs root (or sudo)" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
