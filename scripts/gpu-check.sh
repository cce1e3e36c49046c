#!/usr/bin/env bash
# GPU check, in one call on a machine with an NVIDIA GPU and CUDA but no Rust toolchain.
# Runs the prebuilt binaries of scripts/build-gpu-bundle.sh (carried in .device-carry) and
# writes a report to $OUT (default ./gpu-report): conformance of every backend against the
# reference (CUDA included), the CUDA training test, `nabla bench` for W1/W2/W3 on CUDA with
# the % of the cuBLAS GEMM bound (with and without TF32), PyTorch CUDA eager on the same
# workloads, and TF32's effect on a training run.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$here/gpu-report}
mkdir -p "$out"
work=$(mktemp -d)
tar -C "$work" -xJf "$here/.device-carry/bundle.tar.xz"
bin=$work/bin

# The bundled OpenBLAS, then wherever this machine keeps the CUDA libraries (cudarc opens them
# at run time by name: libcuda, libcublas, libnvrtc).
libs=$work/lib
for d in /usr/local/nvidia/lib64 /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && libs=$libs:$d
done
for mod in nvidia.cublas nvidia.cuda_nvrtc nvidia.cu13; do
  d=$(python3 -c "import $mod, os; print(os.path.join(list($mod.__path__)[0], 'lib'))" 2>/dev/null) && [ -d "$d" ] && libs=$libs:$d
done
export LD_LIBRARY_PATH=$libs:${LD_LIBRARY_PATH:-}

{
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  echo "== nabla backends"; "$bin/nabla" backends 2>&1
  echo "== conformance (every backend vs the reference; full log in conformance.log)"
  "$bin/conformance" --test-threads 4 > "$out/conformance.log" 2>&1
  grep -E "test result|FAILED|failures:" "$out/conformance.log" | head -40
  echo "== CUDA training vs reference"; "$bin/cuda_training" --nocapture 2>&1 | tail -8
} > "$out/checks.log" 2>&1
cat "$out/checks.log"

"$bin/nabla" bench --backends cuda --workloads mnist-mlp,tiny,wide --reps 5 --gemm-sweep --json > "$out/bench-cuda.json" 2>> "$out/checks.log"
"$bin/nabla" bench --backends cuda --workloads mnist-mlp,tiny,wide --reps 5 --tf32 --json > "$out/bench-cuda-tf32.json" 2>> "$out/checks.log"
# W2 eager runs 5000 steps a repetition (a quarter of the peers' count): the steady rate is the figure.
PYTHONUNBUFFERED=1 python3 "$here/scripts/torch_cuda_bench.py" --reps 5 --scale 0.25 --json > "$out/torch.json" 2>> "$out/checks.log"

# TF32's effect on accuracy: the same f32 run with and without it, beside the f64 reference.
{
  for b in "cuda" "cuda --tf32"; do
    echo "$b: $("$bin/nabla" train --backend $b --dataset spirals --optimizer adam --lr 0.003 --epochs 100 --json | tail -1)"
  done
  echo "reference: $("$bin/nabla" train --backend reference --dataset spirals --optimizer adam --lr 0.003 --epochs 100 --json | tail -1)"
} > "$out/tf32-training.txt" 2>&1

python3 "$here/scripts/gpu_report.py" "$out" > "$out/report.md"
cat "$out/report.md"
