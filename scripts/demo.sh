#!/usr/bin/env bash
# mesh-audit demo: Envoy with the filter in front of a backend, two mesh
# workloads calling it over mTLS, and the audit records the sink received.
#
#   make demo        (builds the .wasm, installs Envoy, makes certificates)
#
# Everything runs on 127.0.0.1 and is stopped when the script exits.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh

demo=.work/demo
certs=$demo/certs
wasm=target/wasm32-wasip1/release/mesh_audit.wasm
envoy=.venv/bin/envoy
records=$demo/records.jsonl

[[ -f $wasm ]] || { echo "demo: $wasm missing: run \`make build\`" >&2; exit 1; }
[[ -x $envoy ]] || { echo "demo: $envoy missing: run \`make envoy\`" >&2; exit 1; }
mkdir -p "$demo"
bash envoy/pki.sh "$certs"

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r admin_port mtls_port plain_port backend_port sink_port closed_port <<<"$(free_ports 6)"

wait_for_port() { # port what
  local _
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: $2 did not come up on port $1" >&2
  exit 1
}

# ---- keys and the audit sink -----------------------------------------------
# A fresh trail: the records, and the sink's owners and quarantine files.
rm -f "$records" "$records".*
cli=target/release/mesh-audit
echo "== building the mesh-audit CLI (sink, keygen, verify, report)"
if ! "${CARGO:-cargo}" build --release --features cli >"$demo/cli-build.log" 2>&1 || [[ ! -x $cli ]]; then
  echo "demo: building the CLI failed; see $demo/cli-build.log" >&2
  tail -20 "$demo/cli-build.log" >&2
  exit 1
fi
# The proxy's Ed25519 signing key (its keyring line is what the auditor
# trusts; with no pattern it may vouch for any destination, and this proxy
# also serves plaintext requests, which have none) and the chain key that
# keys the genesis of every emitter.
keys=$demo/keys
rm -rf "$keys" && mkdir -p "$keys" && chmod 700 "$keys"
"$cli" keygen --out "$keys/proxy" >"$keys/keyring"
MESH_AUDIT_SIGNING_KEY=$(cat "$keys/proxy.key.pem")
MESH_AUDIT_CHAIN_KEY=$(openssl rand -hex 32)
export MESH_AUDIT_SIGNING_KEY MESH_AUDIT_CHAIN_KEY
echo "== keys: the proxy signs with key $(cut -d' ' -f1 "$keys/keyring") ($keys/keyring); the chain key is in MESH_AUDIT_CHAIN_KEY"
# The built binary is started directly (not through `cargo run`) so that
# the pid we stop on exit is the sink itself. mTLS: only the demo proxy's
# workload identity may write; --keys: a batch whose seal no key of the
# keyring signed is refused (422) and quarantined.
"$cli" sink --listen "127.0.0.1:$sink_port" --out "$records" \
  --tls-cert "$certs/audit-sink.pem" --tls-key "$certs/audit-sink-key.pem" \
  --client-ca "$certs/ca.pem" --allow-principal spiffe://cluster.local/ns/default/sa/backend \
  --keys "$keys/keyring" >"$demo/sink.log" 2>&1 &
pids+=($!)
sink="mesh-audit sink"
wait_for_port "$sink_port" "$sink"
echo "== $sink listening on 127.0.0.1:$sink_port (mTLS), writing $records"

# ---- Envoy ------------------------------------------------------------------
sed -e "s|{{ADMIN_PORT}}|$admin_port|g" -e "s|{{MTLS_PORT}}|$mtls_port|g" \
  -e "s|{{PLAIN_PORT}}|$plain_port|g" -e "s|{{BACKEND_PORT}}|$backend_port|g" \
  -e "s|{{SINK_PORT}}|$sink_port|g" -e "s|{{CLOSED_PORT}}|$closed_port|g" \
  -e "s|{{CERT_DIR}}|$root/$certs|g" -e "s|{{WASM}}|$root/$wasm|g" \
  envoy/demo.yaml >"$demo/envoy.yaml"
if grep -q '{{' "$demo/envoy.yaml"; then
  echo "demo: unfilled placeholder in $demo/envoy.yaml" >&2
  exit 1
fi
"$envoy" -c "$demo/envoy.yaml" --use-dynamic-base-id --concurrency 1 -l info \
  --file-flush-interval-msec 100 --log-path "$demo/envoy.log" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$admin_port/ready" >/dev/null 2>&1 && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "demo: Envoy exited; see $demo/envoy.log" >&2; tail -20 "$demo/envoy.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$admin_port/ready" >/dev/null || { echo "demo: Envoy not ready; see $demo/envoy.log" >&2; exit 1; }
echo "== Envoy $("$envoy" --version | sed -n 's|.*/\([0-9.]*\)/.*|\1|p') ready: mTLS on :$mtls_port, plaintext on :$plain_port"

# ---- traffic -----------------------------------------------------------------
host=backend.default.svc
call() { # label workload|- path [curl args...]
  local label=$1 who=$2 path=$3 code
  shift 3
  local args=(-s -o /dev/null -w '%{http_code}' --max-time 10)
  if [[ $who == - ]]; then
    code=$(curl "${args[@]}" "$@" "http://127.0.0.1:$plain_port$path" || true)
  else
    code=$(curl "${args[@]}" --cacert "$certs/ca.pem" --cert "$certs/$who.pem" --key "$certs/$who-key.pem" \
      --resolve "$host:$mtls_port:127.0.0.1" "$@" "https://$host:$mtls_port$path" || true)
  fi
  [[ $code == 000 ]] && code="refused (TLS handshake)"
  printf '   %-48s → %s\n' "$label" "$code"
}
token=$(cat "$certs/alice.jwt")
echo "== traffic"
call "frontend GET /orders/42 (user alice, JWT)" frontend "/orders/42?token=abc123&page=2" \
  -H "authorization: Bearer $token"
call "reporter GET /orders/7" reporter /orders/7
call "frontend GET /admin/users" frontend /admin/users
call "reporter GET /admin/users (RBAC denies)" reporter /admin/users
call "frontend GET /nowhere (no route)" frontend /nowhere
call "frontend GET /missing-upstream (closed port)" frontend /missing-upstream
call "plaintext GET /orders/1 (no identity)" - /orders/1
call "rogue cert (foreign CA) GET /orders/1" rogue /orders/1
expected=7

# ---- records -----------------------------------------------------------------
count() { # kind
  if [[ -f $records ]]; then grep -c "\"kind\":\"$1\"" "$records" || true; else echo 0; fi
}
# Every batch ends with its seal: wait for the requests and a seal after the last one.
sealed() { [[ -f $records ]] && tail -n 1 "$records" | grep -q '"kind":"seal"'; }
for _ in $(seq 100); do
  (($(count request) >= expected)) && sealed && break
  sleep 0.1
done
echo "== $(count request) requests audited (expected $expected) in $(count seal) signed batch(es): $records"
python3 - "$records" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    kind, seq = r.get("kind"), r.get("seq", "?")
    if kind == "loss":
        print(f"  #{seq:<3} LOSS     {r.get('reason')} count={r.get('count')}")
        continue
    if kind == "seal":
        print(f"  #{seq:<3} seal     of #{r.get('from_seq')}..#{r.get('to_seq')}, signed by key {r.get('key_id')}")
        continue
    if kind == "close":
        print(f"  #{seq:<3} close    ({r.get('reason')})")
        continue
    req, resp = r.get("request", {}), r.get("response", {})
    who = r.get("source", {}).get("principal") or "(no mTLS identity)"
    user = r.get("user", {}).get("sub")
    flags = ",".join(resp.get("flags", [])) or "-"
    extra = "".join([
        f" user={user}" if user else "",
        f" violation={r['violation']}" if r.get("violation") else "",
        f" query={req['query']}" if req.get("query") else "",
    ])
    print(f"  #{seq:<3} {r.get('decision', '?'):<8} {who:<44} "
          f"{req.get('method', '?')} {req.get('path', '?')} → {resp.get('code', '?')} "
          f"flags={flags} {r.get('duration_ms', 0):.2f}ms{extra}")
EOF
if (($(count request) < expected)); then
  echo "demo: only $(count request) of $expected requests were audited; see $demo/envoy.log" >&2
  exit 1
fi
echo "== mesh-audit verify $records --keys $keys/keyring --key-env MESH_AUDIT_CHAIN_KEY"
echo "   (Envoy still runs, so its emitter is open: a drain or a reload ends it with a signed close record)"
"$cli" verify "$records" --keys "$keys/keyring" --key-env MESH_AUDIT_CHAIN_KEY
echo "== mesh-audit report $records"
"$cli" report "$records"
"$cli" report --format html "$records" > "$demo/report.html"
echo "   (HTML report with the access graph: $demo/report.html)"
echo "== done; Envoy and the sink are stopped on exit (logs in $demo/)"
