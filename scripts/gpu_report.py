#!/usr/bin/env python3
"""Turns the outputs of scripts/gpu-check.sh into a markdown report with the issue's targets:
W3 ≥ 85% of the cuBLAS GEMM bound, W1 ≥ PyTorch CUDA eager's samples/s, W2 ≥ 5× its steps/s."""
import json
import os
import sys


def load(path):
    try:
        with open(path) as fh:
            lines = [l for l in fh.read().splitlines() if l.strip()]
        return json.loads(lines[-1])["results"]
    except Exception as e:  # a missing or failed part is reported, not fatal
        return {"error": f"{os.path.basename(path)}: {e}"}


def main(out):
    nabla, tf32, torch = (load(os.path.join(out, f)) for f in ("bench-cuda.json", "bench-cuda-tf32.json", "torch.json"))
    print("# GPU check\n")
    for name, part in (("nabla bench", nabla), ("nabla bench --tf32", tf32), ("PyTorch", torch)):
        if isinstance(part, dict):
            print(f"- {name} FAILED: {part['error']}")
    if isinstance(nabla, list):
        print("## nabla on CUDA (f32, SGD)\n")
        print("| workload | samples/s | steps/s | GFLOP/s | % cuBLAS GEMM bound | % GEMM peak | median ms |")
        print("|---|---|---|---|---|---|---|")
        for r in nabla:
            print(f"| {r['workload']} | {r['samples_per_sec']:,.0f} | {r['steps_per_sec']:,.0f} | {r['gflops']:,.1f} | "
                  f"{100 * r['gemm_bound_fraction']:.1f}% | {100 * r['peak_fraction']:.1f}% | {r['median_ms']:.4f} |")
    if isinstance(tf32, list):
        print("\n## nabla on CUDA with TF32\n")
        print("| workload | samples/s | GFLOP/s | % GEMM bound (TF32) |")
        print("|---|---|---|---|")
        for r in tf32:
            print(f"| {r['workload']} | {r['samples_per_sec']:,.0f} | {r['gflops']:,.1f} | {100 * r['gemm_bound_fraction']:.1f}% |")
    if isinstance(torch, list):
        print("\n## PyTorch CUDA eager (same workloads)\n")
        print("| workload | samples/s | steps/s | GFLOP/s | median ms |")
        print("|---|---|---|---|---|")
        for r in torch:
            print(f"| {r['workload']} | {r['samples_per_sec']:,.0f} | {r['steps_per_sec']:,.0f} | {r['gflops']:,.1f} | {r['median_ms']:.4f} |")
    if isinstance(nabla, list) and isinstance(torch, list):
        n = {r["workload"]: r for r in nabla}
        t = {r["workload"]: r for r in torch}
        print("\n## Targets\n")
        rows = []
        if "wide" in n:
            f = n["wide"]["gemm_bound_fraction"]
            rows.append(("W3 ≥ 85% of the cuBLAS GEMM bound", f"{100 * f:.1f}%", f >= 0.85))
        if "mnist-mlp" in n and "mnist-mlp" in t:
            q = n["mnist-mlp"]["samples_per_sec"] / t["mnist-mlp"]["samples_per_sec"]
            rows.append(("W1 ≥ 1× PyTorch eager samples/s", f"{q:.2f}×", q >= 1.0))
        if "tiny" in n and "tiny" in t:
            q = n["tiny"]["steps_per_sec"] / t["tiny"]["steps_per_sec"]
            rows.append(("W2 ≥ 5× PyTorch eager steps/s", f"{q:.2f}×", q >= 5.0))
        print("| target | measured | met |")
        print("|---|---|---|")
        for name, v, ok in rows:
            print(f"| {name} | {v} | {'yes' if ok else 'NO'} |")
    path = os.path.join(out, "tf32-training.txt")
    if os.path.exists(path):
        print("\n## TF32 and accuracy (spirals, Adam, 100 epochs, f32)\n")
        for line in open(path):
            name, _, js = line.partition(": ")
            try:
                j = json.loads(js)
                print(f"- {name}: final loss {j['final_loss']:.6f}, accuracy {j.get('train_accuracy')}")
            except Exception:
                print(f"- {line.strip()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-report")
