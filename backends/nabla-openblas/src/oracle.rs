//! The tests' oracle for every GEMM path: operands drawn alike for each shape, and the textbook
//! triple loop in f64.

use nabla_core::Element;
use nabla_core::backend::Gemm;

/// The α every GEMM test uses.
pub(crate) const ALPHA: f64 = -0.7;

/// A deterministic value in [−1, 1].
fn value<E: Element>(i: usize) -> E {
    E::of(((i * 7919) % 61) as f64 / 30.0 - 1.0)
}

/// A, B and the old C of `s`: with β = 0 the old C is NaN, which must not matter.
pub(crate) fn operands<E: Element>(s: &Gemm, beta: f64) -> (Vec<E>, Vec<E>, Vec<E>) {
    let Gemm { m, n, k, .. } = *s;
    let c = (0..m * n).map(|i| if beta == 0.0 { E::nan() } else { value(i + 11) }).collect();
    ((0..m * k).map(value).collect(), (0..k * n).map(|i| value(i + 5)).collect(), c)
}

/// `ALPHA·op(A)·op(B) + β·C` by the core's triple loop (`nabla_core::cpu::gemm`), in f64 (C not
/// read when β = 0).
pub(crate) fn product<E: Element>(s: &Gemm, a: &[E], b: &[E], beta: f64, c: &[E]) -> Vec<f64> {
    let wide = |x: &[E]| x.iter().map(|v| v.f64()).collect::<Vec<f64>>();
    let mut want = wide(&c[..s.m * s.n]);
    nabla_core::cpu::gemm(*s, ALPHA, &wide(a), &wide(b), beta, &mut want).expect("the operands fit their shape");
    want
}

/// Panics unless every `got` is within `tolerance` of `want`, relative to `max(1, |want|)`.
pub(crate) fn assert_close<E: Element>(what: &str, got: &[E], want: &[f64], tolerance: f64) {
    for (ij, (got, want)) in got.iter().zip(want).enumerate() {
        let err = (got.f64() - want).abs() / want.abs().max(1.0);
        assert!(err < tolerance, "{what} at {ij}: {got} vs {want}");
    }
}
