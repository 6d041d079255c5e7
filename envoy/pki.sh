#!/usr/bin/env bash
# Test PKI for mesh-audit: a mesh CA, a server and two client workloads whose
# URI SANs are SPIFFE ids, and a client from a foreign CA for negative checks.
#
#   envoy/pki.sh DIR
#
# Idempotent: an existing complete DIR is left alone. Safe to run in parallel
# into the same DIR: certificates are made in a private directory and moved
# into place with one atomic rename; a loser of the race discards its copy.
set -euo pipefail

dir=${1:?usage: pki.sh DIR}
# Bump when the set of files or their contents change, so old trees are redone.
version=4
marker=.complete-v$version

if [[ -f $dir/$marker ]]; then
  exit 0
fi

parent=$(dirname "$dir")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.pki.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

days=3650

base64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
unbase64url() {
  local s
  s=$(tr -- '-_' '+/')
  while (( ${#s} % 4 )); do s+='='; done
  printf '%s' "$s" | openssl base64 -A -d
}

key() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/$1-key.pem" 2>/dev/null
}

ca() { # name subject
  key "$1"
  openssl req -x509 -new -key "$work/$1-key.pem" -subj "$2" -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/$1.pem"
}

leaf() { # name subject ca usage san
  key "$1"
  openssl req -new -key "$work/$1-key.pem" -subj "$2" -out "$work/$1.csr"
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=$4" \
    "subjectAltName=$5" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$work/$3.pem" -CAkey "$work/$3-key.pem" \
    -CAcreateserial -days "$days" -sha256 -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
  rm -f "$work/$1.csr" "$work/$1.ext"
}

ca ca "/O=mesh-audit/CN=mesh-audit test CA"
ca rogue-ca "/O=elsewhere/CN=foreign CA"

# The backend's workload certificate: it serves mTLS, and its proxy presents
# it as a client to the audit sink (so both usages, as mesh workload certs have).
leaf server "/CN=backend" ca serverAuth,clientAuth \
  "URI:spiffe://cluster.local/ns/default/sa/backend,DNS:backend.default.svc,DNS:localhost,IP:127.0.0.1"
# `mesh-audit sink --tls-cert`: the proxies check this identity before
# sending audit records.
leaf audit-sink "/CN=audit-sink" ca serverAuth \
  "URI:spiffe://cluster.local/ns/audit/sa/audit-sink,DNS:audit-sink,DNS:audit-sink.audit.svc,DNS:localhost,IP:127.0.0.1"
# Subject components are listed CN first so that the RFC 2253 form Envoy
# reports (last component first) reads O=acme,CN=frontend.
leaf frontend "/CN=frontend/O=acme" ca clientAuth \
  "URI:spiffe://cluster.local/ns/shop/sa/frontend"
leaf reporter "/CN=reporter" ca clientAuth \
  "URI:spiffe://cluster.local/ns/batch/sa/reporter"
# Claims the frontend's identity, but no mesh CA vouches for it.
leaf rogue "/CN=frontend/O=acme" rogue-ca clientAuth \
  "URI:spiffe://cluster.local/ns/shop/sa/frontend"

# An HS256 key for Envoy's jwt_authn and a token it signs, so the end-user
# identity path can be exercised without an identity provider.
jwt_key=$(openssl rand 32 | base64url)
printf '{"keys":[{"kty":"oct","alg":"HS256","kid":"test","k":"%s"}]}\n' "$jwt_key" >"$work/jwks.json"
header=$(printf '{"alg":"HS256","typ":"JWT","kid":"test"}' | base64url)
payload=$(printf '{"iss":"https://idp.example","sub":"alice","email":"alice@example.com","exp":4102444800}' | base64url)
signature=$(printf '%s.%s' "$header" "$payload" |
  openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(printf '%s' "$jwt_key" | unbase64url | od -An -v -tx1 | tr -d ' \n')" -binary |
  base64url)
printf '%s.%s.%s\n' "$header" "$payload" "$signature" >"$work/alice.jwt"

rm -f "$work"/*.srl
chmod 644 "$work"/*.pem "$work"/jwks.json "$work"/alice.jwt
touch "$work/$marker"

if [[ -d $dir && ! -f $dir/$marker ]]; then
  # Left over from an older layout or an interrupted run outside this script.
  rm -rf "$dir"
fi
if ! mv -T "$work" "$dir" 2>/dev/null; then
  # Another run finished first; its tree is equivalent.
  [[ -f $dir/$marker ]]
fi
