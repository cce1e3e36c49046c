#!/usr/bin/env python3
"""PyTorch CUDA eager on nabla's three benchmark workloads, for side-by-side figures.

The same shapes, batch sizes, step counts and plain SGD (lr 0.01, f32) as `nabla bench`
(W1 mnist-mlp 784-512-256-10 ReLU softmax-CE batch 128; W2 tiny 2-16-16-1 sigmoid BCE batch 32;
W3 wide 1024-4096-4096-10 ReLU softmax-CE batch 512), on synthetic data resident on the GPU,
cycling over 8 batches. Each timed repetition is bracketed by torch.cuda.synchronize(); the
median of --reps repetitions is reported. TF32 matmul is off unless --tf32.

    python3 scripts/torch_cuda_bench.py --json > torch.json
"""
import argparse
import json
import statistics
import time

WORKLOADS = {
    "mnist-mlp": dict(layers=[784, 512, 256, 10], hidden="relu", loss="ce", batch=128, steps=300, warmup=20),
    "tiny": dict(layers=[2, 16, 16, 1], hidden="sigmoid", loss="bce", batch=32, steps=20000, warmup=500),
    "wide": dict(layers=[1024, 4096, 4096, 10], hidden="relu", loss="ce", batch=512, steps=20, warmup=3),
}


def flops_per_step(cfg):
    m, total = cfg["batch"], 0
    for i, (k, n) in enumerate(zip(cfg["layers"][:-1], cfg["layers"][1:])):
        total += 2 * m * k * n * (2 if i == 0 else 3)
    return total


def run(name, cfg, reps, tf32, scale):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    dev = torch.device("cuda")
    g = torch.Generator(device="cpu").manual_seed(1234)
    m, d, c = cfg["batch"], cfg["layers"][0], cfg["layers"][-1]
    xs = [torch.randn(m, d, generator=g).to(dev) for _ in range(8)]
    if cfg["loss"] == "bce":
        ys = [torch.randint(0, 2, (m, 1), generator=g).float().to(dev) for _ in range(8)]
        crit = torch.nn.BCEWithLogitsLoss()
    else:
        ys = [torch.randint(0, c, (m,), generator=g).to(dev) for _ in range(8)]
        crit = torch.nn.CrossEntropyLoss()
    layers = []
    sizes = cfg["layers"]
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(k, n))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU() if cfg["hidden"] == "relu" else torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = crit(model(xs[i % 8]), ys[i % 8])
        loss.backward()
        opt.step()

    for i in range(cfg["warmup"]):
        step(i)
    torch.cuda.synchronize()
    steps = max(1, int(cfg["steps"] * scale))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / steps)
    med = statistics.median(times)
    return dict(peer="torch-cuda-eager", workload=name, tf32=tf32, steps=steps, batch=m,
                median_ms=med * 1e3, min_ms=min(times) * 1e3, max_ms=max(times) * 1e3,
                samples_per_sec=m / med, steps_per_sec=1 / med,
                gflops=flops_per_step(cfg) / med / 1e9, torch=torch.__version__,
                device=torch.cuda.get_device_name(0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="mnist-mlp,tiny,wide")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    results = [run(w, WORKLOADS[w], a.reps, a.tf32, a.scale) for w in a.workloads.split(",")]
    if a.json:
        print(json.dumps({"results": results}))
    else:
        for r in results:
            print(f"{r['workload']:10s} {r['samples_per_sec']:12.0f} samples/s {r['steps_per_sec']:10.0f} steps/s "
                  f"{r['gflops']:8.1f} GFLOP/s")


if __name__ == "__main__":
    main()
