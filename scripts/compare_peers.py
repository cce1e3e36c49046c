#!/usr/bin/env python3
"""Merges the peers' results.json and `nabla bench --json` outputs (scripts/compare-peers.sh)
into one markdown table per workload, with nabla's ratio to numpy and to the best peer, its
fraction of its own GEMM bound and of the CPU's FMA peak.

nabla's files are named nabla-<environment>-<gemm>-<threads>t.json: environment `unset`
(OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, as bench.py runs the peers) or `kept` (as the
environment had them), gemm the `--gemm` provider; nabla-reference.json is the reference backend."""
import glob
import json
import os
import sys

WORKLOADS = [("mnist-mlp", "W1", "samples/s"), ("tiny", "W2", "steps/s"), ("wide", "W3", "samples/s")]
DEFAULT = "nabla openblas"


def label(path, coretype):
    """The table row of a nabla output file."""
    name = os.path.basename(path)[len("nabla-"):-len(".json")]
    if name == "reference":
        return "nabla reference"
    environment, gemm, _ = name.split("-")
    parts = [] if gemm == "auto" else [f"--gemm {gemm}"]
    if environment == "kept":
        parts.append(f"OPENBLAS_CORETYPE={coretype}")
    return DEFAULT + (f" ({', '.join(parts)})" if parts else "")


def main(out):
    with open(os.path.join(out, "peers.json")) as fh:
        peers = json.load(fh)
    peers = peers["results"] if isinstance(peers, dict) else peers
    coretype = os.environ.get("OPENBLAS_CORETYPE", "?")
    nabla = []
    cpu = None
    for path in sorted(glob.glob(os.path.join(out, "nabla-*.json"))):
        with open(path) as fh:
            lines = [l for l in fh.read().splitlines() if l.strip()]
        doc = json.loads(lines[-1])
        if "-unset-" in path or cpu is None:
            cpu = doc.get("cpu") or cpu
        nabla += [dict(r, row=label(path, coretype)) for r in doc["results"]]
    if cpu:
        print(f"CPU: {cpu['isa']}, f32 FMA peak {cpu['fma_peak_gflops']:.0f} GFLOP/s per core; "
              f"{cpu['openblas_config']} (core {cpu['openblas_core']})")
    value = lambda r, metric: r.get("steps_per_s" if metric == "steps/s" else "samples_per_s",
                                    r.get("steps_per_sec" if metric == "steps/s" else "samples_per_sec"))
    for wl, alias, metric in WORKLOADS:
        print(f"\n### {alias} {wl} ({metric}, median)\n")
        print("| engine | 1 thread | 2 threads |")
        print("|---|---|---|")
        rows = {}
        for r in peers:
            if r.get("workload") == wl and "error" not in r:
                rows.setdefault(r["peer"], {})[r["threads"]] = value(r, metric)
        for r in nabla:
            if r["workload"] == wl:
                rows.setdefault(r["row"], {})[r["threads"]] = value(r, metric)
        for name, v in rows.items():
            print(f"| {name} | {v.get(1, float('nan')):,.0f} | {v.get(2, float('nan')):,.0f} |")
        for t in (1, 2):
            ours = rows.get(DEFAULT, {}).get(t)
            if not ours:
                continue
            others = {p: v.get(t) for p, v in rows.items() if not p.startswith("nabla") and p != "gemm-bound" and v.get(t)}
            best = max(others.items(), key=lambda kv: kv[1]) if others else None
            numpy = others.get("numpy")
            mine = [r for r in nabla if r["workload"] == wl and r["threads"] == t and r["row"] == DEFAULT]
            frac = ""
            if mine and mine[0].get("gemm_bound_fraction"):
                frac += f", {100 * mine[0]['gemm_bound_fraction']:.0f}% of nabla's own GEMM bound"
            if mine and mine[0].get("fma_peak_fraction"):
                frac += f", {100 * mine[0]['fma_peak_fraction']:.0f}% of the FMA peak"
            said = [f"{ours / numpy:.2f}× numpy"] if numpy else []
            said += [f"{ours / best[1]:.2f}× the best peer ({best[0]})"] if best else []
            print(f"\n{t}T: nabla openblas = {', '.join(said)}{frac}")
            for name, v in rows.items():
                if name.startswith(DEFAULT + " (") and v.get(t):
                    print(f"  {name}: {v[t] / ours:.2f}× the default")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/peers")
