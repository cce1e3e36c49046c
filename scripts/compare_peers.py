#!/usr/bin/env python3
"""Merges the peers' results.json and `nabla bench --json` outputs (scripts/compare-peers.sh)
into one markdown table per workload, with nabla's ratio to numpy and to the best peer."""
import glob
import json
import os
import sys

WORKLOADS = [("mnist-mlp", "W1", "samples/s"), ("tiny", "W2", "steps/s"), ("wide", "W3", "samples/s")]


def main(out):
    with open(os.path.join(out, "peers.json")) as fh:
        peers = json.load(fh)
    peers = peers["results"] if isinstance(peers, dict) else peers
    nabla = []
    for path in sorted(glob.glob(os.path.join(out, "nabla-*.json"))):
        with open(path) as fh:
            lines = [l for l in fh.read().splitlines() if l.strip()]
        nabla += json.loads(lines[-1])["results"]
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
                rows.setdefault(f"nabla {r['backend']}", {})[r["threads"]] = value(r, metric)
        for name, v in rows.items():
            print(f"| {name} | {v.get(1, float('nan')):,.0f} | {v.get(2, float('nan')):,.0f} |")
        for t in (1, 2):
            ours = rows.get("nabla openblas", {}).get(t)
            if not ours:
                continue
            others = {p: v.get(t) for p, v in rows.items() if not p.startswith("nabla") and p != "gemm-bound" and v.get(t)}
            best = max(others.items(), key=lambda kv: kv[1]) if others else None
            numpy = others.get("numpy")
            bound = [r for r in nabla if r["workload"] == wl and r["threads"] == t and r["backend"] == "openblas"]
            frac = f", {100 * bound[0]['gemm_bound_fraction']:.0f}% of nabla's own GEMM bound" if bound else ""
            print(f"\n{t}T: nabla openblas = {ours / numpy:.2f}× numpy" if numpy else f"\n{t}T:", end="")
            if best:
                print(f", {ours / best[1]:.2f}× the best peer ({best[0]}){frac}")
            else:
                print(frac)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/peers")
