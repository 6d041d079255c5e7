#!/bin/sh
# Writes into DIR (default: next to this script):
#   keys.env      the proxy's, readable by you alone: a fresh hash key, chain
#                 key and Ed25519 signing key
#   auditor.env   the auditor's, readable by you alone (the sink container,
#                 for `verify --key-env`): the chain key, never the signing key
#   keyring       the signing key's public keyring line (`KEY_ID PUBKEY`),
#                 readable by all: the sink checks every batch's seal against
#                 it at ingest (`sink --keys`), and `verify --keys` reads it
# Keep auditor.env and keyring: verifying the trail needs them.
#
#   ./keys.sh [DIR]
#
# The signing key is what `mesh-audit keygen` makes (an Ed25519 key), made
# here with openssl so that no build is needed first; an env file holds one
# line per variable, so it carries the key's 32-byte seed in base64, which
# `integrity.signing_key_env` accepts as well as a PKCS#8 PEM.
set -eu
dir=${1:-$(dirname "$0")}
for file in keys.env auditor.env keyring; do
  if [ -e "$dir/$file" ]; then
    echo "$dir/$file exists; remove it first to make new keys" >&2
    exit 1
  fi
done
umask 077
key=$(mktemp)
trap 'rm -f "$key"' EXIT
openssl genpkey -algorithm ed25519 -out "$key" 2>/dev/null
# PKCS#8 DER of an Ed25519 key: a 16-byte header, then the 32-byte seed;
# SPKI DER of its public key: a 12-byte header, then the 32 raw bytes.
seed=$(openssl pkey -in "$key" -outform DER | tail -c 32 | base64)
public=$(openssl pkey -in "$key" -pubout -outform DER | tail -c 32 | od -An -v -tx1 | tr -d ' \n')
# The key id: the first 16 hex digits of SHA-256 of the raw public key.
key_id=$(openssl pkey -in "$key" -pubout -outform DER | tail -c 32 | openssl dgst -sha256 -r | cut -c1-16)
chain=$(openssl rand -hex 32)
printf 'MESH_AUDIT_HASH_KEY=%s\nMESH_AUDIT_CHAIN_KEY=%s\nMESH_AUDIT_SIGNING_KEY=%s\n' \
  "$(openssl rand -hex 32)" "$chain" "$seed" >"$dir/keys.env"
printf 'MESH_AUDIT_CHAIN_KEY=%s\n' "$chain" >"$dir/auditor.env"
# Public: the sink's unprivileged user reads it through a read-only mount.
printf '%s %s\n' "$key_id" "$public" >"$dir/keyring"
chmod 644 "$dir/keyring"
echo "wrote $dir/keys.env, $dir/auditor.env and $dir/keyring (signing key $key_id)"
