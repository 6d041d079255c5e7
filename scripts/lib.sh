# Shell helpers shared by mesh-audit's scripts (scripts/demo.sh,
# bench/run.sh, .ci/run, the Makefile's toolchain target). Sourced, never run:
#   . "$root/scripts/lib.sh"

# The repository's root, wherever this file is sourced from.
mesh_audit_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# free_ports COUNT: COUNT distinct free TCP ports on 127.0.0.1, space-separated.
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it.
stop_pid() {
  local pid=$1 _
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# The rust-std archive for machines where rustup cannot fetch the target.
: "${WASM32_WASIP1_STD:=$mesh_audit_root/../shared/toolchain/rust-std-wasm32-wasip1-1.95.0.tar.xz}"

# ensure_wasm_target: makes sure rustc can build for wasm32-wasip1. The
# target is there when its directory is in the sysroot (that is what the
# compiler looks at; an unpacked target is not listed by rustup). Otherwise
# `rustup target add`, and failing that the rust-std archive in
# $WASM32_WASIP1_STD, which fits rustc 1.95.0 only.
ensure_wasm_target() {
  local sysroot dir version sums expected
  sysroot=$(rustc --print sysroot) || return 1
  dir=$sysroot/lib/rustlib/wasm32-wasip1
  [[ -d $dir ]] && return 0
  if command -v rustup >/dev/null && rustup target add wasm32-wasip1 && [[ -d $dir ]]; then
    return 0
  fi
  version=$(rustc -V | awk '{print $2}')
  if [[ $version != 1.95.0 ]]; then
    echo "wasm32-wasip1 is not installed and rustup could not add it; $WASM32_WASIP1_STD fits rustc 1.95.0, this is rustc $version" >&2
    return 1
  fi
  if [[ ! -f $WASM32_WASIP1_STD ]]; then
    echo "wasm32-wasip1 is not installed, rustup could not add it, and $WASM32_WASIP1_STD does not exist" >&2
    return 1
  fi
  # The archive's checksum list sits beside it; an archive that does not
  # match is refused, never unpacked into the toolchain.
  sums=$(dirname "$WASM32_WASIP1_STD")/SHA256SUMS
  if [[ -f $sums ]]; then
    expected=$(awk -v f="$(basename "$WASM32_WASIP1_STD")" '$2 ~ "(^|/)" f "$" {print $1}' "$sums")
    if [[ -n $expected && $(sha256sum "$WASM32_WASIP1_STD" | cut -d' ' -f1) != "$expected" ]]; then
      echo "$WASM32_WASIP1_STD does not match its SHA-256 in $sums" >&2
      return 1
    fi
  fi
  echo "installing wasm32-wasip1 from $WASM32_WASIP1_STD into $sysroot/lib/rustlib/"
  tar -xJf "$WASM32_WASIP1_STD" -C "$sysroot/lib/rustlib/" && [[ -d $dir ]]
}
