#!/usr/bin/env bash
# nabla beside the Python peers of ../shared/peers, in one run on this machine:
#   1. the peers' bench.py (numpy, scikit-learn, PyTorch, JAX, Keras, and numpy's GEMM bound) on
#      W1 mnist-mlp, W2 tiny, W3 wide at 1 and 2 threads, each pinned to its CPUs;
#   2. `nabla bench` on the same workloads, backends and thread counts, pinned the same way and,
#      as bench.py does for its workers, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset; once
#      with the GEMM provider chosen per shape (`--gemm auto`) and once with OpenBLAS forced;
#      when the environment sets OPENBLAS_CORETYPE, both once more with the environment kept;
#   3. a markdown table of both with the ratios the issues target (scripts/compare_peers.py).
# Usage: scripts/compare-peers.sh [OUT_DIR]   (needs ../shared/peers/setup.sh run once)
# The script never sets OPENBLAS_CORETYPE: to see nabla under OpenBLAS's Haswell kernels on an
# AVX-512 CPU, run it as `OPENBLAS_CORETYPE=Haswell scripts/compare-peers.sh`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/target/peers}
peers=${PEERS:-numpy,sklearn,torch,jax,keras,gemm-bound}
venv=${VENV:-$HOME/.cache/nabla-peers/venv}
mkdir -p "$out"
cargo build --release -p nabla-cli --manifest-path "$here/Cargo.toml"
"$venv/bin/python" "$here/../shared/peers/bench.py" --peers "$peers" --workloads mnist-mlp,tiny,wide \
    --threads 1,2 --out "$out/peers.json" > "$out/peers.md"
# nabla-<environment>-<gemm>-<threads>t.json
bench() {
  local environment=$1 gemm=$2 t=$3 cpus
  cpus=$(seq -s, 0 $((t - 1)))
  local run=(taskset -c "$cpus" "$here/target/release/nabla" bench --backends openblas
             --workloads mnist-mlp,tiny,wide --threads "$t" --reps 5 --gemm "$gemm" --json)
  if [ "$environment" = unset ]; then
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${run[@]}" > "$out/nabla-unset-$gemm-${t}t.json"
  else
    "${run[@]}" > "$out/nabla-kept-$gemm-${t}t.json"
  fi
}
rm -f "$out"/nabla-*.json
environments=(unset)
[ -n "${OPENBLAS_CORETYPE:-}" ] && environments+=(kept)
for environment in "${environments[@]}"; do
  for gemm in auto openblas; do
    for t in 1 2; do bench "$environment" "$gemm" "$t"; done
  done
done
taskset -c 0 "$here/target/release/nabla" bench --backends reference --workloads mnist-mlp,tiny --threads 1 \
    --reps 3 --max-seconds 3 --json > "$out/nabla-reference.json"
python3 "$here/scripts/compare_peers.py" "$out" | tee "$out/comparison.md"
