//! GEMM for products too small to be worth a BLAS call (the thread hand-off and packing of a
//! BLAS call cost more than the arithmetic below about 32³ multiply-adds).
//!
//! Every case is computed as rows of `C` accumulating scaled rows of `op(B)`:
//! `C[i, :] ← β C[i, :] + Σ_p (α op(A)[i, p]) op(B)[p, :]`, whose inner loop runs over
//! contiguous memory and vectorises. A transposed `B` is first packed into a stack buffer.

use nabla_core::Element;
use nabla_core::backend::{Gemm, Trans};

/// The largest `op(B)` (in elements) packed on the stack.
const PACK: usize = 1024;
/// Products with at most this many multiply-adds take the small path.
const MAX_WORK: usize = 32 * 32 * 32;

/// Whether `s` takes the small path.
pub fn fits(s: &Gemm) -> bool {
    s.m * s.n * s.k <= MAX_WORK && s.k * s.n <= PACK
}

/// `C ← α·op(A)·op(B) + β·C` for shapes that [`fits`]; operand sizes already checked.
pub fn gemm<E: Element>(s: Gemm, alpha: E, a: &[E], b: &[E], beta: E, c: &mut [E]) {
    let Gemm { tb, k, n, .. } = s;
    if tb == Trans::No {
        return accumulate_rows(s, alpha, a, &b[..k * n], beta, c);
    }
    let mut packed = [E::zero(); PACK];
    for p in 0..k {
        for j in 0..n {
            packed[p * n + j] = b[j * k + p];
        }
    }
    accumulate_rows(s, alpha, a, &packed[..k * n], beta, c)
}

/// `C[i, :] ← β C[i, :] + Σ_p (α op(A)[i, p]) B[p, :]` with `B = op(B)` row-major `k × n`.
fn accumulate_rows<E: Element>(s: Gemm, alpha: E, a: &[E], rows_b: &[E], beta: E, c: &mut [E]) {
    let Gemm { ta, m, n, k, .. } = s;
    for (i, c_row) in c[..m * n].chunks_exact_mut(n).enumerate() {
        if beta == E::zero() {
            c_row.fill(E::zero());
        } else if beta != E::one() {
            c_row.iter_mut().for_each(|c| *c = beta * *c);
        }
        for (p, b_row) in rows_b.chunks_exact(n).enumerate() {
            let a_ip = alpha * if ta == Trans::No { a[i * k + p] } else { a[p * m + i] };
            c_row.iter_mut().zip(b_row).for_each(|(c, &b)| *c = *c + a_ip * b);
        }
    }
}
