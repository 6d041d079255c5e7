#!/usr/bin/env python3
"""Turns bench/run.sh's per-run results into the SPEC §6 verdict.

    summarize.py RESULTS.tsv MESH_AUDIT.wasm NOOP.wasm

For every variant: the Envoy under test's CPU per request (median over
rounds), what that costs above "none", the ratios the targets judge
(CPU per request of the reference over the variant's, so 1.0 means "costs
nothing more" and 0.5 "costs twice as much per request"), requests/s, and
which side limited throughput. Then the checks that make the run valid and
the filter's own counters. Exit status: 0 all targets met, 1 a target
missed, 2 the measurement itself is not valid.
"""
import csv
import os
import statistics
import sys

TITLES = {
    "none": "no filter (reference)",
    "json_log": "Envoy JSON access log",
    "noop": "no-op wasm filter (floor)",
    "wasm_100": "mesh-audit wasm filter 100%",
    "wasm_1": "mesh-audit wasm filter 1%",
    "logger_100": "mesh-audit wasm logger 100%",
    "logger_1": "mesh-audit wasm logger 1%",
    "native_100": "mesh-audit native 100%",
    "native_1": "mesh-audit native 1%",
}
ORDER = list(TITLES)
# SPEC §6, on CPU per request: variant -> (reference, minimum ratio).
TARGETS = {
    "wasm_100": ("noop", 0.75),
    "wasm_1": ("noop", 0.97),
    "native_100": ("none", 0.90),
    "native_1": ("none", 0.98),
}
AUDITED = ("wasm_100", "wasm_1", "logger_100", "logger_1", "native_100", "native_1")
# SPEC §6: the release .wasm stays under 1 MiB.
MAX_WASM_BYTES = 1 << 20
# At or above this share of its core the Envoy under test was the bottleneck.
SATURATED = 0.90
# Above this share of the measured core used by other processes, the
# numbers are noisy.
NOISY = 0.05

COUNTERS = [
    ("served", "served"),
    ("admitted", "admitted"),
    ("sampled_out", "sampled out"),
    ("not_admitted", "not admitted"),
    ("delivered", "delivered"),
    ("rejected", "rejected"),
    ("buffered", "buffered"),
    ("batches", "batches"),
    ("batch_failures", "batch fails"),
]


def load(path):
    runs = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            runs.setdefault(row["variant"], []).append(row)
    return runs


def median(rows, key):
    return statistics.median(float(r[key]) for r in rows)


def limited_by(rows):
    """Which side set the pace: the Envoy under test only when it kept its
    own core busy; a busy core shared with other processes says nothing."""
    other = max(0.0, median(rows, "other_on_core"))
    own = median(rows, "core_util") - other
    if own >= SATURATED:
        return "envoy under test"
    if other > NOISY:
        return "OTHER PROCESSES"
    if median(rows, "load_util") >= SATURATED:
        return "LOAD SIDE"
    return "neither (latency)"


def ratio(ref, cpu):
    return f"{ref / cpu:.3f}" if ref and cpu else "-"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    results, wasm, noop_wasm = sys.argv[1:]
    runs = load(results)
    order = [v for v in ORDER if v in runs]
    rounds = max(len(r) for r in runs.values())
    cpu = {v: median(runs[v], "cpu_us_per_req") for v in order}
    none, floor = cpu.get("none"), cpu.get("noop")

    failed = invalid = False
    print()
    print(f"== Envoy under test, CPU per request: medians over {rounds} round(s)")
    print(f"{'variant':<40}{'µs/req':>8}{'+µs':>8}{'× floor':>9}{'× none':>8}"
          f"{'req/s':>9}  {'limited by':<19}{'target':<17}result")
    for v in order:
        above = f"{cpu[v] - none:+.1f}" if none else "-"
        rps = median(runs[v], "rps")
        target, verdict = "", ""
        if v in TARGETS:
            ref_name, minimum = TARGETS[v]
            ref = cpu.get(ref_name)
            target = f"{'floor' if ref_name == 'noop' else 'none'} >= {minimum:.2f}"
            if ref is None:
                verdict = f"n/a (no {ref_name})"
            elif ref / cpu[v] >= minimum:
                verdict = "PASS"
            else:
                verdict, failed = "FAIL", True
        print(f"{v:<11}{TITLES[v]:<29}{cpu[v]:>8.1f}{above:>8}{ratio(floor, cpu[v]):>9}"
              f"{ratio(none, cpu[v]):>8}{rps:>9.0f}  {limited_by(runs[v]):<19}{target:<17}{verdict}")
    missing = [v for v in TARGETS if v not in runs]
    if missing:
        print(f"  not measured: {', '.join(missing)}")

    print()
    print("CPU µs per request, per round:")
    for v in order:
        print(f"  {v:<11}" + " ".join(f"{float(r['cpu_us_per_req']):>7.1f}" for r in runs[v]))

    print()
    print("== cores during the measured runs (medians)")
    for v in order:
        print(f"  {v:<11}measured core busy {median(runs[v], 'core_util'):.0%}"
              f" (other processes {max(0.0, median(runs[v], 'other_on_core')):.0%}),"
              f" load core busy {median(runs[v], 'load_util'):.0%},"
              f" stub server {median(runs[v], 'load_us_per_req'):.1f} µs CPU/req")
    all_runs = [r for v in order for r in runs[v]]
    if min(float(r["core_util"]) for r in all_runs) < SATURATED:
        print(f"  WARNING: the measured core was below {SATURATED:.0%} busy in some runs: the Envoy"
              " under test was not what limited throughput there (see 'limited by'), so their req/s"
              " ratios understate the filter's cost; CPU per request is the figure to judge.")
    if max(float(r["other_on_core"]) for r in all_runs) > NOISY:
        print(f"  WARNING: other processes used more than {NOISY:.0%} of the measured core in some"
              " runs: the machine was busy and the numbers are noisy.")

    # The load generator's count against Envoy's: they differ only by the
    # requests in flight at either end of the window, one per connection.
    for r in all_runs:
        counted, served = int(r["requests"]), int(r["served_in_window"])
        if abs(served - counted) > 2 * int(r["connections"]):
            print(f"  INVALID: variant {r['variant']} round {r['round']}: the load generator counted"
                  f" {counted} requests, Envoy served {served}")
            invalid = True

    errors = sum(int(r["errors"]) for r in all_runs)
    if errors:
        print(f"  INVALID: {errors} failed requests (non-2xx or socket errors) during measured runs")
        invalid = True

    audited = [v for v in order if v in AUDITED]
    if audited:
        print()
        print("== mesh-audit counters (summed over rounds, after delivery settled)")
        print(f"  {'':<11}" + "".join(f"{label:>13}" for _, label in COUNTERS))
        for v in audited:
            sums = {k: sum(int(r[k]) for r in runs[v]) for k, _ in COUNTERS}
            print(f"  {v:<11}" + "".join(f"{sums[k]:>13}" for k, _ in COUNTERS))
            seen = sums["admitted"] + sums["sampled_out"] + sums["not_admitted"]
            # Envoy's access-log filter samples logger_1 before mesh-audit sees it.
            if v != "logger_1" and seen < sums["served"]:
                print(f"  INVALID: variant {v} saw fewer records than requests served")
                invalid = True
            if v == "logger_1" and not 0 < sums["admitted"] < sums["served"] / 10:
                print(f"  INVALID: variant {v}: Envoy's 1% sampling let {sums['admitted']} of"
                      f" {sums['served']} requests through")
                invalid = True
            if sums["delivered"] + sums["rejected"] + sums["buffered"] != sums["admitted"]:
                print(f"  INVALID: variant {v}: admitted != delivered + rejected + buffered")
                invalid = True

    print()
    print("== .wasm sizes")
    size = os.path.getsize(wasm)
    size_ok = size < MAX_WASM_BYTES
    failed = failed or not size_ok
    print(f"  {os.path.basename(wasm):<20}{size:>9} bytes   target < {MAX_WASM_BYTES} bytes  "
          f"{'PASS' if size_ok else 'FAIL'}")
    print(f"  {os.path.basename(noop_wasm):<20}{os.path.getsize(noop_wasm):>9} bytes")

    if invalid:
        sys.exit(2)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
