#!/bin/sh
# Writes keys.env next to this script: a fresh hash key and chain key, readable
# by you alone. Keep the chain key: `mesh-audit verify --key-env` needs it.
set -eu
out=$(dirname "$0")/keys.env
if [ -e "$out" ]; then
  echo "$out exists; remove it first to make new keys" >&2
  exit 1
fi
umask 077
printf 'MESH_AUDIT_HASH_KEY=%s\nMESH_AUDIT_CHAIN_KEY=%s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" >"$out"
echo "wrote $out"
