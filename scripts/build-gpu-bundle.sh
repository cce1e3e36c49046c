#!/usr/bin/env bash
# Builds, on a machine with Rust (no GPU needed), everything scripts/gpu-check.sh runs on a GPU
# machine that has CUDA but no Rust toolchain: the `nabla` binary and the conformance and CUDA
# training test binaries, all with `--features cuda`, stripped, plus the OpenBLAS runtime they
# link. Writes .device-carry/bundle.tar.xz (carry the folder .device-carry to the GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device-carry
rm -rf "$out/stage" && mkdir -p "$out/stage/bin" "$out/stage/lib"
cargo build --release --features nabla-cli/cuda -p nabla-cli
cp target/release/nabla "$out/stage/bin/"
cargo test --release --features cuda --no-run --message-format=json --test conformance --test cuda_training 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$out/stage/bin/$name"; done
strip "$out"/stage/bin/*
for lib in $(ldd "$out/stage/bin/nabla" | awk '/openblas|gfortran|quadmath/ {print $3}'); do
  cp -L "$lib" "$out/stage/lib/"
done
tar -C "$out/stage" -cJf "$out/bundle.tar.xz" bin lib
rm -rf "$out/stage"
ls -la "$out"
