#!/usr/bin/env bash
# mesh-audit's performance measurement (SPEC §6), run by `make bench`.
#
# One Envoy under test (--concurrency 1, pinned to BENCH_ENVOY_CPU) serves an
# mTLS inbound listener. The load is pinned to BENCH_LOAD_CPU: mtls-load (a
# closed-loop keep-alive client presenting a workload certificate) and
# stub-server (the upstream and the audit sink). The variants differ only in
# the HTTP filter or access logger of the Envoy under test:
#   none        nothing (the reference every cost is measured from)
#   json_log    Envoy's own JSON file access log, a record's fields (the native anchor)
#   noop        a no-op proxy-wasm HTTP filter (the wasm floor)
#   wasm_100    mesh-audit HTTP filter, 100 %, full capture
#   wasm_1      mesh-audit HTTP filter, 1 % sampling
#   logger_100  mesh-audit as a wasm access logger, 100 %
#   logger_1    the same, Envoy's access-log filter sampling 1 % before the VM
#   native_100  mesh-audit native module (Envoy dynamic module), 100 %
#   native_1    the same, 1 %
# native_* run only once the module and bench/filters/native.yaml exist.
# They run interleaved (every variant once per round), each on a freshly
# started Envoy: warm-up, then a measured run. bench/summarize.py prints
# Envoy CPU per request, the costs above "none", the ratios the SPEC targets
# judge, and which side limited throughput, and fails when a target is missed.
# Each run's table is kept in bench/results/.
#
# Settings (environment):
#   BENCH_ROUNDS=5 BENCH_SECONDS=10 BENCH_WARMUP=3   rounds, seconds per run
#   BENCH_CONNECTIONS=32                             keep-alive connections
#   BENCH_VARIANTS="none json_log …"                 which variants, in order
#   BENCH_ENVOY_CPU=0 BENCH_LOAD_CPU=1               the two cores
#   BENCH_QUICK=1                                    smoke run: 1 round of 3 s, no history file
#
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/lib.sh

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  : "${BENCH_ROUNDS:=1}" "${BENCH_SECONDS:=3}" "${BENCH_WARMUP:=1}"
fi
rounds=${BENCH_ROUNDS:-5}
duration=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-3}
connections=${BENCH_CONNECTIONS:-32}
envoy_cpu=${BENCH_ENVOY_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}

envoy=.venv/bin/envoy
wasm=target/wasm32-wasip1/release/mesh_audit.wasm
noop_wasm=target/noop-filter/wasm32-wasip1/release/noop_filter.wasm
native_so=target/native/libmesh_audit.so
native_filter=bench/filters/native.yaml
loader=target/bench/mtls-load
stub=target/bench/stub-server
work=.work/bench
certs=$work/certs
results=$work/results.tsv
# The request every variant serves, with the headers and query mesh-audit
# captures, as the `frontend` workload calling `backend`.
sni=backend.default.svc
url_path='/orders/42?page=2&token=abc'
headers=('user-agent: bench-client/1.0' 'x-forwarded-for: 10.1.2.3'
  'authorization: Bearer bench-token')

die() { echo "bench: $*" >&2; exit 2; }

all_variants="none json_log noop wasm_100 wasm_1 logger_100 logger_1 native_100 native_1"
native_ready() { [[ -f $native_so && -f $native_filter ]]; }
default_variants() {
  local v out=()
  for v in $all_variants; do
    if [[ $v == native_* ]] && ! native_ready; then continue; fi
    out+=("$v")
  done
  echo "${out[*]}"
}
read -r -a variants <<<"${BENCH_VARIANTS:-$(default_variants)}"

for n in "$rounds" "$duration" "$warmup" "$connections"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "BENCH_* counts must be positive integers, got '$n'"
done
for v in "${variants[@]}"; do
  [[ " $all_variants " == *" $v "* ]] || die "unknown variant '$v' (expected one of: $all_variants)"
  if [[ $v == native_* ]] && ! native_ready; then
    die "variant $v needs $native_so and $native_filter (the native module is not built)"
  fi
done
[[ -x $envoy ]] || die "$envoy missing: run \`make envoy\`"
[[ -f $wasm ]] || die "$wasm missing: run \`make build\`"
[[ -f $noop_wasm ]] || die "$noop_wasm missing: run \`make noop-filter\`"
[[ -x $loader ]] || die "$loader missing: run \`make $loader\`"
[[ -x $stub ]] || die "$stub missing: run \`make $stub\`"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
command -v curl >/dev/null || die "curl not found"
(($(nproc) >= 2)) || die "needs two CPUs, this machine has $(nproc)"
if ! native_ready; then
  echo "bench: native module not built ($native_so, $native_filter): native_100 and native_1 are not measured"
fi

mkdir -p "$work"
envoy/pki.sh "$certs"
rm -f "$work"/*.log "$work"/load-*.txt

wait_port() { # port: until something listens on 127.0.0.1:port (5 s)
  local _
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

eut_pid=
stub_pid=
loader_pid=
cleanup() {
  stop_pid "$loader_pid"
  stop_pid "$eut_pid"
  stop_pid "$stub_pid"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r eut_admin inbound_port backend_port sink_port <<<"$(free_ports 4)"

# ---- configurations ---------------------------------------------------------
# render.py arguments selecting what a variant inserts into the Envoy under test.
variant_args() { # variant
  local full=PLUGIN_CONFIG=@bench/config/audit-full.json
  local sampled=PLUGIN_CONFIG=@bench/config/audit-sampled.json
  local none="HTTP_FILTER= ACCESS_LOG= BOOTSTRAP="
  case $1 in
    none) echo "$none" ;;
    json_log) echo "HTTP_FILTER= BOOTSTRAP= ACCESS_LOG=@bench/filters/json-log.yaml ACCESS_LOG_PATH=$root/$work/access.log" ;;
    noop) echo "BOOTSTRAP= HTTP_FILTER=@bench/filters/noop-filter.yaml ACCESS_LOG= WASM=$root/$noop_wasm" ;;
    wasm_100) echo "BOOTSTRAP= HTTP_FILTER=@bench/filters/wasm-filter.yaml ACCESS_LOG= WASM=$root/$wasm $full" ;;
    wasm_1) echo "BOOTSTRAP= HTTP_FILTER=@bench/filters/wasm-filter.yaml ACCESS_LOG= WASM=$root/$wasm $sampled" ;;
    logger_100) echo "BOOTSTRAP= HTTP_FILTER= ACCESS_LOG=@bench/filters/wasm-logger.yaml LOG_FILTER= WASM=$root/$wasm $full" ;;
    # Envoy samples; what reaches mesh-audit is kept (its own rate is 1.0).
    logger_1) echo "BOOTSTRAP= HTTP_FILTER= ACCESS_LOG=@bench/filters/wasm-logger.yaml LOG_FILTER=@bench/filters/sample-1pct.yaml WASM=$root/$wasm $full" ;;
    # The module builds records as an access logger and delivers from its
    # bootstrap extension (README: Native module).
    native_100) echo "HTTP_FILTER= ACCESS_LOG=@$native_filter BOOTSTRAP=@bench/filters/native-bootstrap.yaml NATIVE_SO=$root/$native_so $full" ;;
    native_1) echo "HTTP_FILTER= ACCESS_LOG=@$native_filter BOOTSTRAP=@bench/filters/native-bootstrap.yaml NATIVE_SO=$root/$native_so $sampled" ;;
  esac
}

for v in "${variants[@]}"; do
  read -r -a args <<<"$(variant_args "$v")"
  python3 bench/render.py bench/envoy-under-test.yaml ADMIN_PORT="$eut_admin" \
    INBOUND_PORT="$inbound_port" BACKEND_PORT="$backend_port" SINK_PORT="$sink_port" \
    CERT_DIR="$root/$certs" "${args[@]}" >"$work/under-test-$v.yaml"
done

# ---- processes --------------------------------------------------------------
wait_ready() { # admin_port pid log what
  local _
  for _ in $(seq 600); do
    if [[ $(curl -s --max-time 1 "http://127.0.0.1:$1/ready" 2>/dev/null) == LIVE ]]; then
      return 0
    fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: $4 did not become ready; its log ($3):" >&2
  tail -n 30 "$3" >&2 || true
  exit 2
}

start_envoy() { # cpu config log -> sets started_pid
  taskset -c "$1" "$envoy" -c "$2" --concurrency 1 --disable-hot-restart \
    --log-level warn --log-path "$3" >>"$3" 2>&1 &
  started_pid=$!
}

# The whole request path works: mTLS with the workload certificate → filter → upstream.
probe() { # what log
  local _ code header_args=()
  for h in "${headers[@]}"; do header_args+=(-H "$h"); done
  for _ in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${header_args[@]}" \
      --cert "$certs/frontend.pem" --key "$certs/frontend-key.pem" --cacert "$certs/ca.pem" \
      --resolve "$sni:$inbound_port:127.0.0.1" "https://$sni:$inbound_port$url_path" 2>/dev/null) || true
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  echo "bench: $1 does not answer 200 over mTLS (last: $code); its log ($2):" >&2
  tail -n 30 "$2" >&2 || true
  exit 2
}

run_load() { # seconds output
  local header_args=()
  for h in "${headers[@]}"; do header_args+=(--header "$h"); done
  taskset -c "$load_cpu" "$loader" --port "$inbound_port" --sni "$sni" \
    --cert "$certs/frontend.pem" --key "$certs/frontend-key.pem" --ca "$certs/ca.pem" \
    --connections "$connections" --seconds "$1" --path "$url_path" "${header_args[@]}" >"$2" 2>&1 &
  loader_pid=$!
  wait "$loader_pid" || die "mtls-load failed: $(cat "$2")"
  loader_pid=
}

# CPU time (ns) of every thread of a process.
process_cpu_ns() { # pid
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}

# Busy and total jiffies of one core (user nice system idle iowait irq softirq steal).
core_jiffies() { # cpu
  awk -v c="cpu$1" '$1 == c {printf "%.0f %.0f\n", $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat
}

stats() { # -> "name value" lines of the counters the summary reads
  curl -s --max-time 5 -G "http://127.0.0.1:$eut_admin/stats" \
    --data-urlencode 'filter=mesh_audit\.|^http\.inbound\.downstream_rq_total$' |
    sed -E 's/^(wasmcustom\.|dynamicmodulescustom\.)?//; s/: / /'
}

stat_of() { # name stats-text
  awk -v n="$1" '$1 == n {print $2; found = 1} END {if (!found) print 0}' <<<"$2"
}

# Waits until mesh-audit has decided on every request that reached it and
# settled (delivered or rejected) everything it admitted, so the counts show
# the filter really audited and delivered. With Envoy's access-log filter
# sampling (logger_1), most requests never reach mesh-audit. Bounded: 20 s.
settled_stats() { # variant
  local _ s served seen admitted
  for _ in $(seq 100); do
    s=$(stats)
    served=$(stat_of http.inbound.downstream_rq_total "$s")
    admitted=$(stat_of mesh_audit.records_admitted "$s")
    seen=$((admitted + $(stat_of mesh_audit.records_sampled_out "$s") +
      $(stat_of mesh_audit.records_not_admitted "$s")))
    if { [[ $1 == logger_1 ]] || ((seen >= served)); } &&
      ((admitted == $(stat_of mesh_audit.records_delivered "$s") +
        $(stat_of mesh_audit.records_rejected "$s") && $(stat_of mesh_audit.records_buffered "$s") == 0)); then
      break
    fi
    sleep 0.2
  done
  echo "$s"
}

value_of() { # key file: the value of key=value in mtls-load's output
  tr ' ' '\n' <"$2" | sed -n "s/^$1=//p"
}

# ---- the runs ---------------------------------------------------------------
echo "== bench: ${#variants[@]} variants × $rounds rounds, ${warmup}s warm-up + ${duration}s measured each,"
echo "   $connections keep-alive mTLS connections; envoy under test on CPU $envoy_cpu, load on CPU $load_cpu"
echo "   variants: ${variants[*]}"
echo "   $("$envoy" --version | sed -nE 's#.*/([0-9]+\.[0-9]+\.[0-9]+)/.*#envoy \1#p'); machine: $(uptime | sed 's/.*load/load/')"

taskset -c "$load_cpu" "$stub" --backend "$backend_port" --sink "$sink_port" >"$work/stub-server.log" 2>&1 &
stub_pid=$!
wait_port "$backend_port" && wait_port "$sink_port" || die "stub-server did not start: $(cat "$work/stub-server.log")"

printf '%s\t' variant round rps requests served_in_window connections errors cpu_us_per_req \
  load_us_per_req core_util load_util other_on_core served admitted sampled_out \
  not_admitted delivered rejected buffered batches batch_failures | sed 's/\t$/\n/' >"$results"

for round in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    log=$work/under-test-$v-r$round.log
    rm -f "$work/access.log"
    start_envoy "$envoy_cpu" "$work/under-test-$v.yaml" "$log"
    eut_pid=$started_pid
    wait_ready "$eut_admin" "$eut_pid" "$log" "the Envoy under test (variant $v)"
    probe "the Envoy under test (variant $v)" "$log"

    run_load "$warmup" "$work/load-warmup.txt"
    rq0=$(stat_of http.inbound.downstream_rq_total "$(stats)")
    cpu0=$(process_cpu_ns "$eut_pid")
    read -r core_busy0 core_total0 <<<"$(core_jiffies "$envoy_cpu")"
    read -r load_busy0 load_total0 <<<"$(core_jiffies "$load_cpu")"
    stub0=$(process_cpu_ns "$stub_pid")
    out=$work/load-$v-r$round.txt
    run_load "$duration" "$out"
    cpu1=$(process_cpu_ns "$eut_pid")
    read -r core_busy1 core_total1 <<<"$(core_jiffies "$envoy_cpu")"
    read -r load_busy1 load_total1 <<<"$(core_jiffies "$load_cpu")"
    stub1=$(process_cpu_ns "$stub_pid")
    rq1=$(stat_of http.inbound.downstream_rq_total "$(stats)")

    rps=$(value_of rps "$out")
    requests=$(value_of requests "$out")
    errors=$(value_of errors "$out")
    [[ -n $rps && -n $errors && ${requests:-0} -gt 0 ]] || die "no result from mtls-load: $(cat "$out")"

    if [[ $v == wasm_* || $v == logger_* || $v == native_* ]]; then s=$(settled_stats "$v"); else s=$(stats); fi
    {
      awk -v v="$v" -v r="$round" -v rps="$rps" -v n="$requests" -v sw="$((rq1 - rq0))" \
        -v c="$connections" -v e="$errors" -v cpu="$((cpu1 - cpu0))" -v lcpu="$((stub1 - stub0))" \
        -v cb="$((core_busy1 - core_busy0))" -v ct="$((core_total1 - core_total0))" \
        -v lb="$((load_busy1 - load_busy0))" -v lt="$((load_total1 - load_total0))" \
        -v hz="$(getconf CLK_TCK)" \
        'BEGIN {
          core = ct ? cb / ct : 0
          # Core time not spent by the Envoy under test: other processes on its core.
          other = ct ? core - cpu / 1e9 / (ct / hz) : 0
          printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.3f\t%.3f\t%.3f", v, r, rps, n, sw, c, e,
            cpu / 1e3 / n, lcpu / 1e3 / n, core, lt ? lb / lt : 0, other
        }'
      for name in http.inbound.downstream_rq_total mesh_audit.records_admitted \
        mesh_audit.records_sampled_out mesh_audit.records_not_admitted mesh_audit.records_delivered \
        mesh_audit.records_rejected mesh_audit.records_buffered mesh_audit.batches_sent \
        mesh_audit.batch_failures; do
        printf '\t%s' "$(stat_of "$name" "$s")"
      done
      printf '\n'
    } >>"$results"
    printf '   round %d  %-10s  %10.0f req/s  %s errors\n' "$round" "$v" "$rps" "$errors"

    stop_pid "$eut_pid"
    eut_pid=
  done
done

# A history file per full run: the table, the machine and the commit measured.
summary=$work/summary.txt
status=0
{
  echo "mesh-audit make bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "$rounds rounds × (${warmup}s warm-up + ${duration}s), $connections connections, $(nproc) CPUs, $(uptime | sed 's/.*load/load/')"
  python3 bench/summarize.py "$results" "$wasm" "$noop_wasm"
} >"$summary" || status=$?
cat "$summary"
if [[ ${BENCH_QUICK:-0} != 1 ]]; then
  mkdir -p bench/results
  history=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  [[ -z $(git status --porcelain -- src 2>/dev/null) ]] || history=$history-dirty
  cp "$summary" "$history.txt"
  echo "kept in $history.txt"
fi
exit "$status"
