#!/bin/sh
# Requests from one mesh workload (frontend or reporter) to the audited
# proxy, each printed with its status: the frontend is allowed, the batch
# reporter is denied /admin by RBAC, /healthz is sampled out, and the
# frontend on /admin breaks the `admin-only` access policy (recorded as a
# violation, not blocked).
set -eu

workload=${1:?usage: client.sh frontend|reporter}
url=${MESH_AUDIT_URL:-https://backend.default.svc:8443}
certs=/pki/certs

call() { # path
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$certs/ca.pem" \
    --cert "$certs/$workload.pem" --key "$certs/$workload-key.pem" \
    -H 'x-user-email: alice@example.com' "$url$1")
  echo "$workload GET $1 -> $code"
}

case $workload in
  frontend)
    call '/orders/42?token=s3cr3t&page=2'
    call /healthz
    call /admin/users
    ;;
  reporter)
    call /orders/7
    call /admin/users
    ;;
  *) echo "unknown workload $workload" >&2; exit 2 ;;
esac
