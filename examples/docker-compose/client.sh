#!/bin/sh
# Requests from two mesh workloads to the audited proxy, each printed with its
# status: the frontend is allowed, the batch reporter is denied /admin by
# RBAC, /healthz is sampled out, and the frontend on /admin breaks the
# `admin-only` access policy (recorded as a violation, not blocked).
set -eu

url=https://backend.default.svc:8443
certs=/pki/certs

call() { # workload path
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$certs/ca.pem" \
    --cert "$certs/$1.pem" --key "$certs/$1-key.pem" \
    -H 'x-user-email: alice@example.com' "$url$2")
  echo "$1 GET $2 -> $code"
}

call frontend '/orders/42?token=s3cr3t&page=2'
call frontend /healthz
call frontend /admin/users
call reporter /orders/7
call reporter /admin/users
