#!/usr/bin/env bash
# The unsafe code under valgrind's memcheck, 0 errors required (exit 1 on the first):
#  - the OpenBLAS backend's kernels (small GEMM, thread team, SIMD element-wise paths): its unit
#    tests and its conformance suite, in the AVX2+FMA copies and in the baseline copies;
#  - the plugin boundary (host and Rust exporter, the C plugin): the plugin tests.
# valgrind 3.19 does not decode AVX-512, so the kernels are forced to AVX2 (NABLA_SIMD); valgrind
# also hides AVX-512 from OpenBLAS's CPU detection. Called by `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}

# The test executable cargo builds for `cargo test ARGS`.
test_binary() {
    "$CARGO" test "$@" --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1
}

memcheck() {
    local simd=$1 bin=$2
    shift 2
    echo "memcheck (NABLA_SIMD=$simd): $(basename "$bin") $*"
    local out
    out=$(NABLA_SIMD=$simd valgrind --error-exitcode=1 --quiet "$bin" --test-threads=2 "$@" 2>&1) || {
        echo "$out"
        return 1
    }
    echo "$out" | grep -E "^test result" || true
    # A filter that matches nothing would check nothing: at least one test must have run.
    echo "$out" | grep -qE "^test result: ok\. [1-9]" || { echo "memcheck: no test ran ($*)"; return 1; }
}

kernels=$(test_binary -p nabla-openblas --lib)
conformance=$(test_binary -p nabla-openblas --test conformance)
plugins=$(test_binary --all-features --test plugins)
for simd in avx2 generic; do
    memcheck "$simd" "$kernels"
    memcheck "$simd" "$conformance" auto::
done
memcheck avx2 "$plugins"
